#!/usr/bin/env python3
"""The fidelity table: our perplexity and KL against F32 next to native llama.cpp's, on the same files.

    python tools/fidelity_table.py [-c 512] [--chunks N] [--text FILE] [--presets DIR] [--only PRESET ...]
                                   [-m FILE ...] [--backend cpp [numpy]] [-t 2] [--llama-bin DIR] [--paired]
                                   [--log FILE] [--json FILE [--resume]]
    python tools/fidelity_table.py --print FILE.json   # the table of an earlier (or interrupted) --json run
    python tools/fidelity_table.py --write-fixture      # tests/fixtures/fidelity_llama_cpp.json (-c 256 --chunks 2)

The whole text at -c 512 takes about an hour on two busy cores (llama-perplexity is most of it); --json with
--resume picks an interrupted run up where it stopped.

The promise of issue 18: on every file, our perplexity is no worse than llama.cpp's and our KL divergence
from the F32 weights no larger. Both programs read the SAME inputs, so the only difference left is the
arithmetic:
  1. the files: the shipped default model (Q4_1) and every export.py preset, made from its F32 weights
     (cached in --presets, default ~/.cache/llama-lessons/presets, as tools/benchmark.py --presets makes them;
     byte-identical to llama-quantize's, tests/test_export_presets.py);
  2. one base file of F32 log-probabilities (llama.cpp's 16-bit format, lesson 11b), saved once by our
     run.py --perplexity --kl-divergence-base from F32.gguf (or, --base-by llama.cpp, by llama-perplexity:
     the check that the base's author does not favour itself);
  3. for each file: run.py --perplexity --kl-divergence (our backend) and llama-perplexity --kl-divergence
     (native llama.cpp, tools/build_llama_tools.sh builds it), both reading that base file, so both score
     the same tokens of the same chunks (the base file holds them).

llama-perplexity runs with -b equal to -c (one chunk per batch, as run.py scores them) and -t threads.
Prints one Markdown row per file: perplexity, mean KL and same-top-token rate, ours / llama.cpp, and a
verdict: "ok" when ours PPL <= llama.cpp's and ours KL <= llama.cpp's, both as printed (6 decimals), else
what is worse and by how much. --log appends every program's three statistics sections, as printed.

--write-fixture records llama.cpp's figures on a small slice (the first --chunks 2 chunks of -c 256 of
tests/fixtures/reference/tinyshakespeare-40k.txt, the repository's copy of the text) and each file's sha256,
for tests/test_fidelity.py, which computes ours on the same slice and holds it to them.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

import export  # noqa: E402
import run  # noqa: E402
from benchmark import default_model, find_llama_bin, make_presets  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
TEXT = REPO / "tests" / "fixtures" / "reference" / "tinyshakespeare-40k.txt"
FIXTURE = REPO / "tests" / "fixtures" / "fidelity_llama_cpp.json"
FIXTURE_CTX, FIXTURE_CHUNKS = 256, 2
SHIPPED = "shipped Q4_1"
# the figures each side prints that the table and the fixture keep (labels as both programs print them)
LABELS = ("Mean PPL(Q)", "Mean PPL(base)", "Mean    KLD", "99.0%   KLD", "Maximum KLD", "RMS Δp", "Same top p")


# =====================================================================================================================
# The two programs
# =====================================================================================================================
def find_llama_perplexity(explicit: str | None) -> Path:
    """llama-perplexity: in --llama-bin, $LLAMA_BIN, what tools/build_llama_tools.sh left in its cache, or PATH."""
    folder = find_llama_bin(explicit, "llama-perplexity")
    if folder is not None and (folder / "llama-perplexity").is_file():
        return folder / "llama-perplexity"
    if folder is not None:  # --llama-bin or $LLAMA_BIN named a folder without it
        sys.exit(f"error: no llama-perplexity in {folder} (tools/build_llama_tools.sh builds it)")
    sys.exit("error: llama-perplexity not found: build it with tools/build_llama_tools.sh, or give --llama-bin DIR")


def figures(printed: str) -> dict[str, list[float | None]]:
    """{label: [value, standard error or None]} for LABELS, from either program's statistics sections."""
    found = {}
    for line in printed.splitlines():
        for label in LABELS:
            m = re.match(re.escape(label) + r"\s*:\s*(-?[\d.]+)\s*%?(?:\s*±\s*([\d.]+))?\s*%?\s*$", line)
            if m:
                found[label] = [float(m.group(1)), float(m.group(2)) if m.group(2) else None]
    return found


