#!/usr/bin/env python3
"""Benchmark the C++ backend against llama.cpp: prefill and decode tokens/s, peak RSS.

    python tools/benchmark.py                      # default model, 2 threads, 256-token prompt, 128 decoded tokens
    python tools/benchmark.py -t 1 --rounds 5 -m model.gguf
    python tools/benchmark.py --perplexity         # also perplexity on tinyshakespeare-40k (-c 512), ours only

Each measurement runs in its own subprocess, so its peak RSS (VmHWM) is its own and the page cache is
all that carries over. Rounds alternate ours / llama.cpp so both see the same machine load; the best
round of each is reported (on a shared machine the best is the least disturbed), and the ratios.
llama.cpp is llama-cpp-python, in this interpreter or the first `python3` on PATH that can import it
(--llama-python to choose): prefill = one eval of the prompt, decode = n single-token evals.
Both decode the same fixed token ids, so neither pays for sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_rss_bytes() -> int:
    """VmHWM: the most resident memory this process ever had (file-backed mmap pages included)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource  # not Linux: ru_maxrss is KB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def token_ids(n: int, n_vocab: int, seed: int = 0) -> list[int]:
    """Fixed pseudo-random token ids (the same for both backends); skips the first 256 ids (specials, bytes)."""
    import random
    rng = random.Random(seed)
    return [rng.randrange(256, n_vocab) for _ in range(n)]


# ---- workers: one measurement each, printed as a JSON line ----
def worker_ours(args) -> dict:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from cpp_core.model import CppLlama
    from lessons.l01_gguf import GGUFFile

    gguf = GGUFFile(args.model)
    model = CppLlama(gguf, n_ctx=args.ctx, n_threads=args.threads, int8_activations=args.int8_activations,
                     kv_type=args.cache_type)
    ids = token_ids(args.prompt + args.n_predict, model.config.n_vocab)
    prompt, gen = np.array(ids[: args.prompt], np.int32), np.array(ids[args.prompt:], np.int32)
    model.forward(prompt[:8], 0, last_only=True)  # warm up: page in the weights, start the threads
    model.reset()
    t0 = time.perf_counter()
    model.forward(prompt, 0, last_only=True)
    t1 = time.perf_counter()
    for i in range(args.n_predict):
        model.forward(gen[i:i + 1], args.prompt + i, last_only=True)
    t2 = time.perf_counter()
    out = dict(prefill_s=t1 - t0, decode_s=t2 - t1, kv_cache_bytes=model.kv_cache_bytes)
    if args.perplexity:
        out.update(perplexity_ours(gguf, model))
    return out


def perplexity_ours(gguf, model) -> dict:
    from lessons.l02_tokenizer import Tokenizer
    from lessons.l11_perplexity import perplexity
    import numpy as np

    text = (REPO.parent / "shared" / "data" / "tinyshakespeare-40k.txt").read_text()
    ids = np.array(Tokenizer.from_metadata(gguf.metadata).encode(text, add_bos=False), np.int32)
    t0 = time.perf_counter()
    ppl, stderr = perplexity(model, ids, 512)
    return dict(perplexity=ppl, perplexity_stderr=stderr, perplexity_s=time.perf_counter() - t0, perplexity_tokens=len(ids))


GGML_TYPE = {"f32": 0, "f16": 1}  # llama.cpp's type ids for the KV cache


def worker_llama_cpp(args) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(args.model), n_ctx=args.ctx, n_batch=max(512, args.prompt), n_ubatch=max(512, args.prompt),
                n_threads=args.threads, n_threads_batch=args.threads, verbose=False,
                type_k=GGML_TYPE[args.cache_type], type_v=GGML_TYPE[args.cache_type])
    ids = token_ids(args.prompt + args.n_predict, llm.n_vocab())
    prompt, gen = ids[: args.prompt], ids[args.prompt:]
    llm.eval(prompt[:8])  # warm up
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    for tok in gen:
        llm.eval([tok])
    t2 = time.perf_counter()
    return dict(prefill_s=t1 - t0, decode_s=t2 - t1)


