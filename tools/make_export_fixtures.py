#!/usr/bin/env python3
"""Compare export.py with llama.cpp's quantizer, preset by preset, on the default model.

Run with the SYSTEM python that has llama-cpp-python (llama.cpp itself):

    python3 tools/make_export_fixtures.py [--work /tmp/export-work] [--presets Q4_0,Q6_K] [--stage all]

1. the F32 model: llama.cpp's quantize to F32 of the default Q4_1 model (skipped if present);
2. for each preset, llama.cpp's quantize of the F32 model, and ours (export.py);
3. each file's perplexity on tinyshakespeare-40k with llama.cpp, llama-perplexity's method
   (chunks of 512 tokens, BOS first if the model wants one, the second half of each chunk scored), and its KL divergence
   from the F32 model's next-token distribution at those same scored positions;
4. tests/fixtures/export_presets.json: tensor names/shapes, llama.cpp's chosen type for every
   tensor in every preset, file sizes, perplexities, KLs, and how many tensors came out
   byte-identical to llama.cpp's.

Everything lands in --work and is reused on a re-run (delete a file to redo it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import export  # noqa: E402
from lessons.default_model import default_model_path  # noqa: E402
from lessons.l01_gguf import GGUFFile  # noqa: E402

SHARED = ROOT.parent / "shared"
F32_MODEL = Path("/tmp/models/SmolLM2-135M-Instruct-F32.gguf")
TEXT = SHARED / "data" / "tinyshakespeare-40k.txt"
FIXTURE = ROOT / "tests" / "fixtures" / "export_presets.json"
N_CTX = 512


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- llama.cpp's quantizer ----
def lcpp_quantize(src: Path, dst: Path, ftype: int, allow_requantize: bool = False) -> None:
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    params.allow_requantize = allow_requantize
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0 or not tmp.exists():
        raise RuntimeError(f"llama.cpp quantize to ftype {ftype} failed ({rc})")
    os.replace(tmp, dst)  # others may race us for the F32 file: last rename wins, both are whole


def ensure_f32_model() -> Path:
    if not F32_MODEL.exists():
        F32_MODEL.parent.mkdir(parents=True, exist_ok=True)
        log(f"making {F32_MODEL} with llama.cpp")
        lcpp_quantize(default_model_path(), F32_MODEL, 0, allow_requantize=True)
    return F32_MODEL


# ---- llama-perplexity's method, through llama-cpp-python ----
def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def evaluate(model: Path, reference_logp: np.memmap | None, store_logp: np.memmap | None,
             n_chunk_max: int | None = None) -> dict:
    """Perplexity over the first n_chunk_max full chunks (all by default); KL(F32 || model) and
    top-1 agreement at the scored positions."""
    import llama_cpp
    llm = llama_cpp.Llama(str(model), n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, n_threads=2,
                          logits_all=True, verbose=False)
    tokens = llm.tokenize(TEXT.read_bytes(), add_bos=True, special=False)  # add_bos: as the vocabulary says
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))
    n_chunk, first = len(tokens) // N_CTX, N_CTX // 2
    n_chunk = min(n_chunk, n_chunk_max or n_chunk)
    nll, kls, same_top, count, t0 = 0.0, [], 0, 0, time.perf_counter()
    for c in range(n_chunk):
        chunk = list(tokens[c * N_CTX:(c + 1) * N_CTX])
        if add_bos:
            chunk[0] = llm.token_bos()  # llama-perplexity puts BOS first in every chunk, if the model wants one
        llm.reset()
        llm.eval(chunk)
        logp = log_softmax(np.asarray(llm.scores[first:N_CTX - 1], dtype=np.float32))  # [255, n_vocab]
        targets = np.asarray(chunk[first + 1:N_CTX])
        nll -= logp[np.arange(len(targets)), targets].sum()
        rows = slice(count, count + len(targets))
        if store_logp is not None:
            store_logp[rows] = logp
        if reference_logp is not None:
            ref = np.asarray(reference_logp[rows], dtype=np.float64)
            kls.append((np.exp(ref) * (ref - logp)).sum(axis=-1))
            same_top += int((ref.argmax(-1) == logp.argmax(-1)).sum())
        count += len(targets)
        if (c + 1) % 6 == 0:
            log(f"  chunk {c + 1}/{n_chunk}: ppl so far {math.exp(nll / count):.3f}")
    del llm
    out = {"ppl": math.exp(nll / count), "scored": count, "n_tokens": len(tokens), "chunks": n_chunk,
           "seconds": round(time.perf_counter() - t0, 1)}
    if kls:
        kl = np.concatenate(kls)
        out.update(kl_mean=float(kl.mean()), kl_p99=float(np.quantile(kl, 0.99)), same_top=same_top / count)
    return out


# ---- per-tensor facts ----
def tensor_types(path: Path) -> dict:
    with GGUFFile(path) as f:
        return {n: t.ggml_type.name for n, t in f.tensors.items()}


def tensor_digests(path: Path) -> dict:
    with GGUFFile(path) as f:
        return {n: hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()[:16] for n, t in f.tensors.items()}


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def cached(path: Path, make):
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    path.write_text(json.dumps(value, indent=1))
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/export-work"))
    ap.add_argument("--presets", default=",".join(export.PRESETS))
    ap.add_argument("--stage", choices=["lcpp", "ours", "eval", "validate", "all"], default="all")
    ap.add_argument("--chunks", type=int, default=None, help="evaluate only the first N chunks of 512 tokens")
    args = ap.parse_args()
    presets = [p.strip().upper() for p in args.presets.split(",") if p.strip()]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    f32 = ensure_f32_model()

    if args.stage in ("lcpp", "all"):
        for p in presets:
            dst = work / f"lcpp-{p}.gguf"
            if not dst.exists():
                log(f"llama.cpp quantize {p}")
                lcpp_quantize(f32, dst, export.PRESETS[p][0])
    if args.stage in ("ours", "all"):
        for p in presets:
            dst = work / f"ours-{p}.gguf"
            if not dst.exists():
                log(f"export.py {p}")
                stats = export.export(str(f32), str(dst), p)
                log(f"  {stats.bytes_out / 2**20:.1f} MiB in {stats.seconds:.0f} s")
    if args.stage in ("eval", "all"):
        f32_eval, logp_file = work / "eval-F32-model.json", work / "f32-logp.npy"
        if not f32_eval.exists():  # the reference distributions: 1.1 GB of float32 on disk, not in RAM
            n_rows, n_vocab = (args.chunks or 23) * (N_CTX // 2 - 1), 49152  # 255 scored per chunk; checked below
            store = np.lib.format.open_memmap(logp_file, mode="w+", dtype=np.float32, shape=(n_rows, n_vocab))
            log("evaluating the F32 model")
            result = evaluate(f32, None, store, args.chunks)
            if result["scored"] != n_rows:
                raise SystemExit(f"expected {n_rows} scored positions, got {result['scored']}")
            store.flush()
            f32_eval.write_text(json.dumps(result))
        reference = np.load(logp_file, mmap_mode="r")
        for p in presets:
            theirs, ours = work / f"lcpp-{p}.gguf", work / f"ours-{p}.gguf"
            log(f"evaluating {theirs.name}")
            result = cached(work / f"eval-lcpp-{p}.json", lambda: evaluate(theirs, reference, None, args.chunks))
            if ours.exists():
                # byte for byte the same file: llama.cpp's evaluation of it is the same, no need to run it twice
                log(f"evaluating {ours.name}")
                cached(work / f"eval-ours-{p}.json", lambda: {**result, "same_file_as_llama_cpp": True}
                       if file_digest(ours) == file_digest(theirs) else evaluate(ours, reference, None, args.chunks))

    if args.stage == "validate":
        # the evaluator itself, checked: the default model over all chunks against llama-perplexity's
        # number in shared/reference (the Q4_1 preset of the F32 model reproduces that file's tensors)
        log("evaluating the default model on all chunks")
        cached(work / "eval-validate.json", lambda: evaluate(default_model_path(), None, None))
    write_fixture(work, presets, f32)
    return 0


def write_fixture(work: Path, presets: list, f32: Path) -> None:
    with GGUFFile(f32) as f:
        facts = export.ModelFacts.from_metadata(f.metadata)
        tensors = [[n, list(t.ne), t.ggml_type.name] for n, t in f.tensors.items()]
    old = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
    fixture = {
        "about": "made by tools/make_export_fixtures.py: llama.cpp (llama-cpp-python) vs export.py on "
                 "SmolLM2-135M-Instruct dequantized to F32; ppl/kl by llama.cpp on tinyshakespeare-40k, n_ctx 512",
        "model": {"arch": facts.arch, "n_layer": facts.n_layer, "n_gqa": facts.n_gqa, "n_expert": facts.n_expert,
                  "metadata": {"general.architecture": facts.arch, f"{facts.arch}.block_count": facts.n_layer}},
        "tensors": tensors,
        "f32": {"size": f32.stat().st_size, **json.loads((work / "eval-F32-model.json").read_text())}
        if (work / "eval-F32-model.json").exists() else old.get("f32"),
        "presets": old.get("presets", {}),
    }
    if (work / "eval-validate.json").exists():
        reference = json.loads((SHARED / "reference" / "smollm2_generation.json").read_text())["_perplexity"]["q4_1"]
        fixture["evaluator_check"] = {"model": "the default Q4_1 file, all chunks", "ppl": json.loads(
            (work / "eval-validate.json").read_text())["ppl"], "llama_perplexity_reference": reference["ppl"]}
    with GGUFFile(f32) as f:
        md = f.metadata
        for key in (f"{facts.arch}.attention.head_count", f"{facts.arch}.attention.head_count_kv"):
            fixture["model"]["metadata"][key] = md.get(key)
    for p in presets:
        entry = fixture["presets"].get(p, {})
        entry["ftype"] = export.PRESETS[p][0]
        for who in ("lcpp", "ours"):
            model = work / f"{who}-{p}.gguf"
            if not model.exists():
                continue
            types = tensor_types(model)
            entry[who] = {"size": model.stat().st_size,
                          "types": " ".join(types[n] for n, *_ in tensors)}
            ev = work / f"eval-{who}-{p}.json"
            if ev.exists():
                entry[who].update(json.loads(ev.read_text()))
            elif (work / "eval-F32-model.json").exists() and file_digest(model) == file_digest(f32):
                # the F32 preset of an F32 model is the model itself: its evaluation is the reference run
                entry[who].update(json.loads((work / "eval-F32-model.json").read_text()),
                                  kl_mean=0.0, kl_p99=0.0, same_top=1.0, same_file_as_f32_model=True)
        if (work / f"lcpp-{p}.gguf").exists() and (work / f"ours-{p}.gguf").exists():
            a, b = tensor_digests(work / f"lcpp-{p}.gguf"), tensor_digests(work / f"ours-{p}.gguf")
            entry["identical_tensors"] = sum(a[n] == b.get(n) for n in a)
            entry["identical_file"] = file_digest(work / f"lcpp-{p}.gguf") == file_digest(work / f"ours-{p}.gguf")
        fixture["presets"][p] = entry
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    log(f"wrote {FIXTURE}")


if __name__ == "__main__":
    sys.exit(main())