def statistics_sections(printed: str) -> str:
    """The three sections both programs end with (from the first '======'), for the log."""
    start = printed.find("====== Perplexity statistics")
    return printed[start:].strip() if start >= 0 else printed.strip()[-2000:]


def ours(model: Path, base: Path, text: Path, backend: str, threads: int) -> str:
    """run.py --perplexity --kl-divergence, in this process (its stdout: the three sections)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["-m", model, "--backend", backend, "-t", threads, "--perplexity", "-f", text,
            "--kl-divergence", "--kl-divergence-base", base]
    if run.main([str(a) for a in argv], out, err) != 0:
        sys.exit(f"error: run.py on {model.name}: {(err.getvalue().strip().splitlines() or ['no message'])[-1]}")
    return out.getvalue()


def theirs(binary: Path, model: Path, base: Path, text: Path, n_ctx: int, threads: int, timeout: float) -> str:
    """llama-perplexity --kl-divergence: the same base file (it fixes the chunks and their tokens)."""
    cmd = [str(binary), "-m", str(model), "-f", str(text), "-c", str(n_ctx), "-b", str(n_ctx), "-t", str(threads),
           "--kl-divergence", "--kl-divergence-base", str(base)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        sys.exit(f"error: llama-perplexity on {model.name} took over {timeout:.0f} s")
    printed = done.stdout + done.stderr
    if done.returncode != 0 or "Mean    KLD" not in printed:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(f"error: llama-perplexity on {model.name} failed (exit {done.returncode}): {last}")
    return printed


def save_log_probs(by: str, binary: Path, model: Path, text: Path, n_ctx: int, chunks: int, threads: int,
                   out: Path, timeout: float) -> None:
    """A file of model's log-probabilities (the base file, when model is F32), written by run.py or llama-perplexity."""
    if by == "ours":
        printed, err = io.StringIO(), io.StringIO()
        argv = ["-m", model, "-t", threads, "--perplexity", "-f", text, "-c", n_ctx, "--chunks", chunks,
                "--kl-divergence-base", out]
        if run.main([str(a) for a in argv], printed, err) != 0:
            sys.exit(f"error: run.py could not save {out.name}: {err.getvalue().strip().splitlines()[-1]}")
        return
    cmd = [str(binary), "-m", str(model), "-f", str(text), "-c", str(n_ctx), "-b", str(n_ctx), "-t", str(threads),
           "--kl-divergence-base", str(out)] + (["--chunks", str(chunks)] if chunks > 0 else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        sys.exit(f"error: llama-perplexity on {model.name} took over {timeout:.0f} s")
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(f"error: llama-perplexity could not save {out.name} (exit {done.returncode}): {last}")


# =====================================================================================================================
# The verdict and the table
# =====================================================================================================================
# Both programs print PPL and KL to 6 decimals: two equal true values may print one unit apart either way.
PRINTED_UNIT = 1e-6


# A printed PPL gap inside NOISE_SE standard errors of the paired difference is noise, not a loss of fidelity.
NOISE_SE = 3.0


def verdict(mine: dict, llama: dict, pair: tuple[float, float] | None = None) -> str:
    """'ok' when ours is no worse on both as printed (one unit of the last digit allowed), else what is worse.

    With the per-token comparison (pair: ln(PPL ours / PPL llama.cpp) and its standard error), a perplexity
    higher than llama.cpp's by less than NOISE_SE errors is said to be within noise, with its figures."""
    worse = []
    for label, name in (("Mean PPL(Q)", "PPL"), ("Mean    KLD", "KL")):
        a, b = mine[label][0], llama[label][0]
        if a > b + PRINTED_UNIT:
            gap = f"{name} +{a - b:.6f} ({100 * (a - b) / b:+.2f} %)"
            if name == "PPL" and pair is not None and pair[0] <= NOISE_SE * pair[1]:
                gap += f", within noise: paired ln ratio {pair[0]:+.5f} ± {pair[1]:.5f}"
            worse.append(gap)
    if not worse:
        return "ok"
    return ("**ours worse**: " if any("noise" not in w for w in worse) else "ok as KL; ") + "; ".join(worse)


def table(rows: list[dict], backends: list[str]) -> str:
    def each(fmt):  # one cell per backend of ours, then llama.cpp's
        return [fmt(r["ours"][b]) for b in backends] + [fmt(r["llama.cpp"])]

    suffix = (lambda b: f" ({b})") if len(backends) > 1 else (lambda b: "")
    paired_col = any("paired" in r for r in rows)
    head = ["file", "MiB"]
    for what in ("PPL", "mean KL", "same top p"):
        head += [f"{what} ours{suffix(b)}" for b in backends] + [f"{what} llama.cpp"]
    head += ["ln(PPL ours/llama.cpp), paired"] * paired_col + ["verdict"]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join(["---:"] * (len(head) - 2)) + " | --- |"]
    for r in rows:
        cells = [r["file"], f"{r['mib']:.1f}"]
        cells += each(lambda f: f"{f['Mean PPL(Q)'][0]:.4f}")
        cells += each(lambda f: f"{f['Mean    KLD'][0]:.6f}")
        cells += each(lambda f: f"{f['Same top p'][0]:.2f} %")
        if paired_col:
            cells.append(f"{r['paired'][0]:+.5f} ± {r['paired'][1]:.5f}" if "paired" in r else "-")
        cells.append("; ".join(suffix(b).strip(" ()") + (": " if len(backends) > 1 else "")
                               + verdict(r["ours"][b], r["llama.cpp"], r.get("paired") if b == "cpp" else None)
                               for b in backends))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def token_nll(path: Path) -> list[float]:
    """-ln p(true token) at every scored position, from a file of log-probabilities (lesson 11c's format).

    Saved for a quantized model (by run.py or llama-perplexity --kl-divergence-base), it gives that program's
    per-token losses, 16-bit as the base's are: the two programs' perplexities compared token by token, with
    the standard error of their difference (the figures alone cannot say whether a gap is more than noise)."""
    from lessons.l11b_kl_divergence import unpack_log_probs
    from lessons.l11c_kl_base_file import BaseFile
    f = BaseFile(str(path))
    nll = []
    for c in range(f.n_chunk):
        log_p = unpack_log_probs(f.rows(c), f.n_vocab)  # [n_rows, n_vocab]
        targets = f.tokens[c * f.n_ctx + f.n_ctx // 2 + 1 : (c + 1) * f.n_ctx]  # [n_rows]
        nll += (-log_p[np.arange(f.n_rows), targets].astype(np.float64)).tolist()
    return nll


def paired(nll_ours, nll_theirs) -> tuple[float, float]:
    """ln(PPL ours / PPL llama.cpp) over the same tokens, and its standard error (llama.cpp's formula)."""
    from lessons.l11b_kl_divergence import mean_and_uncertainty
    return mean_and_uncertainty(np.asarray(nll_ours, np.float64) - np.asarray(nll_theirs, np.float64))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# =====================================================================================================================
# main
# =====================================================================================================================
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--ctx-size", type=int, default=512)
    p.add_argument("--chunks", type=int, default=-1, help="score the first N chunks (default -1: the whole text)")
    p.add_argument("--text", type=Path, default=TEXT)
    p.add_argument("--presets", type=Path, default=CACHE / "llama-lessons" / "presets",
                   help="folder of the export.py presets (made from F32 when missing; default %(default)s)")
    p.add_argument("--only", nargs="*", default=None, metavar="PRESET",
                   help=f"these presets only ('{SHIPPED.split()[0]}' for the shipped file; default: all)")
    p.add_argument("-m", "--model", type=Path, action="append", default=[], help="also this file (repeatable)")
    p.add_argument("--backend", nargs="+", default=["cpp"], choices=["cpp", "numpy"])
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--llama-bin", default=None, help="folder with llama-perplexity (default: $LLAMA_BIN, then "
                   "~/.cache/llama-tools, where tools/build_llama_tools.sh builds it, then PATH)")
    p.add_argument("--base-by", choices=["ours", "llama.cpp"], default="ours",
                   help="which program writes the F32 base file (default: ours)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one llama-perplexity run may take")
    p.add_argument("--log", type=Path, help="append each program's statistics sections to this file")
    p.add_argument("--json", type=Path, help="write the rows as JSON to this file (after each file)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in --json (measured with the same -c, --chunks, base) "
                   "and skip their files")
    p.add_argument("--paired", action="store_true",
                   help="also compare the perplexities token by token (each program saves the file's log-probs: "
                   "two more runs per file, and files of about 50 MB per 512-token chunk)")
    p.add_argument("--print", type=Path, metavar="JSON", dest="print_json",
                   help="print the table of rows an earlier run wrote with --json (even a partial run), run nothing")
    p.add_argument("--write-fixture", action="store_true",
                   help=f"write {FIXTURE.relative_to(REPO)} (-c {FIXTURE_CTX} --chunks {FIXTURE_CHUNKS} unless given)")
    args = p.parse_args()
    if args.print_json:
        try:
            rows = json.loads(args.print_json.read_text())
            print(table(rows, list(rows[0]["ours"])))
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            sys.exit(f"error: {args.print_json}: not a --json file of this tool ({e.__class__.__name__})")
        return 0
    if args.write_fixture and "-c" not in sys.argv and "--ctx-size" not in sys.argv:
        args.ctx_size = FIXTURE_CTX
    if args.write_fixture and "--chunks" not in sys.argv:
        args.chunks = FIXTURE_CHUNKS
    args.paired = args.paired or args.write_fixture
    if args.ctx_size < 8 or args.threads < 1 or args.chunks == 0 or args.chunks < -1:
        sys.exit("error: -c must be at least 8, -t at least 1, --chunks -1 or at least 1")
    if not args.text.is_file():
        sys.exit(f"error: no text file {args.text}")
    unknown = set(args.only or []) - set(export.PRESETS) - {SHIPPED.split()[0], "shipped"}
    if unknown:
        sys.exit(f"error: unknown preset(s) {', '.join(sorted(unknown))} (choose from {', '.join(export.PRESETS)})")
    for m in args.model:
        if not m.is_file():
            sys.exit(f"error: {m}: no such file")
    if args.resume and not args.json:
        sys.exit("error: --resume needs --json FILE")
    binary = find_llama_perplexity(args.llama_bin)  # before any long work: a missing tool is one line, at once
    settings = {"n_ctx": args.ctx_size, "chunks": args.chunks, "base_by": args.base_by, "text": args.text.name}
    loaded = json.loads(args.json.read_text()) if args.resume and args.json.is_file() else []
    done_rows = [r for r in loaded if r.get("settings") == settings]

    files = [(SHIPPED, default_model())] + [(path.stem, path) for path in make_presets(args.presets)]
    files = [(name, path) for name, path in files
             if args.only is None or name in args.only or (name == SHIPPED and "shipped" in args.only)]
    files += [(m.name, m) for m in args.model]
    f32 = args.presets / "F32.gguf"
    work = Path(tempfile.mkdtemp(prefix="fidelity_"))
    base = work / "f32.kld"
    log = open(args.log, "a") if args.log else None
    try:
        if any(name not in {r["file"] for r in done_rows} for name, _ in files):  # else no base file is needed
            t0 = time.perf_counter()
            save_log_probs(args.base_by, binary, f32, args.text, args.ctx_size, args.chunks, args.threads, base,
                           args.timeout)
            print(f"base file by {args.base_by} from {f32}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows = []
        for name, path in files:
            kept = [r for r in done_rows if r["file"] == name]
            if kept:
                rows.append(kept[0])
                continue
            row = {"file": name, "mib": path.stat().st_size / 2**20, "ours": {}, "settings": settings}
            for b in args.backend:
                t0 = time.perf_counter()
                printed = ours(path, base, args.text, b, args.threads)
                row["ours"][b], row[f"ours_{b}_s"] = figures(printed), round(time.perf_counter() - t0, 1)
                if log:
                    log.write(f"\n### {name}: ours ({b} backend)\n\n{statistics_sections(printed)}\n")
            t0 = time.perf_counter()
            printed = theirs(binary, path, base, args.text, args.ctx_size, args.threads, args.timeout)
            row["llama.cpp"], row["llama.cpp_s"] = figures(printed), round(time.perf_counter() - t0, 1)
            if log:
                log.write(f"\n### {name}: llama.cpp (llama-perplexity)\n\n{statistics_sections(printed)}\n")
                log.flush()
            if args.paired:  # both programs save this file's log-probs: the per-token losses, paired
                nll = {}
                for by in ("ours", "llama.cpp"):
                    saved = work / "q.kld"
                    save_log_probs(by, binary, path, args.text, args.ctx_size, args.chunks, args.threads, saved,
                                   args.timeout)
                    nll[by] = token_nll(saved)
                    saved.unlink()
                row["paired"] = paired(nll["ours"], nll["llama.cpp"])
                row["llama.cpp_nll"] = nll["llama.cpp"]
            if args.write_fixture:
                row["sha256"] = sha256(path)
            rows.append(row)
            if args.json:  # after each file, keeping the rows of other files and settings it was given
                mine = {r["file"] for r in rows}
                others = [r for r in loaded if r.get("settings") != settings or r["file"] not in mine]
                args.json.write_text(json.dumps(rows + others, indent=1, ensure_ascii=False) + "\n")
            said = verdict(row["ours"][args.backend[0]], row["llama.cpp"], row.get("paired"))
            print(f"{name}: ours {' '.join(str(row[f'ours_{b}_s']) for b in args.backend)} s, llama.cpp "
                  f"{row['llama.cpp_s']} s: {said}", file=sys.stderr)
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
        if log:
            log.close()

    command = (f"python tools/fidelity_table.py -c {args.ctx_size} --chunks {args.chunks} -t {args.threads} "
               f"--backend {' '.join(args.backend)}" + (" --base-by llama.cpp" if args.base_by != "ours" else "")
               + (" --paired" if args.paired else ""))
    chunks = "every chunk" if args.chunks < 0 else f"the first {args.chunks} chunks"
    print(f"<!-- {command}: {chunks} of -c {args.ctx_size} of {args.text.name}, base file by {args.base_by} -->")
    print(table(rows, args.backend))
    if args.write_fixture:
        record = {"what": "llama-perplexity --kl-divergence on each file, against run.py's F32 base file",
                  "regenerate": "python tools/fidelity_table.py --write-fixture",
                  "llama_perplexity": str(binary.relative_to(binary.parents[4]) if len(binary.parents) > 4 else binary),
                  "text": str(args.text.relative_to(REPO)) if args.text.is_relative_to(REPO) else args.text.name,
                  "n_ctx": args.ctx_size, "n_chunks": args.chunks, "threads": args.threads,
                  "files": {r["file"]: {"sha256": r["sha256"],
                                        "llama.cpp": {k: r["llama.cpp"][k] for k in ("Mean PPL(Q)", "Mean    KLD",
                                                                                   "Same top p", "Mean PPL(base)")},
                                        "ours_then": {k: r["ours"][args.backend[0]][k]
                                                      for k in ("Mean PPL(Q)", "Mean    KLD", "Same top p")},
                                        "ours_then_paired": list(r["paired"]),
                                        "llama.cpp_token_nll": [round(x, 5) for x in r["llama.cpp_nll"]]}
                            for r in rows}}
        FIXTURE.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {FIXTURE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