# ---- the driver ----
def find_llama_python(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [sys.executable, shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"]
    for py in candidates:
        if py and subprocess.run([py, "-c", "import llama_cpp"], capture_output=True).returncode == 0:
            return py
    return None


def run_worker(python: str, backend: str, args, perplexity: bool) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", backend, "-m", str(args.model), "-t", str(args.threads),
           "-p", str(args.prompt), "-n", str(args.n_predict), "-c", str(args.ctx), "-ctk", args.cache_type] \
        + (["--perplexity"] if perplexity else []) \
        + (["--int8-activations"] if args.int8_activations else [])
    env = dict(os.environ, PYTHONPATH=str(REPO) if backend == "ours" else os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{backend} worker failed:\n{res.stderr.strip()[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", type=Path, default=None, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--prompt", type=int, default=256, help="prompt tokens")
    ap.add_argument("-n", "--n-predict", type=int, default=128, help="decoded tokens")
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-ctk", "--cache-type", choices=["f16", "f32"], default="f16",
                    help="KV cache type of both sides (default f16, llama.cpp's and run.py's)")
    ap.add_argument("--no-llama", action="store_true", help="measure our backend only")
    ap.add_argument("--llama-python", default=None, help="interpreter that can import llama_cpp")
    ap.add_argument("--perplexity", action="store_true", help="also measure perplexity (ours) on tinyshakespeare-40k")
    ap.add_argument("--int8-activations", action="store_true", help="ours with 8-bit activations (llama.cpp's method)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--worker", choices=["ours", "llama.cpp"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model is None:
        sys.path.insert(0, str(REPO))
        from lessons.default_model import INSTALL_HINT, default_model_path
        args.model = default_model_path()
        if args.model is None:
            sys.exit(f"no model given and the default one is not installed ({INSTALL_HINT})")
    if args.prompt + args.n_predict > args.ctx:
        sys.exit(f"-p {args.prompt} + -n {args.n_predict} does not fit in -c {args.ctx}")

    if args.worker:  # a subprocess: measure once, print the figures, exit (peak RSS is this process's own)
        out = worker_ours(args) if args.worker == "ours" else worker_llama_cpp(args)
        out["peak_rss_bytes"] = peak_rss_bytes()
        print(json.dumps(out))
        return

    backends = [("ours", sys.executable)]
    llama_py = None if args.no_llama else find_llama_python(args.llama_python)
    if llama_py:
        backends.append(("llama.cpp", llama_py))
    elif not args.no_llama:
        print("llama-cpp-python not importable: measuring our backend only", file=sys.stderr)

    results = {name: [] for name, _ in backends}
    for r in range(args.rounds):
        for name, py in backends:
            res = run_worker(py, name, args, perplexity=args.perplexity and name == "ours" and r == 0)
            results[name].append(res)
            print(f"round {r + 1} {name:9s}: prefill {args.prompt / res['prefill_s']:8.1f} tok/s  "
                  f"decode {args.n_predict / res['decode_s']:7.1f} tok/s  peak RSS {res['peak_rss_bytes'] / 2**20:6.1f} MiB",
                  file=sys.stderr)

    model_bytes = os.path.getsize(args.model)
    summary = {"model": str(args.model), "model_bytes": model_bytes, "threads": args.threads, "prompt": args.prompt,
               "n_predict": args.n_predict, "rounds": args.rounds}
    for name, runs in results.items():
        summary[name] = {
            "prefill_tok_s": max(args.prompt / r["prefill_s"] for r in runs),
            "decode_tok_s": max(args.n_predict / r["decode_s"] for r in runs),
            "peak_rss_mib": min(r["peak_rss_bytes"] for r in runs) / 2**20,
        }
        for key in ("perplexity", "perplexity_stderr", "perplexity_s", "perplexity_tokens", "kv_cache_bytes"):
            vals = [r[key] for r in runs if key in r]
            if vals:
                summary[name][key] = vals[0]
    ours = summary["ours"]
    budget = model_bytes + ours["kv_cache_bytes"] + 60 * 2**20
    ours["rss_budget_mib"] = budget / 2**20  # model file + KV cache + 60 MB
    if "llama.cpp" in summary:
        lc = summary["llama.cpp"]
        summary["ratio"] = {"prefill": ours["prefill_tok_s"] / lc["prefill_tok_s"], "decode": ours["decode_tok_s"] / lc["decode_tok_s"]}

    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"\n{Path(args.model).name}  ({model_bytes / 2**20:.1f} MiB), {args.threads} threads, "
          f"{args.prompt}-token prompt, {args.n_predict} decoded tokens, KV cache {args.cache_type}, best of {args.rounds}")
    print(f"{'backend':10s} {'prefill tok/s':>14s} {'decode tok/s':>13s} {'peak RSS MiB':>13s}")
    for name in results:
        s = summary[name]
        print(f"{name:10s} {s['prefill_tok_s']:14.1f} {s['decode_tok_s']:13.1f} {s['peak_rss_mib']:13.1f}")
    if args.perplexity:  # the perplexity pass holds a chunk's logits and the tokenized text: not the budget's case
        print("peak RSS includes the perplexity pass (512 x n_vocab logits, the text): run without --perplexity for the budget check")
    else:
        print(f"our peak RSS budget (model + KV cache {ours['kv_cache_bytes'] / 2**20:.1f} MiB + 60 MB): {ours['rss_budget_mib']:.1f} MiB"
              f" -> {'OK' if ours['peak_rss_mib'] <= ours['rss_budget_mib'] else 'OVER'}")
    if "ratio" in summary:
        print(f"ours / llama.cpp: prefill {summary['ratio']['prefill']:.2f}x, decode {summary['ratio']['decode']:.2f}x"
              "   (targets: >= 2x each)")
    if "perplexity" in ours:
        print(f"perplexity (ours, -c 512, {ours['perplexity_tokens']} tokens): {ours['perplexity']:.3f} +/- "
              f"{ours['perplexity_stderr']:.3f} in {ours['perplexity_s']:.1f} s   (llama.cpp Q4_1: 40.291)")


if __name__ == "__main__":
    main()
