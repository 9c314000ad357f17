"""End-to-end check: llama.cpp's llama_model_quantize against lessons.l12_quants.quantize, tensor by tensor.

Quantizes the F32 copy of the default model with llama.cpp to each given file type (llama_ftype
numbers: 2 Q4_0, 3 Q4_1, 7 Q8_0, 8 Q5_0, 9 Q5_1, 10 Q2_K, 12 Q3_K_M, 15 Q4_K_M, 17 Q5_K_M, 18 Q6_K),
then quantizes the same F32 tensors here to whatever type llama.cpp chose for each (its k-quant mixes
and fallbacks included) and compares bytes. Needs llama-cpp-python and gguf (the system python3):

    python3 tools/check_quants_vs_llama_quantize.py 15 18 [--all-tensors]

The F32 model is made with llama.cpp (quantize to F32) at /tmp/models/ if absent. Not a test: it
needs llama.cpp; the tests use the fixtures that tools/make_quant_fixtures.py freezes.
"""
import argparse
import ctypes
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
F32_MODEL = Path("/tmp/models/SmolLM2-135M-Instruct-F32.gguf")


def llama_quantize(src, dst, ftype):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread, params.allow_requantize = ftype, 2, True
    tmp = Path(str(dst) + ".tmp")
    if llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize to ftype {ftype} failed")
    os.replace(tmp, dst)  # others may race us for the same file: write, then rename


def main():
    import gguf
    from lessons.default_model import default_model_path
    from lessons.l12_quants import quantize, type_name

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ftypes", type=int, nargs="+")
    ap.add_argument("--all-tensors", action="store_true", help="every tensor, not just layers 0 and 29 + token_embd")
    args = ap.parse_args()
    if not F32_MODEL.exists():
        F32_MODEL.parent.mkdir(parents=True, exist_ok=True)
        llama_quantize(default_model_path(), F32_MODEL, 0)
    src = {t.name: t for t in gguf.GGUFReader(str(F32_MODEL)).tensors}
    failures = 0
    for ftype in args.ftypes:
        out = Path(f"/tmp/check_quants_{os.getpid()}_{ftype}.gguf")
        llama_quantize(F32_MODEL, out, ftype)
        stats = {}
        for t in gguf.GGUFReader(str(out)).tensors:
            wanted = args.all_tensors or t.name.startswith(("blk.0.", "blk.29.", "token_embd"))
            if not wanted or int(t.tensor_type) == 0:
                continue
            ours = quantize(np.asarray(src[t.name].data, dtype=np.float32), int(t.tensor_type))
            same = np.array_equal(ours.view(np.uint8).reshape(-1), np.asarray(t.data).view(np.uint8).reshape(-1))
            n = stats.setdefault(type_name(t.tensor_type), [0, 0])
            n[0] += same
            n[1] += 1
            failures += not same
        out.unlink()
        print(f"ftype {ftype}: " + ", ".join(f"{k} {a}/{b} tensors bit exact" for k, (a, b) in stats.items()), flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
