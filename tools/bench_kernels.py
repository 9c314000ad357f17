"""Time every version of every C++ kernel on the default model's shapes, and print a table.

    python tools/bench_kernels.py                          # everything
    python tools/bench_kernels.py --op quant_matmul --threads 1 2 --tokens 1 64
    python tools/bench_kernels.py --op attention --threads 1 2

Timing loops run in C++ (cpp_core._core.bench_op / bench_matmuls), so Python's call overhead is not
counted. quant_matmul is timed on the real weights of SmolLM2-135M Q4_1 when the file is installed:
one pass = every matrix of one forward (30 layers x 7, plus the Q8_0 output matrix), else on random
blocks of the same shapes. The decode floor is the bytes of all weights over the memory bandwidth.

Two numbers per line: the best wall time, and the process CPU time during that round. On a shared
machine the wall time includes waiting for a core; for one thread the CPU time is the better measure
of the kernel itself.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpp_core import kernels as K  # noqa: E402

OP_SIZES = {"rmsnorm": 576, "swiglu": 1536, "softmax": 512, "apply_rope": 9 * 64}
OP_SHAPES = {"rmsnorm": "one row of 576", "swiglu": "1536 (the FFN width)", "softmax": "512 scores",
             "apply_rope": "9 heads x 64 (q of one token; the angles computed once, outside the timing)"}


def model_matrices():
    """[(W, ggml_type, n_rows, n_cols)] for one forward of the default model, and where they come from."""
    try:
        from lessons.default_model import default_model_path
        path = default_model_path()
    except Exception:
        path = None
    if path is not None and Path(path).exists():
        from lessons.l01_gguf import GGUFFile
        f = GGUFFile(path)
        mats = [(t.data, int(t.ggml_type), int(t.ne[1]), int(t.ne[0])) for t in f.tensors.values()
                if len(t.ne) == 2 and int(t.ggml_type) in (2, 3, 8, 12, 14)]
        return mats, f"real weights of {Path(path).name}"
    rng = np.random.default_rng(0)

    def rand(rows, cols, t, nbytes):
        raw = rng.integers(0, 256, size=(rows, cols // 32, nbytes), dtype=np.uint8)
        raw[..., 0:2] = np.float16(0.01).view(np.uint8)
        return raw.reshape(rows, -1), t, rows, cols
    mats = [rand(r, c, 3, 20) for _ in range(30)
            for r, c in [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]]
    mats.append(rand(49152, 576, 8, 34))
    return mats, "random blocks in the model's shapes (model file not installed)"


RESULTS: dict = {"ops": {}, "quant_matmul": [], "attention": []}

# (new tokens, pos): one decoded token at context 300 and 1000, and a 256-token prompt from position 0
ATTENTION_CASES = [(1, 299), (1, 999), (256, 0)]


def bench_attention(threads, rounds) -> None:
    """Attention through the 30 layers of SmolLM2 (9 heads, 3 KV heads, head_dim 64), each layer with its own
    cache, so a decoded token streams the whole KV cache from memory as in the model."""
    from cpp_core import model as M
    print("attention: SmolLM2 shapes (9 heads / 3 KV heads, head_dim 64), 30 layers per pass")
    for n_tok, pos in ATTENTION_CASES:
        kv_bytes = 30 * (pos + n_tok) * 3 * 64 * 4 * 2
        for n_threads in threads:
            base = None
            for v in M.attention_versions():
                if v == "v0_scalar" and n_tok > 1:
                    continue  # ~1 s a pass: not worth the wait
                wall, cpu = M._core.bench_attention(v, n_tok, pos, 9, 3, 64, 30, n_threads, rounds, 1 if n_tok > 1 else 10)
                base = base or wall
                RESULTS["attention"].append({"version": v, "n_tok": n_tok, "pos": pos, "threads": n_threads,
                                             "wall_s": wall, "cpu_s": cpu})
                stream = f"  cache read {kv_bytes / wall / 1e9:5.1f} GB/s" if n_tok == 1 else ""  # decode: memory-bound
                print(f"  n_tok={n_tok:3d} pos={pos:4d} threads={n_threads} {v:14s} wall {wall * 1e3:8.3f} ms  "
                      f"cpu {cpu * 1e3:8.3f} ms  x{base / wall:5.1f} vs first{stream}", flush=True)


def bench_ops(rounds: int) -> None:
    for op, n in OP_SIZES.items():
        RESULTS["ops"][op] = {}
        print(f"{op}: {OP_SHAPES[op]}")
        base = None
        for v in K.available_versions()[op]:
            wall, cpu = K._core.bench_op(op, v, n, rounds, 2000)
            base = base or cpu
            RESULTS["ops"][op][v] = {"wall_s": wall, "cpu_s": cpu}
            print(f"  {v:14s} cpu {cpu * 1e6:8.3f} us  (wall {wall * 1e6:8.3f} us)   x{base / cpu:6.1f} vs v0")


def bench_matmul(threads, tokens, versions, rounds) -> None:
    mats, what = model_matrices()
    total = sum(m[0].nbytes for m in mats)
    print(f"quant_matmul: one forward = {len(mats)} matrices, {total / 1e6:.1f} MB ({what})")
    print(f"  decode floor at 15 GB/s: {total / 15e9 * 1e3:.2f} ms per token")
    for n_tok in tokens:
        for n_threads in threads:
            pool = K.thread_pool(n_threads)
            for v in versions:
                if v.startswith("v0") and (n_threads > 1 or n_tok > 4):
                    continue  # single-threaded and ~100x slower: once, on decode, is enough
                slow = v.startswith(("v0", "v1", "v2"))
                wall, cpu = K._core.bench_matmuls(mats, n_tok, v, pool, 1 if slow else rounds, 1)
                RESULTS["quant_matmul"].append({"version": v, "n_tok": n_tok, "threads": n_threads,
                                                "wall_s": wall, "cpu_s": cpu, "bytes": total})
                print(f"  n_tok={n_tok:3d} threads={n_threads} {v:18s} wall {wall * 1e3:8.2f} ms  cpu {cpu * 1e3:8.2f} ms"
                      f"  = {wall / n_tok * 1e3:7.2f} ms/token  {total / wall / 1e9:5.1f} GB/s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--op", choices=["all", "ops", "quant_matmul", "attention"], default="all")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokens", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--versions", nargs="+", default=None, help="quant_matmul versions (default: all available)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the results here (tools/make_kernel_figures.py plots them)")
    a = ap.parse_args()
    print("cpu:", ", ".join(k for k, v in K.cpu_features().items() if v))
    print("fast path:", K.active_versions())
    if a.op in ("all", "ops"):
        bench_ops(a.rounds)
    if a.op in ("all", "attention"):
        bench_attention(a.threads, a.rounds)
    if a.op in ("all", "quant_matmul"):
        bench_matmul(a.threads, a.tokens, a.versions or K.available_versions()["quant_matmul"], a.rounds)
    if a.json:
        RESULTS["cpu"] = [k for k, v in K.cpu_features().items() if v]
        Path(a.json).write_text(json.dumps(RESULTS, indent=1) + "\n")


if __name__ == "__main__":
    main()
