#!/usr/bin/env python3
"""Benchmark the C++ backend against llama.cpp: prefill and decode tokens/s, peak RSS.

    python tools/benchmark.py                      # default model, 2 threads, 256-token prompt, 128 decoded tokens
    python tools/benchmark.py -t 1 --rounds 5 -m model.gguf
    python tools/benchmark.py --perplexity         # also perplexity on tinyshakespeare-40k (-c 512), ours only

Each backend runs in its own process, started once, so its peak RSS (VmHWM) is its own and the page
cache is all that carries over. The two take turns: in each round both evaluate the prompt, then both
decode the 128 tokens in turns of --chunk tokens (16: a fraction of a second each), with a short
untimed pause before each turn. On a shared machine whose speed changes from one second to the next,
both sides then see the same moments. Each round gives a pair of figures and their ratio; the summary
is the median over the rounds.
llama.cpp is llama-cpp-python, in this interpreter or the first `python3` on PATH that can import it
(--llama-python to choose): prefill = one eval of the prompt, decode = n single-token evals.
Both decode the same fixed token ids, so neither pays for sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
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


# ---- workers: one process per backend, timing what the driver asks for ----
def open_ours(args):
    """(prefill, decode_one, info) for our C++ backend."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from cpp_core.model import CppLlama
    from lessons.l01_gguf import GGUFFile

    gguf = GGUFFile(args.model)
    model = CppLlama(gguf, n_ctx=args.ctx, n_threads=args.threads, int8_activations=args.int8_activations,
                     kv_type=args.cache_type)
    ids = np.array(token_ids(args.prompt + args.n_predict, model.config.n_vocab), np.int32)

    def prefill():
        model.reset()
        model.forward(ids[: args.prompt], 0, last_only=True)

    def decode_one(i):  # the i-th generated token, at position prompt + i
        model.forward(ids[args.prompt + i: args.prompt + i + 1], args.prompt + i, last_only=True)

    def info():
        out = dict(kv_cache_bytes=model.kv_cache_bytes)
        if args.perplexity:
            out.update(perplexity_ours(gguf, model))
        return out
    model.forward(ids[:8], 0, last_only=True)  # warm up: page in the weights, start the threads
    return prefill, decode_one, info


def perplexity_ours(gguf, model) -> dict:
    from lessons.l02_tokenizer import Tokenizer
    from lessons.l11_perplexity import perplexity
    import numpy as np

    text = (REPO / "tests" / "fixtures" / "reference" / "tinyshakespeare-40k.txt").read_text()  # committed
    ids = np.array(Tokenizer.from_metadata(gguf.metadata).encode(text, add_bos=False), np.int32)
    t0 = time.perf_counter()
    ppl, stderr = perplexity(model, ids, 512)
    return dict(perplexity=ppl, perplexity_stderr=stderr, perplexity_s=time.perf_counter() - t0, perplexity_tokens=len(ids))


GGML_TYPE = {"f32": 0, "f16": 1}  # llama.cpp's type ids for the KV cache


def open_llama_cpp(args):
    """(prefill, decode_one, info) for llama.cpp."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(args.model), n_ctx=args.ctx, n_batch=max(512, args.prompt), n_ubatch=max(512, args.prompt),
                n_threads=args.threads, n_threads_batch=args.threads, verbose=False,
                type_k=GGML_TYPE[args.cache_type], type_v=GGML_TYPE[args.cache_type])
    ids = token_ids(args.prompt + args.n_predict, llm.n_vocab())

    def prefill():
        llm.reset()
        llm.eval(ids[: args.prompt])

    def decode_one(i):
        llm.eval([ids[args.prompt + i]])
    llm.eval(ids[:8])  # warm up
    return prefill, decode_one, dict


def serve(args) -> None:
    """The worker's loop: one JSON line out per command in. `prefill`: reset, evaluate the prompt;
    `decode K`: the next K tokens; `done`: the extra figures and this process's peak RSS, then exit."""
    prefill, decode_one, info = (open_ours if args.worker == "ours" else open_llama_cpp)(args)
    print(json.dumps({"ready": True}), flush=True)
    next_token = 0
    for line in sys.stdin:
        cmd = line.split()
        t0 = time.perf_counter()
        if cmd[0] == "prefill":
            prefill()
            next_token = 0
        elif cmd[0] == "decode":
            for i in range(next_token, next_token + int(cmd[1])):
                decode_one(i)
            next_token += int(cmd[1])
        else:  # done
            print(json.dumps(dict(info(), peak_rss_bytes=peak_rss_bytes())), flush=True)
            return
        print(json.dumps({"s": time.perf_counter() - t0}), flush=True)


