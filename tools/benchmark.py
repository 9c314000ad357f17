#!/usr/bin/env python3
"""Benchmark the C++ backend against native llama.cpp (llama-bench): prefill and decode tokens/s, one row per file.

    python tools/benchmark.py                          # the default model: 2 threads, pp256, tg128, 3 rounds
    python tools/benchmark.py -m a.gguf -m b.gguf      # several files in one run (-m may also name a folder)
    python tools/benchmark.py --presets                # every export.py preset, made from the default model's F32 weights
    python tools/benchmark.py --contexts 256,2048,8192 # also decode speed near the end of longer contexts
    python tools/benchmark.py --contexts none --rounds 5 --json

The anchor is llama.cpp's own llama-bench (tools/build_llama_tools.sh builds it; --llama-bin, $LLAMA_BIN or
~/.cache/llama-tools finds it), not the Python binding: the binding's per-token overhead costs llama.cpp 15-25% of
its decode speed. Without llama-bench the script still runs and prints our columns only, with a note.

How a file is measured. Our backend runs in a worker process of its own, started once per file (its peak RSS is its
own). Each round, both sides evaluate a --prompt-token prompt (prefill) and then decode -n tokens one at a time
(decode); on our side in the worker, on llama.cpp's side in one `llama-bench -p P -n N -r 1` process. Who goes first
alternates from round to round, so on a shared machine whose speed drifts both sides see the same stretches; each
round gives a ratio ours / llama.cpp, and the figures printed are medians over the rounds.

The other columns:
  read BW   tools/bench_memory.c's one-core read bandwidth, measured after each file's rounds, in the same run
  of BW     decode's share of it: file bytes x tokens/s / bandwidth (decode reads every weight once per token)
  RSS       our worker's peak RSS (VmHWM) against the budget file + KV cache + 60 MB
  2x prefill needs   the multiply-adds per second that twice llama.cpp's prefill would take, as a share of the
            roof tools/bench_peak.c measures for the product our kernels use (prefill is compute-bound: a share
            near or over 100% says 2x is out of reach on this CPU, whatever the kernel)
--completion: each round also runs llama-completion (llama.cpp's one-shot command line, the classic llama-cli) on a
prompt of about --prompt tokens and reads its own timing lines (second table).
--contexts C1,C2,..: decode speed of the --context-gen tokens that end at position C (depth C - N), against
`llama-bench -d C-N -n N` at the same depth, in a worker whose cache holds the largest context.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the lessons and cpp_core, imported where used (the worker's peak RSS is its own)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
RSS_SLACK = 60 * 2**20  # the peak-memory budget: file + KV cache + 60 MB


# =====================================================================================================================
# Our side: a worker process per file
# =====================================================================================================================
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
    """Fixed pseudo-random token ids; skips the first 256 ids (specials, bytes). llama-bench feeds random ids too."""
    import random
    rng = random.Random(seed)
    first = 256 if n_vocab > 512 else 0  # a tiny test vocabulary: any id
    return [rng.randrange(first, n_vocab) for _ in range(n)]


def serve(args) -> None:
    """The worker: loads the model with a cache of args.ctx positions, then answers one JSON line per command:
    `prefill N`: reset, evaluate N prompt tokens at once; `decode K`: the next K tokens one at a time;
    `done`: the KV cache size and this process's peak RSS, then exit. Each answer carries the command's seconds."""
    import numpy as np

    from cpp_core.model import CppLlama
    from lessons.l01_gguf import GGUFFile

    model = CppLlama(GGUFFile(args.model[0]), n_ctx=args.ctx, n_threads=args.threads, kv_type=args.cache_type)
    ids = np.array(token_ids(args.ctx, model.config.n_vocab), np.int32)  # [ctx]
    model.forward(ids[:8], 0, last_only=True)  # warm up: page the weights in, start the threads
    print(json.dumps({"ready": True, "n_ctx_train": model.config.n_ctx_train}), flush=True)
    pos = 0
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "prefill":
            model.reset()  # not timed: llama-bench clears its cache before its clock starts too
        t0 = time.perf_counter()
        if cmd[0] == "prefill":
            pos = int(cmd[1])
            model.forward(ids[:pos], 0, last_only=True)  # logits of the last token only, as llama-bench asks for
        elif cmd[0] == "decode":
            for _ in range(int(cmd[1])):
                model.forward(ids[pos: pos + 1], pos, last_only=True)
                pos += 1
        elif cmd[0] == "perplexity":  # llama-perplexity's method, -c 512, on the 40k Shakespeare excerpt
            print(json.dumps(perplexity_ours(model)), flush=True)
            continue
        else:  # done
            print(json.dumps(dict(kv_cache_bytes=model.kv_cache_bytes, peak_rss_bytes=peak_rss_bytes())), flush=True)
            return
        print(json.dumps({"s": time.perf_counter() - t0}), flush=True)


def prompt_text(model: Path, n: int) -> str:
    """Text that the model's tokenizer turns into about n tokens: our random ids, decoded, re-encoded, cut to n.
    (In the driver, not the worker: the tokenizer's tables would count in the worker's peak RSS.)"""
    from lessons.l01_gguf import GGUFFile
    from lessons.l02_tokenizer import Tokenizer
    gguf = GGUFFile(model)
    tok = Tokenizer.from_metadata(gguf.metadata)
    text = tok.decode(token_ids(n, tok.n_vocab), special=False)
    return tok.decode(tok.encode(text, add_bos=False, parse_special=False)[:n], special=False)


def perplexity_ours(model) -> dict:
    import numpy as np

    from lessons.l02_tokenizer import Tokenizer
    from lessons.l11_perplexity import perplexity

    text = (REPO / "tests" / "fixtures" / "reference" / "tinyshakespeare-40k.txt").read_text()
    ids = np.array(Tokenizer.from_metadata(model._gguf.metadata).encode(text, add_bos=False), np.int32)
    t0 = time.perf_counter()
    ppl, stderr = perplexity(model, ids, 512)
    return dict(perplexity=ppl, perplexity_stderr=stderr, perplexity_s=time.perf_counter() - t0, perplexity_tokens=len(ids))


class Worker:
    """Our backend's process for one file, and the questions the driver asks it."""

    def __init__(self, model: Path, ctx: int, args):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "-m", str(model), "-t", str(args.threads),
               "-c", str(ctx), "-ctk", args.cache_type]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.timeout = args.timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker cannot block on it
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        self.n_ctx_train = self.reply()["n_ctx_train"]  # once the model is loaded and warm

    def reply(self) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.stderr.seek(0)
            lines = [x for x in self.stderr.read().splitlines() if x.strip()]
            raise RuntimeError("our worker " + (f"failed: {lines[-1].strip()}" if lines else "failed or timed out"))
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def seconds(self, command: str) -> float:
        time.sleep(SETTLE_S)
        return self.ask(command)["s"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


# A short pause before each timed step, not timed: a process that just finished (llama.cpp's threads spin for ~10 ms
# after their last job) must not take a core from the next step.
SETTLE_S = 0.05


# =====================================================================================================================
# llama.cpp's side: llama-bench, one process per round
# =====================================================================================================================
def find_llama_bin(explicit: str | None, tool: str = "llama-bench") -> Path | None:
    """The folder of llama.cpp's tools: --llama-bin, $LLAMA_BIN (as given, whether or not `tool` is in it), else the
    newest build tools/build_llama_tools.sh left in its cache that holds `tool`, else `tool`'s folder on PATH."""
    if explicit:
        return Path(explicit)
    if os.environ.get("LLAMA_BIN"):
        return Path(os.environ["LLAMA_BIN"])
    for folder in sorted((CACHE / "llama-tools").glob("llama_cpp_python-*/vendor/llama.cpp/build/bin"), reverse=True):
        if (folder / tool).is_file():
            return folder
    on_path = shutil.which(tool)
    return Path(on_path).parent if on_path else None


def run_measured(cmd: list[str], timeout: float) -> tuple[int, str, str, int]:
    """Runs cmd; returns (exit code, stdout, stderr, the child's peak RSS in bytes, from wait4's rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen, so it does not wait again
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read(), usage.ru_maxrss * 1024


def llama_bench(bin_dir: Path, model: Path, args, prompt: int, gen: int, depth: int = 0) -> dict:
    """One llama-bench process, one repetition: {"prefill_tok_s", "decode_tok_s", "peak_rss_bytes"} (what it ran)."""
    cmd = [str(bin_dir / "llama-bench"), "-m", str(model), "-t", str(args.threads), "-r", "1", "-o", "json",
           "-p", str(prompt), "-n", str(gen), "-ctk", args.cache_type, "-ctv", args.cache_type]
    if depth:
        cmd += ["-d", str(depth)]
    code, out, err, rss = run_measured(cmd, args.timeout)
    if code != 0:
        last = [x for x in err.splitlines() if x.strip()]
        raise RuntimeError(f"llama-bench failed on {model.name} (exit {code}): {last[-1].strip() if last else 'no message'}")
    result = {"peak_rss_bytes": rss}
    for test in json.loads(out):
        key = "decode_tok_s" if test["n_gen"] > 0 else "prefill_tok_s"
        result[key] = float(test["avg_ts"])
    return result


COMPLETION_TIMING = re.compile(r"_perf(?:_context)?_print:\s+(prompt eval|eval) time =\s*([0-9.]+) ms /\s*(\d+) (?:tokens|runs)")


def llama_completion(bin_dir: Path, model: Path, args, prompt_file: Path) -> dict:
    """llama.cpp's one-shot command line (llama-completion, the classic llama-cli): its own timing lines for the
    prompt and for -n generated tokens (greedy, --ignore-eos so it always makes all of them)."""
    cmd = [str(bin_dir / "llama-completion"), "-m", str(model), "-t", str(args.threads), "-f", str(prompt_file),
           "-n", str(args.n_predict), "-c", str(2 * args.prompt + args.n_predict + 16), "--temp", "0", "--ignore-eos",
           "-no-cnv", "--no-display-prompt", "-ctk", args.cache_type, "-ctv", args.cache_type]
    code, _out, err, _rss = run_measured(cmd, args.timeout)
    found = {kind: (float(ms), int(n)) for kind, ms, n in COMPLETION_TIMING.findall(err)}
    if code != 0 or set(found) != {"prompt eval", "eval"}:
        last = [x for x in err.splitlines() if x.strip()]
        raise RuntimeError(f"llama-completion failed on {model.name} (exit {code}): {last[-1].strip() if last else 'no message'}")
    (pp_ms, pp_n), (tg_ms, tg_n) = found["prompt eval"], found["eval"]
    return {"prefill_tok_s": pp_n / pp_ms * 1e3, "decode_tok_s": tg_n / tg_ms * 1e3, "prompt_tokens": pp_n,
            "decode_tokens": tg_n}


# =====================================================================================================================
# The machine's roofs: tools/bench_memory.c (read bandwidth) and tools/bench_peak.c (multiply-adds), built once
# =====================================================================================================================
def build_c_tool(name: str, libs: tuple[str, ...] = ()) -> Path | None:
    """tools/<name>.c compiled with the system's C compiler (-march=native where it may), cached in the temp dir."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    exe = Path(tempfile.gettempdir()) / f"llama-lessons-{name}-{os.getuid()}"
    source = REPO / "tools" / f"{name}.c"
    if exe.is_file() and exe.stat().st_mtime >= source.stat().st_mtime:
        return exe
    for flags in (["-march=native"], []):
        tmp = exe.with_suffix(".tmp")
        if subprocess.run([cc, "-O2", *flags, str(source), "-o", str(tmp), *libs], capture_output=True).returncode == 0:
            tmp.replace(exe)
            return exe
    return None


def build_bench_memory() -> Path | None:
    return build_c_tool("bench_memory")


def read_bandwidth(exe: Path | None, mib: int) -> float | None:
    """GB/s of bench_memory's `read` loop (one core streaming a buffer of `mib` MiB, best of 3)."""
    if exe is None:
        return None
    p = subprocess.run([str(exe), str(mib), "3"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("read "):
            return float(line.split()[1])
    return None


def arithmetic_roofs(threads: int) -> dict[str, float]:
    """GMAC/s of tools/bench_peak.c on `threads` threads: {"fma f32": .., "dpwssd i16": .., ...} (what this CPU has)."""
    exe = build_c_tool("bench_peak", ("-lpthread",))
    if exe is None:
        return {}
    p = subprocess.run([str(exe), str(threads)], capture_output=True, text=True)
    return {m[0]: float(m[1]) for m in re.findall(r"^(\S+ \S+)\s+([0-9.]+) GMAC/s$", p.stdout, re.M)}


FLOAT_TYPES = {"F32", "F16", "BF16"}


def prompt_macs_per_token(model: Path, prompt: int) -> tuple[float, bool]:
    """Multiply-adds per prompt token of a llama-bench-style prefill (logits of the last token only, so the output
    matrix is left out), and whether the file's layer matrices are all float (F32/F16/BF16).

    Every layer matrix is used once per token (rows x cols MACs); attention adds, per layer, q_dim MACs per key for
    Q.K and again for P.V, and the tokens of a prompt of P see (P + 1) / 2 keys on average."""
    from lessons.l01_gguf import GGUFFile  # the lesson's reader; only the tensor table is used
    with GGUFFile(model) as f:
        mats = {n: t for n, t in f.tensors.items() if n.startswith("blk.") and len(t.ne) == 2}
        macs = sum(t.n_elements for t in mats.values())
        q_dims = [t.ne[1] for n, t in mats.items() if n.endswith(".attn_q.weight")]
        all_float = all(t.ggml_type.name in FLOAT_TYPES for t in mats.values())
    return float(macs + sum(q_dims) * (prompt + 1)), all_float


# =====================================================================================================================
# One file: the rounds, the contexts
# =====================================================================================================================
def measure_file(model: Path, args, bin_dir: Path | None, bw_exe: Path | None) -> dict:
    row = {"file": str(model), "name": model.name, "bytes": model.stat().st_size, "rounds": []}
    worker = Worker(model, args.prompt + args.n_predict, args)
    prompt_file = None
    try:
        if args.completion and bin_dir is not None:
            prompt_file = Path(tempfile.mkstemp(suffix=".txt")[1])
            prompt_file.write_text(prompt_text(model, args.prompt))
        for r in range(args.rounds):
            sides = ["ours", "llama.cpp"] if r % 2 == 0 else ["llama.cpp", "ours"]
            got = {}
            for side in sides:
                if side == "ours":
                    pp, tg = worker.seconds(f"prefill {args.prompt}"), worker.seconds(f"decode {args.n_predict}")
                    got["ours"] = {"prefill_tok_s": args.prompt / pp, "decode_tok_s": args.n_predict / tg}
                elif bin_dir is not None:
                    time.sleep(SETTLE_S)
                    got["llama.cpp"] = llama_bench(bin_dir, model, args, args.prompt, args.n_predict)
                    if prompt_file is not None:
                        time.sleep(SETTLE_S)
                        got["llama-completion"] = llama_completion(bin_dir, model, args, prompt_file)
            row["rounds"].append(got)
            print(f"{model.name} round {r + 1}: " + "; ".join(
                f"{side} pp {v['prefill_tok_s']:.1f} tg {v['decode_tok_s']:.1f} tok/s" for side, v in got.items()),
                file=sys.stderr)
        row["ours_final"] = worker.ask("done")
        n_ctx_train = worker.n_ctx_train
    finally:
        worker.close()
        if prompt_file is not None:
            prompt_file.unlink()
    row["read_gb_s"] = read_bandwidth(bw_exe, args.bw_mib)
    row["prompt_macs_per_token"], row["all_float"] = prompt_macs_per_token(model, args.prompt)  # (the worker read it)
    if args.perplexity:
        worker = Worker(model, 512, args)
        try:
            row["perplexity"] = worker.ask("perplexity")
        finally:
            worker.close()

    contexts = [c for c in args.contexts if c <= n_ctx_train]
    row["contexts_skipped"] = [c for c in args.contexts if c > n_ctx_train]
    row["contexts"] = {}
    if contexts:
        worker = Worker(model, max(contexts), args)
        try:
            for c in contexts:
                depth, gen = c - args.context_gen, args.context_gen
                rounds = []
                for r in range(args.rounds):
                    got = {}
                    for side in (["ours", "llama.cpp"] if r % 2 == 0 else ["llama.cpp", "ours"]):
                        if side == "ours":
                            worker.seconds(f"prefill {depth}")  # fills the cache to the depth: not timed
                            got["ours"] = gen / worker.seconds(f"decode {gen}")
                        elif bin_dir is not None:
                            time.sleep(SETTLE_S)
                            got["llama.cpp"] = llama_bench(bin_dir, model, args, 0, gen, depth)["decode_tok_s"]
                    rounds.append(got)
                    print(f"{model.name} context {c} round {r + 1}: " + "; ".join(
                        f"{side} tg {v:.1f} tok/s" for side, v in got.items()), file=sys.stderr)
                row["contexts"][c] = rounds
            row["contexts_final"] = worker.ask("done")
        finally:
            worker.close()
    return summarize(row)


def against_roof(row: dict, roofs: dict[str, float]) -> None:
    """Prefill as multiply-adds per second, and the share of the roof that 2x llama.cpp's prefill would need.

    The roof is the narrowest product our kernels use for the file: float32 FMAs where its matrices are F32, F16 or
    BF16 (their products stay float32-exact), 16-bit integer dot products (vpdpwssd) for quantized files."""
    kind = "fma f32" if row["all_float"] else "dpwssd i16"
    if kind not in roofs:
        return
    row["roof"] = {"kind": kind, "gmac_s": roofs[kind]}
    row["ours"]["prefill_gmac_s"] = row["ours"]["prefill_tok_s"] * row["prompt_macs_per_token"] / 1e9
    if "llama.cpp" in row:
        need = 2 * row["llama.cpp"]["prefill_tok_s"] * row["prompt_macs_per_token"] / 1e9
        row["roof"]["share_for_2x"] = need / roofs[kind]


def summarize(row: dict) -> dict:
    """Medians over the rounds: each side's tok/s and the per-round ratios; bandwidth share; the RSS budget."""
    rounds = row["rounds"]
    for side in ("ours", "llama.cpp"):
        if all(side in r for r in rounds):
            row[side] = {k: statistics.median(r[side][k] for r in rounds) for k in ("prefill_tok_s", "decode_tok_s")}
    row["ours"].update(row.pop("ours_final"))
    row["ours"]["rss_budget_bytes"] = row["bytes"] + row["ours"]["kv_cache_bytes"] + RSS_SLACK
    if "llama.cpp" in row:
        row["llama.cpp"]["peak_rss_bytes"] = max(r["llama.cpp"]["peak_rss_bytes"] for r in rounds)
        row["ratio"] = {k: statistics.median(r["ours"][f"{k}_tok_s"] / r["llama.cpp"][f"{k}_tok_s"] for r in rounds)
                        for k in ("prefill", "decode")}
    if row.get("read_gb_s"):
        for side in ("ours", "llama.cpp"):
            if side in row:
                row[side]["of_read_bw"] = row["bytes"] * row[side]["decode_tok_s"] / (row["read_gb_s"] * 1e9)
    if all("llama-completion" in r for r in rounds):
        row["llama-completion"] = {k: statistics.median(r["llama-completion"][k] for r in rounds)
                                   for k in ("prefill_tok_s", "decode_tok_s", "prompt_tokens", "decode_tokens")}
        row["llama-completion"]["decode_ratio"] = statistics.median(
            r["ours"]["decode_tok_s"] / r["llama-completion"]["decode_tok_s"] for r in rounds)
    if "ratio" in row:  # issue 18's bar: both >= 2x llama.cpp; decode may instead reach 75% of the read bandwidth
        row["meets_bar"] = row["ratio"]["prefill"] >= 2 and (row["ratio"]["decode"] >= 2 or row["ours"].get("of_read_bw", 0) >= 0.75)
    ctx = {}
    for c, rounds in row["contexts"].items():
        ctx[c] = {"ours": statistics.median(r["ours"] for r in rounds)}
        if all("llama.cpp" in r for r in rounds):
            ctx[c]["llama.cpp"] = statistics.median(r["llama.cpp"] for r in rounds)
            ctx[c]["ratio"] = statistics.median(r["ours"] / r["llama.cpp"] for r in rounds)
        ctx[c]["rounds"] = rounds
    row["contexts"] = ctx
    if "contexts_final" in row:
        final = row.pop("contexts_final")
        row["contexts_rss"] = dict(final, rss_budget_bytes=row["bytes"] + final["kv_cache_bytes"] + RSS_SLACK)
    return row


# =====================================================================================================================
# The files: -m (files or folders), --presets
# =====================================================================================================================
def default_model() -> Path:
    from lessons.default_model import INSTALL_HINT, default_model_path
    path = default_model_path()
    if path is None:
        raise SystemExit(f"error: the default model is not installed ({INSTALL_HINT})")
    return path


def make_presets(folder: Path) -> list[Path]:
    """Every export.py preset of the default model, made from its F32 weights (cached in `folder`):
    export.py DEFAULT F32.gguf F32, then export.py F32.gguf PRESET.gguf PRESET for each other preset."""
    import export
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for preset in export.PRESETS:  # F32 first: the others are made from it
        out = folder / f"{preset}.gguf"
        if not out.is_file():
            source = default_model() if preset == "F32" else folder / "F32.gguf"
            print(f"making {out} (export.py {source.name} {out.name} {preset})", file=sys.stderr)
            p = subprocess.run([sys.executable, str(REPO / "export.py"), str(source), str(out), preset],
                               capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
            if p.returncode != 0:
                last = (p.stderr.strip().splitlines() or ["no message"])[-1]
                raise SystemExit(f"error: export.py {preset} failed: {last}")
        files.append(out)
    return files


def model_files(args) -> list[Path]:
    files = []
    for m in args.model or []:
        if m.is_dir():
            found = sorted(m.glob("*.gguf"))
            if not found:
                raise SystemExit(f"error: no .gguf files in {m}")
            files += found
        elif m.is_file():
            files.append(m)
        else:
            raise SystemExit(f"error: {m}: no such file or folder")
    if args.presets is not None:
        files = [default_model()] + make_presets(args.presets) + files
    return files or [default_model()]


# =====================================================================================================================
# The report
# =====================================================================================================================
def fmt(x, spec: str, suffix: str = "") -> str:
    return "-" if x is None else format(x, spec) + suffix


SIZE_TIE = 0.05  # files closer than 5% in size are not held to the smaller-is-faster check


def roof_cell(row: dict) -> str:
    roof = row.get("roof", {})
    if "share_for_2x" not in roof:
        return "-"
    return f"{roof['share_for_2x']:.0%} of {roof['kind'].split()[1]}"


def report(rows: list[dict], args, have_llama: bool) -> str:
    lines = [f"{args.threads} threads, pp{args.prompt} / tg{args.n_predict}, KV cache {args.cache_type}, "
             f"median of {args.rounds} alternating rounds; ratio = ours / llama-bench in the same round"]
    if not have_llama:
        lines.append("llama-bench not found (tools/build_llama_tools.sh builds it): our columns only")
    lines.append("")
    lines.append("| file | MiB | prefill ours | prefill llama.cpp | ratio | decode ours | decode llama.cpp | ratio "
                 "| read GB/s | decode of BW ours / llama.cpp | peak RSS MiB / budget | 2x prefill needs | bar |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    for row in rows:
        o, lc, ratio = row["ours"], row.get("llama.cpp", {}), row.get("ratio", {})
        rss_ok = "" if o["peak_rss_bytes"] <= o["rss_budget_bytes"] else " OVER"
        lines.append(
            f"| {row['name']} | {row['bytes'] / 2**20:.1f} | {o['prefill_tok_s']:.1f} | {fmt(lc.get('prefill_tok_s'), '.1f')} "
            f"| {fmt(ratio.get('prefill'), '.2f', 'x')} | {o['decode_tok_s']:.1f} | {fmt(lc.get('decode_tok_s'), '.1f')} "
            f"| {fmt(ratio.get('decode'), '.2f', 'x')} | {fmt(row.get('read_gb_s'), '.1f')} "
            f"| {fmt(o.get('of_read_bw'), '.0%')} / {fmt(lc.get('of_read_bw'), '.0%')} "
            f"| {o['peak_rss_bytes'] / 2**20:.1f} / {o['rss_budget_bytes'] / 2**20:.1f}{rss_ok} "
            f"| {roof_cell(row)} "
            f"| {'-' if 'meets_bar' not in row else 'met' if row['meets_bar'] else 'not met'} |")
    lines.append("bar: prefill >= 2x llama.cpp and decode >= 2x llama.cpp or >= 75% of the read bandwidth (issue 18)")
    roofs = getattr(args, "roofs", {})
    if roofs:
        lines.append(f"roofs ({args.threads} threads, tools/bench_peak.c): " + ", ".join(
            f"{k} {v:.0f}" for k, v in roofs.items()) + " GMAC/s; 2x prefill needs = 2 x llama.cpp's prefill x "
            "multiply-adds per prompt token, as a share of the roof of the product our kernels use for the file "
            "(f32 FMA for F32/F16/BF16, 16-bit integers for quantized files)")
    # A smaller file should never decode slower. Files within SIZE_TIE of each other's size are not compared: their
    # difference in bytes read is smaller than one run's noise (Q2_K and Q3_K_S of the default model differ by 0.1%).
    by_size = sorted(rows, key=lambda r: r["bytes"])
    slower = [f"{a['name']} ({a['ours']['decode_tok_s']:.1f} tok/s) < {b['name']} ({b['ours']['decode_tok_s']:.1f})"
              for i, a in enumerate(by_size) for b in by_size[i + 1:]
              if b["bytes"] >= a["bytes"] * (1 + SIZE_TIE) and a["ours"]["decode_tok_s"] < b["ours"]["decode_tok_s"]]
    if len(rows) > 1:
        lines.append(f"decode never slower on a file at least {SIZE_TIE:.0%} smaller: " + ("yes" if not slower else
                     f"no, {len(slower)} pairs, e.g. " + "; ".join(slower[:3])))
    with_cli = [row for row in rows if "llama-completion" in row]
    if with_cli:
        lines += ["", "llama-completion's own timing lines (greedy, --ignore-eos), same rounds", "",
                  "| file | prompt tokens | prefill tok/s | decode tok/s | decode ours / llama-completion |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for row in with_cli:
            lc = row["llama-completion"]
            lines.append(f"| {row['name']} | {lc['prompt_tokens']:.0f} | {lc['prefill_tok_s']:.1f} | {lc['decode_tok_s']:.1f} "
                         f"| {lc['decode_ratio']:.2f}x |")
    with_ctx = [row for row in rows if row["contexts"] or row["contexts_skipped"]]
    if with_ctx:
        lines += ["", f"decode tok/s of the {args.context_gen} tokens that end at each context (llama-bench "
                  f"-d C-{args.context_gen} -n {args.context_gen}), median of {args.rounds} alternating rounds", "",
                  "| file | context | ours | llama.cpp | ratio | peak RSS MiB / budget |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for row in with_ctx:
            rss = row.get("contexts_rss")
            rss_text = f"{rss['peak_rss_bytes'] / 2**20:.1f} / {rss['rss_budget_bytes'] / 2**20:.1f}" if rss else "-"
            for c, v in row["contexts"].items():
                lines.append(f"| {row['name']} | {c} | {v['ours']:.1f} | {fmt(v.get('llama.cpp'), '.1f')} "
                             f"| {fmt(v.get('ratio'), '.2f', 'x')} | {rss_text} |")
            for c in row["contexts_skipped"]:
                lines.append(f"| {row['name']} | {c} | beyond the model's training context | - | - | - |")
    for row in rows:
        if "perplexity" in row:
            p = row["perplexity"]
            lines.append(f"perplexity of {row['name']} (ours, -c 512, {p['perplexity_tokens']} tokens of tinyshakespeare-40k): "
                         f"{p['perplexity']:.3f} +/- {p['perplexity_stderr']:.3f} in {p['perplexity_s']:.1f} s")
    return "\n".join(lines)


def parse_contexts(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "0"):
        return []
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: '{text}'") from None
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", type=Path, action="append",
                    help="GGUF file or folder of them (repeatable; default: SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument("--presets", type=Path, nargs="?", const=CACHE / "llama-lessons" / "presets", default=None,
                    metavar="DIR", help="also every export.py preset of the default model, made from its F32 weights "
                    "and cached in DIR (default ~/.cache/llama-lessons/presets)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--prompt", type=int, default=256, help="prompt tokens (default 256)")
    ap.add_argument("-n", "--n-predict", type=int, default=128, help="decoded tokens (default 128)")
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--contexts", type=parse_contexts, default=[], metavar="C1,C2,..",
                    help="also decode speed at these contexts, e.g. 256,2048,8192 (default: none)")
    ap.add_argument("--context-gen", type=int, default=32, help="tokens decoded at each context (default 32)")
    ap.add_argument("-ctk", "--cache-type", choices=["f16", "f32"], default="f16",
                    help="KV cache type of both sides (default f16, llama.cpp's and run.py's)")
    ap.add_argument("--llama-bin", default=None, help="folder with llama-bench (default: $LLAMA_BIN, then "
                    "~/.cache/llama-tools, where tools/build_llama_tools.sh builds it)")
    ap.add_argument("--no-llama", action="store_true", help="measure our backend only")
    ap.add_argument("--completion", action="store_true", help="also llama-completion's timing lines each round")
    ap.add_argument("--perplexity", action="store_true", help="also our perplexity on tinyshakespeare-40k (-c 512)")
    ap.add_argument("--bw-mib", type=int, default=96, help="buffer of the bandwidth measurement (default 96 MiB)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds any one step may take")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("-c", "--ctx", type=int, default=0, help=argparse.SUPPRESS)  # the worker's cache size
    args = ap.parse_args()

    if args.worker:  # a subprocess: answer the driver's commands (peak RSS is this process's own)
        serve(args)
        return
    if args.rounds < 1 or args.prompt < 1 or args.n_predict < 1 or args.threads < 1 or args.context_gen < 1:
        sys.exit("error: --rounds, -p, -n, -t and --context-gen must be at least 1")
    if any(c <= args.context_gen for c in args.contexts):
        sys.exit(f"error: every context must be larger than --context-gen {args.context_gen}")
    if not 1 <= args.bw_mib <= 4096:
        sys.exit("error: --bw-mib must be between 1 and 4096")

    files = model_files(args)
    bin_dir = None if args.no_llama else find_llama_bin(args.llama_bin)
    if bin_dir is not None and not (bin_dir / "llama-bench").is_file():
        sys.exit(f"error: no llama-bench in {bin_dir}")
    if args.completion and bin_dir is not None and not (bin_dir / "llama-completion").is_file():
        sys.exit(f"error: --completion: no llama-completion in {bin_dir}")
    if bin_dir is None and not args.no_llama:
        print("llama-bench not found (tools/build_llama_tools.sh builds it): measuring our backend only", file=sys.stderr)
    bw_exe = build_bench_memory()
    args.roofs = arithmetic_roofs(args.threads)  # before the files: the machine as quiet as it will be

    rows = []
    try:
        for f in files:
            rows.append(measure_file(f, args, bin_dir, bw_exe))
    except RuntimeError as e:  # a worker or llama-bench that failed: its last line says why
        sys.exit(f"error: {e}")
    for row in rows:
        against_roof(row, args.roofs)
    if args.json:
        print(json.dumps({"threads": args.threads, "prompt": args.prompt, "n_predict": args.n_predict,
                          "rounds": args.rounds, "cache_type": args.cache_type, "llama_bin": str(bin_dir) if bin_dir else None,
                          "roofs_gmac_s": args.roofs,
                          "rows": rows}, indent=2))
    else:
        print(report(rows, args, bin_dir is not None))


if __name__ == "__main__":
    main()
