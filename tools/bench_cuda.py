#!/usr/bin/env python3
"""CUDA backend benchmark: prefill and decode tokens/s, and decode as a fraction of the GPU's memory bandwidth.

    python tools/bench_cuda.py                                   # the default model
    python tools/bench_cuda.py -m a.gguf -m b.gguf --prompt 512 --decode 128

Decoding one token reads every weight once (and the KV cache so far): bytes per token / seconds per token is the
bandwidth decoding achieves; the GPU's own is measured with device-to-device copies (read + write bytes per second,
events on the stream). The tokens are random ids (speed does not depend on them). Runs only where there is a GPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpp_core import _core, cuda  # noqa: E402
from lessons.l01_gguf import GGUFFile  # noqa: E402


def copy_bandwidth(n_bytes: int = 1 << 30, reps: int = 20) -> float:
    """Bytes per second a device-to-device copy moves (each byte read once and written once)."""
    D = _core.cuda_dev
    a, b = D.alloc(n_bytes), D.alloc(n_bytes)
    try:
        D.time_copies(b, a, n_bytes, 2)  # warm up
        ms = D.time_copies(b, a, n_bytes, reps)
    finally:
        D.free(a), D.free(b)
    return 2 * n_bytes * reps / (ms / 1e3)


def bytes_per_token(gguf, config, pos: int) -> int:
    """What decoding one token at position pos reads: every matrix but the embedding table (one row of it), the
    output (the table again when tied), and the float16 KV cache of pos positions."""
    total = sum(t.nbytes for name, t in gguf.tensors.items() if len(t.shape) > 1 and name != "token_embd.weight")
    if "output.weight" not in gguf.tensors:
        total += gguf.tensors["token_embd.weight"].nbytes
    return total + 2 * config.n_layer * pos * config.n_head_kv * config.head_dim * 2


def bench(path: str, n_prompt: int, n_decode: int, versions: dict, graphs: bool, bandwidth: float) -> dict:
    gguf = GGUFFile(path)
    t0 = time.perf_counter()
    model = cuda.CudaLlama(gguf, n_ctx=n_prompt + n_decode + 16, versions=versions, graphs=graphs)
    load_s = time.perf_counter() - t0
    c = model.config
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, c.n_vocab, n_prompt + n_decode).astype(np.int32)
    model.forward(tokens[:16], 0, last_only=True)  # warm up: module, graph capture
    model.forward(tokens[16:17], 16, last_only=True)
    model.reset()
    t0 = time.perf_counter()
    model.forward(tokens[:n_prompt], 0, last_only=True)
    prefill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n_decode):
        model.forward(tokens[n_prompt + i:n_prompt + i + 1], n_prompt + i, last_only=True)
    decode_s = time.perf_counter() - t0
    per_token = bytes_per_token(gguf, c, n_prompt + n_decode // 2)
    decode_tps = n_decode / decode_s
    return dict(model=Path(path).name, load_s=load_s, prefill_tps=n_prompt / prefill_s, decode_tps=decode_tps,
                gb_per_token=per_token / 1e9, fraction=per_token * decode_tps / bandwidth, describe=model.describe())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", action="append", help="GGUF file (repeatable; default: the default model)")
    p.add_argument("--prompt", type=int, default=512, help="prompt tokens for prefill")
    p.add_argument("--decode", type=int, default=128, help="decoded tokens")
    p.add_argument("--matvec", default=cuda.DEFAULT_VERSIONS["matvec"])
    p.add_argument("--matmul", default=cuda.DEFAULT_VERSIONS["matmul"])
    p.add_argument("--attention", default=cuda.DEFAULT_VERSIONS["attention"])
    p.add_argument("--no-graphs", action="store_true")
    args = p.parse_args(argv)
    ok, why = cuda.cuda_status()
    if not ok:
        print(f"error: {why}", file=sys.stderr)
        return 1
    models = args.model
    if not models:
        from lessons.default_model import default_model_path
        models = [str(default_model_path())]
    bw = copy_bandwidth()
    print(f"device: {why}")
    print(f"memory bandwidth (device-to-device copy): {bw / 1e9:.0f} GB/s")
    versions = dict(matvec=args.matvec, matmul=args.matmul, attention=args.attention)
    print(f"{'model':40} {'prefill tok/s':>14} {'decode tok/s':>13} {'GB/token':>9} {'of bandwidth':>13}")
    for path in models:
        try:
            r = bench(path, args.prompt, args.decode, versions, not args.no_graphs, bw)
        except (cuda.CudaError, ValueError, RuntimeError) as e:
            print(f"{Path(path).name:40} error: {str(e).splitlines()[0]}")
            continue
        print(f"{r['model']:40} {r['prefill_tps']:14.0f} {r['decode_tps']:13.1f} {r['gb_per_token']:9.3f} {r['fraction']:12.0%}")
        print(f"    ({r['describe']}; load {r['load_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