# ---- the driver ----
def find_llama_python(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [sys.executable, shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"]
    for py in candidates:
        if py and subprocess.run([py, "-c", "import llama_cpp"], capture_output=True).returncode == 0:
            return py
    return None


class Worker:
    """A backend's process, and the questions the driver asks it."""

    def __init__(self, python: str, backend: str, args):
        cmd = [python, str(Path(__file__).resolve()), "--worker", backend, "-m", str(args.model), "-t", str(args.threads),
               "-p", str(args.prompt), "-n", str(args.n_predict), "-c", str(args.ctx), "-ctk", args.cache_type] \
            + (["--perplexity"] if args.perplexity and backend == "ours" else []) \
            + (["--int8-activations"] if args.int8_activations else [])
        env = dict(os.environ, PYTHONPATH=str(REPO) if backend == "ours" else os.environ.get("PYTHONPATH", ""))
        self.backend, self.timeout = backend, args.timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker cannot block on it
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        self.reply()  # {"ready": true} once the model is loaded and warm

    def reply(self) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.stderr.seek(0)
            lines = [x for x in self.stderr.read().splitlines() if x.strip()]
            raise RuntimeError(f"{self.backend} worker " + (f"failed: {lines[-1].strip()}" if lines else "failed or timed out"))
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


# After an eval returns, llama.cpp's worker threads keep polling for more work for ~10 ms (measured: 8-10 ms
# of CPU). Back to back, that would take a core from the other side's turn; a pause between turns, not
# timed, lets each turn start on a quiet machine, as it would in a process of its own.
SETTLE_S = 0.05


def take_turn(worker: Worker, command: str) -> float:
    time.sleep(SETTLE_S)
    return worker.ask(command)["s"]


def measure_round(workers: dict, order: list, args) -> dict:
    """One round: each backend evaluates the prompt, then they decode in turns of args.chunk tokens."""
    out = {name: {"prefill_s": take_turn(workers[name], "prefill"), "decode_s": 0.0} for name in order}
    for first in range(0, args.n_predict, args.chunk):
        k = min(args.chunk, args.n_predict - first)
        for name in order:
            out[name]["decode_s"] += take_turn(workers[name], f"decode {k}")
    return out


def run_rounds(backends, workers: dict, args):
    """Starts the workers (into `workers`: the caller closes them) and runs the rounds: (rounds, final figures)."""
    names = [name for name, _ in backends]
    for name, py in backends:
        workers[name] = Worker(py, name, args)
    rounds = []
    for r in range(args.rounds):
        res = measure_round(workers, names if r % 2 == 0 else names[::-1], args)  # who goes first alternates
        rounds.append(res)
        for name in names:
            print(f"round {r + 1} {name:9s}: prefill {args.prompt / res[name]['prefill_s']:8.1f} tok/s  "
                  f"decode {args.n_predict / res[name]['decode_s']:7.1f} tok/s", file=sys.stderr)
    final = {name: workers[name].ask("done") for name in names}
    return rounds, final


def report(args, names, rounds, final) -> None:
    model_bytes = os.path.getsize(args.model)
    summary = {"model": str(args.model), "model_bytes": model_bytes, "threads": args.threads, "prompt": args.prompt,
               "n_predict": args.n_predict, "rounds": args.rounds, "chunk": args.chunk}
    for name in names:
        summary[name] = {
            "prefill_tok_s": statistics.median(args.prompt / r[name]["prefill_s"] for r in rounds),
            "decode_tok_s": statistics.median(args.n_predict / r[name]["decode_s"] for r in rounds),
            "peak_rss_mib": final[name]["peak_rss_bytes"] / 2**20,
        }
        for key in ("perplexity", "perplexity_stderr", "perplexity_s", "perplexity_tokens", "kv_cache_bytes"):
            if key in final[name]:
                summary[name][key] = final[name][key]
    ours = summary["ours"]
    budget = model_bytes + ours["kv_cache_bytes"] + 60 * 2**20
    ours["rss_budget_mib"] = budget / 2**20  # model file + KV cache + 60 MB
    if "llama.cpp" in summary:
        per_round = [{k: r["llama.cpp"][f"{k}_s"] / r["ours"][f"{k}_s"] for k in ("prefill", "decode")} for r in rounds]
        summary["ratio_per_round"] = per_round  # each round's pair: both measured in the same seconds
        summary["ratio"] = {k: statistics.median(p[k] for p in per_round) for k in ("prefill", "decode")}

    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"\n{Path(args.model).name}  ({model_bytes / 2**20:.1f} MiB), {args.threads} threads, "
          f"{args.prompt}-token prompt, {args.n_predict} decoded tokens, KV cache {args.cache_type}, "
          f"median of {args.rounds} rounds (decoding in turns of {args.chunk} tokens)")
    print(f"{'backend':10s} {'prefill tok/s':>14s} {'decode tok/s':>13s} {'peak RSS MiB':>13s}")
    for name in names:
        s = summary[name]
        print(f"{name:10s} {s['prefill_tok_s']:14.1f} {s['decode_tok_s']:13.1f} {s['peak_rss_mib']:13.1f}")
    if args.perplexity:  # the perplexity pass holds a chunk's logits and the tokenized text: not the budget's case
        print("peak RSS includes the perplexity pass (512 x n_vocab logits, the text): run without --perplexity for the budget check")
    else:
        print(f"our peak RSS budget (model + KV cache {ours['kv_cache_bytes'] / 2**20:.1f} MiB + 60 MB): {ours['rss_budget_mib']:.1f} MiB"
              f" -> {'OK' if ours['peak_rss_mib'] <= ours['rss_budget_mib'] else 'OVER'}")
    if "ratio" in summary:
        rounds_text = ", ".join(f"{p['decode']:.2f}" for p in summary["ratio_per_round"])
        print(f"ours / llama.cpp: prefill {summary['ratio']['prefill']:.2f}x, decode {summary['ratio']['decode']:.2f}x"
              f"   (targets: >= 2x each; decode per round: {rounds_text})")
    if "perplexity" in ours:
        print(f"perplexity (ours, -c 512, {ours['perplexity_tokens']} tokens): {ours['perplexity']:.3f} +/- "
              f"{ours['perplexity_stderr']:.3f} in {ours['perplexity_s']:.1f} s   (llama.cpp Q4_1: 40.291)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", type=Path, default=None, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--prompt", type=int, default=256, help="prompt tokens")
    ap.add_argument("-n", "--n-predict", type=int, default=128, help="decoded tokens")
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=16, help="decoded tokens per turn (default 16)")
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
            sys.exit(f"error: no model given and the default one is not installed ({INSTALL_HINT})")
    if args.prompt + args.n_predict > args.ctx:
        sys.exit(f"error: -p {args.prompt} + -n {args.n_predict} does not fit in -c {args.ctx}")
    if args.rounds < 1 or args.chunk < 1 or args.prompt < 8 or args.n_predict < 1 or args.threads < 1:
        sys.exit("error: --rounds, --chunk, -n and -t must be at least 1, -p at least 8")

    if args.worker:  # a subprocess: answer the driver's commands (peak RSS is this process's own)
        serve(args)
        return

    backends = [("ours", sys.executable)]
    llama_py = None if args.no_llama else find_llama_python(args.llama_python)
    if llama_py:
        backends.append(("llama.cpp", llama_py))
    elif not args.no_llama:
        print("llama-cpp-python not importable: measuring our backend only", file=sys.stderr)

    names = [name for name, _ in backends]
    workers = {}
    try:
        rounds, final = run_rounds(backends, workers, args)
    except RuntimeError as e:  # a worker that failed: its last line says why
        sys.exit(f"error: {e}")
    finally:
        for w in workers.values():
            w.close()
    report(args, names, rounds, final)


if __name__ == "__main__":
    main()
