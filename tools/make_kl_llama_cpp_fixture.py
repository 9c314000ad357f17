#!/usr/bin/env python3
"""Record llama.cpp's llama-perplexity reading OUR base file: tests/fixtures/kl_llama_perplexity.json.

    python tools/make_kl_llama_cpp_fixture.py --llama-perplexity /path/to/llama-perplexity

llama-perplexity is built from the llama.cpp sources in llama-cpp-python's sdist:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    cmake -S /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp -B /tmp/lcpbuild -G Ninja \\
          -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TOOLS=ON && ninja -C /tmp/lcpbuild llama-perplexity

What it does, on the default model's F32 weights (export.py) and the text that tests/test_kl_divergence.py
decodes from the committed token ids:
  1. our run.py saves the base file (F32, -c 256 --chunks 2);
  2. llama-perplexity --kl-divergence reads that file for F32 and for Q8_0: its printed statistics are
     recorded (if our layout were wrong it would read garbage, or refuse the file);
  3. llama-perplexity saves its own base file from F32; we check here that our reader takes it, that its
     header and tokens equal ours byte for byte, and record our statistics read from it.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import export  # noqa: E402
import run  # noqa: E402
from lessons.default_model import default_model_path  # noqa: E402
from lessons.l01_gguf import GGUFFile  # noqa: E402
from lessons.l02_tokenizer import Tokenizer  # noqa: E402
from lessons.l11b_kl_divergence import row_width  # noqa: E402

N_CTX, N_CHUNKS, N_IDS = 256, 2, 700
FIXTURE = ROOT / "tests" / "fixtures" / "kl_llama_perplexity.json"


def figures(text: str) -> dict[str, list[float | None]]:
    """{label: [value, uncertainty or None]} from llama-perplexity's (or run.py's) three sections."""
    found = {}
    for line in text.splitlines():
        m = re.match(r"^(?:.*?\] )?(.+?)\s*:\s*(-?[\d.]+)%?(?:\s*±\s*([\d.]+))?\s*%?\s*$", line)
        if m and not m.group(1).startswith(("llama", "print_info", "load", "system_info", "main", "common",
                                            "kl_divergence", "perplexity", "build")):
            found[m.group(1).strip()] = [float(m.group(2)), float(m.group(3)) if m.group(3) else None]
    return found


def layout(printed: str) -> list[str]:
    """The per-chunk table and the three sections with every figure (and its padding) masked as " N":
    the words, their order, the labels' spacing and the ± and % signs are what must match."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("chunk "))
    end = max(i for i, line in enumerate(lines) if line.startswith("Same top p"))
    masked = []
    for line in lines[start : end + 1]:
        label, colon, values = line.partition(":") if ":" in line and not line.startswith(" ") else ("", "", line)
        masked.append(label + colon + re.sub(r"\s*-?[\d.]+", " N", values))
    return masked


def text_of_the_test() -> str:
    ids = np.load(ROOT / "tests" / "fixtures" / "tinyshakespeare40k_smollm2_ids.npy")[:N_IDS]
    return Tokenizer.from_metadata(GGUFFile(default_model_path()).metadata).decode(ids.tolist())


def ours(*argv) -> str:
    out, err = io.StringIO(), io.StringIO()
    if run.main([str(a) for a in argv], out, err) != 0:
        sys.exit(f"error: run.py: {err.getvalue().strip()}")
    return out.getvalue()


def theirs(binary: str, *argv) -> str:
    done = subprocess.run([binary, *map(str, argv), "-t", "2", "-b", str(N_CTX)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: llama-perplexity: {done.stderr[-2000:]}")
    return done.stdout + done.stderr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llama-perplexity", required=True)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kl_llama_cpp_"))
    text = work / "text.txt"
    text.write_text(text_of_the_test())
    f32, q8 = work / "f32.gguf", work / "q8_0.gguf"
    with contextlib.redirect_stdout(sys.stderr):
        export.main([str(default_model_path()), str(f32), "F32"])
        export.main([str(f32), str(q8), "Q8_0"])
    our_base, their_base = work / "ours.kld", work / "theirs.kld"
    our_ppl = ours("-m", f32, "--perplexity", "-f", text, "-c", N_CTX, "--chunks", N_CHUNKS,
                   "--kl-divergence-base", our_base)
    record = {"n_ctx": N_CTX, "n_chunks": N_CHUNKS, "n_ids": N_IDS, "our_final_estimate": our_ppl.strip(),
              "llama_perplexity_reads_ours": {}, "we_read_theirs": {}}
    for name, model in (("F32", f32), ("Q8_0", q8)):
        printed = theirs(args.llama_perplexity, "-m", model, "-f", text, "--kl-divergence", "--kl-divergence-base",
                         our_base)
        record["llama_perplexity_reads_ours"][name] = figures(printed)
        record["layout"] = layout(printed)  # its lines with every number masked: what run.py must print
    theirs(args.llama_perplexity, "-m", f32, "-f", text, "-c", N_CTX, "--chunks", N_CHUNKS,
           "--kl-divergence-base", their_base)
    a, b = our_base.read_bytes(), their_base.read_bytes()
    head = 20 + 4 * N_CHUNKS * N_CTX
    record["same_size"], record["same_header_and_tokens"] = len(a) == len(b), a[:head] == b[:head]
    if len(a) == len(b):  # the 16-bit steps of each row (after its two float32), ours against theirs
        width = row_width(GGUFFile(f32).metadata["tokenizer.ggml.tokens"].__len__())
        rows_a = np.frombuffer(a[head:], np.uint16).reshape(-1, width)[:, 4:].astype(np.int64)
        rows_b = np.frombuffer(b[head:], np.uint16).reshape(-1, width)[:, 4:].astype(np.int64)
        diff = np.abs(rows_a - rows_b)
        record["rows_steps_max_difference"] = int(diff.max())
        record["rows_steps_mean_difference"] = float(diff.mean())
    for name, model in (("F32", f32), ("Q8_0", q8)):
        record["we_read_theirs"][name] = figures(ours("-m", model, "--perplexity", "-f", text, "--kl-divergence",
                                                     "--kl-divergence-base", their_base))
    FIXTURE.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(record, indent=1, ensure_ascii=False))
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
