#!/usr/bin/env python3
"""Draw docs/img/kl_divergence.png for lesson 11b, from the default model.

Left: the base (F32) model's next-token distribution at one position of a text, against Q8_0's and
Q2_K's (top tokens), with each one's KL there. Right: where the per-token KL of three presets lies
(its distribution over the scored tokens, log scale): the mean alone hides the tail.

    python tools/make_kl_figure.py [--text FILE] [-c 256]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import export  # noqa: E402
from cpp_core.model import CppLlama  # noqa: E402
from lessons.default_model import default_model_path  # noqa: E402
from lessons.l01_gguf import GGUFFile  # noqa: E402
from lessons.l02_tokenizer import Tokenizer  # noqa: E402
from lessons.l11_perplexity import scored_chunks  # noqa: E402
from lessons.l11b_kl_divergence import log_softmax, pack_log_probs, token_stats  # noqa: E402

PRESETS = ["Q8_0", "Q4_K_M", "Q2_K"]
COLORS = {"F32": "#636363", "Q8_0": "#3182bd", "Q4_K_M": "#31a354", "Q2_K": "#e6550d"}


def scored(path: Path, ids, n_ctx: int):
    """(logits [n, n_vocab], targets [n]) of the first two chunks of ids, by the C++ model."""
    model = CppLlama(GGUFFile(path), n_ctx, 2)
    parts = list(scored_chunks(model, ids, n_ctx, None, 2))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare-40k.txt"))
    p.add_argument("-c", "--ctx-size", type=int, default=256)
    args = p.parse_args()
    model_path = default_model_path()
    tok = Tokenizer.from_metadata(GGUFFile(model_path).metadata)
    ids = tok.encode(Path(args.text).read_text(), parse_special=False)
    work = Path(tempfile.mkdtemp(prefix="kl_figure_"))
    with contextlib.redirect_stdout(sys.stderr):
        export.main([str(model_path), str(work / "F32.gguf"), "F32"])
        for preset in PRESETS:
            export.main([str(work / "F32.gguf"), str(work / f"{preset}.gguf"), preset])
    base_logits, targets = scored(work / "F32.gguf", ids, args.ctx_size)
    base_rows = pack_log_probs(base_logits)
    logits = {q: scored(work / f"{q}.gguf", ids, args.ctx_size)[0] for q in PRESETS}
    stats = {q: token_stats(logits[q], base_rows, targets) for q in PRESETS}
    for f in work.iterdir():
        f.unlink()
    work.rmdir()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.1, 1]})
    # a position where F32 hesitates between a few tokens (top probability 0.2-0.6) and Q2_K's KL is
    # near its 90th percentile: a disagreement one can see, not the worst one
    kl_q2 = stats["Q2_K"]["kld"]
    top_p = np.exp(log_softmax(base_logits)).max(axis=1)  # [n]
    candidates = np.flatnonzero((top_p > 0.2) & (top_p < 0.6))
    pos = int(candidates[np.argmin(np.abs(kl_q2[candidates] - np.percentile(kl_q2, 90)))])
    p_base = np.exp(log_softmax(base_logits[pos : pos + 1])[0])
    top = np.argsort(-p_base)[:10]
    width = 0.27
    for k, name in enumerate(["F32", "Q8_0", "Q2_K"]):
        p = p_base if name == "F32" else np.exp(log_softmax(logits[name][pos : pos + 1])[0])
        label = name if name == "F32" else f"{name}: KL = {stats[name]['kld'][pos]:.4f}"
        left.bar(np.arange(10) + (k - 1) * width, p[top], width, color=COLORS[name], label=label)
    left.set_xticks(np.arange(10), [repr(tok.decode([int(t)]))[1:-1] or "?" for t in top], rotation=45,
                    fontsize=8, family="monospace")
    left.set_ylabel("probability of the next token")
    left.set_title(f"one position: the ten likeliest next tokens of F32 (true: {tok.decode([int(targets[pos])])!r})",
                   fontsize=9)
    left.legend(fontsize=8)
    bins = np.logspace(-6, 1.5, 60)
    for q in PRESETS:
        kld = np.maximum(stats[q]["kld"], 1e-6)
        right.hist(kld, bins=bins, histtype="step", lw=1.6, color=COLORS[q],
                   label=f"{q}: mean {kld.mean():.4f}, 99% {np.percentile(kld, 99):.3f}")
    right.set_xscale("log")
    right.set_xlabel("KL(F32 || Q) of one scored token (nats)")
    right.set_ylabel("tokens")
    right.set_title(f"{len(targets)} scored tokens of {Path(args.text).name}", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "kl_divergence.png"
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
