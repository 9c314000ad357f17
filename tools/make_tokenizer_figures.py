"""Draw docs/img/02-pretokenizers.png: one sentence cut into pre-tokens (the words BPE then works
on, never merging across them) by each pre-tokenizer family, one coloured box per piece.

    python tools/make_tokenizer_figures.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lessons.l02b_bpe_pretokenize import pretokenize  # noqa: E402

TEXT = "In 2024, SmolLM2 counted 1234567 tokens. Don't panic!"
ROWS = [("smollm", "smollm (SmolLM2)"), ("llama3", "llama-bpe (Llama 3)"), ("gpt2", "gpt-2"),
        ("default", "default (no pre)")]
OUT = ROOT / "docs" / "img" / "02-pretokenizers.png"


def main():
    fig, ax = plt.subplots(figsize=(11, 3.2))
    colors = ["#cfe3f7", "#f9dcc4"]
    right = 0.0
    for row, (family, label) in enumerate(ROWS):
        pieces = pretokenize(TEXT, family)
        y = len(ROWS) - 1 - row
        ax.text(-0.3, y, f"{label}: {len(pieces)} pieces", ha="right", va="center", fontsize=10)
        x = 0.0
        for k, piece in enumerate(pieces):
            piece = piece.replace(" ", "␣")
            width = 0.16 * len(piece) + 0.12
            ax.add_patch(plt.Rectangle((x, y - 0.32), width, 0.64, color=colors[k % 2], ec="#555555", lw=0.6))
            ax.text(x + width / 2, y, piece, ha="center", va="center", fontsize=9, family="monospace")
            x += width + 0.04
        right = max(right, x)
    ax.set_xlim(-4.6, right + 0.2)
    ax.set_ylim(-0.6, len(ROWS) - 0.4)
    ax.axis("off")
    ax.set_title(f"pre-tokenizing {TEXT!r}", fontsize=11)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
