"""Draw the tokenizer lessons' figures, one coloured box per piece:

- docs/img/02-pretokenizers.png: one sentence cut into pre-tokens (the words BPE then works on, never
  merging across them) by each pre-tokenizer family;
- docs/img/02-bpe-merges.png: one word merged by SmolLM2's merge list, a row per merge, each merge
  labelled with its rank (its line in tokenizer.ggml.merges: the lower, the earlier it applies).

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
MERGE_WORD = " unbelievably"
OUT_MERGES = ROOT / "docs" / "img" / "02-bpe-merges.png"
COLORS = ["#cfe3f7", "#f9dcc4"]


def draw_pieces(ax, y: float, pieces: list[str], highlight: int | None = None) -> float:
    """One row of boxes at height y; returns the right edge. highlight: index of a box to colour."""
    x = 0.0
    for k, piece in enumerate(pieces):
        piece = piece.replace(" ", "␣")
        width = 0.16 * len(piece) + 0.12
        color = "#b9e4b0" if k == highlight else COLORS[k % 2]
        ax.add_patch(plt.Rectangle((x, y - 0.32), width, 0.64, color=color, ec="#555555", lw=0.6))
        ax.text(x + width / 2, y, piece, ha="center", va="center", fontsize=9, family="monospace")
        x += width + 0.04
    return x


def save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


def pretokenizers_figure():
    fig, ax = plt.subplots(figsize=(11, 3.2))
    right = 0.0
    for row, (family, label) in enumerate(ROWS):
        pieces = pretokenize(TEXT, family)
        y = len(ROWS) - 1 - row
        ax.text(-0.3, y, f"{label}: {len(pieces)} pieces", ha="right", va="center", fontsize=10)
        right = max(right, draw_pieces(ax, y, pieces))
    ax.set_xlim(-4.6, right + 0.2)
    ax.set_ylim(-0.6, len(ROWS) - 0.4)
    ax.axis("off")
    ax.set_title(f"pre-tokenizing {TEXT!r}", fontsize=11)
    save(fig, OUT)


def merge_steps(symbols: list[str], ranks: dict) -> list[tuple[list[str], int, int]]:
    """Every state of BPE on one word: (symbols, rank of the merge that made them, index of the new symbol)."""
    steps = [(list(symbols), -1, -1)]
    while True:
        pairs = [(ranks[(a, b)], i) for i, (a, b) in enumerate(zip(symbols, symbols[1:])) if (a, b) in ranks]
        if not pairs:
            return steps
        rank, i = min(pairs)
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
        steps.append((list(symbols), rank, i))


def merges_figure():
    from lessons.default_model import default_model_path
    from lessons.l01_gguf import GGUFFile
    from lessons.l02c_byte_level_bpe import bpe_merge, bytes_to_symbols, parse_merges

    with GGUFFile(default_model_path()) as f:
        ranks = parse_merges(f.metadata["tokenizer.ggml.merges"])
    word = bytes_to_symbols(MERGE_WORD.encode("utf-8"))
    steps = merge_steps(list(word), ranks)
    assert steps[-1][0] == bpe_merge(word, ranks)  # the same symbols as the lesson's heap loop
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(steps) + 0.8))
    for row, (symbols, rank, new) in enumerate(steps):
        y = len(steps) - 1 - row
        label = "bytes" if rank < 0 else f"merge rank {rank}"
        ax.text(-0.3, y, label, ha="right", va="center", fontsize=9)
        draw_pieces(ax, y, symbols, highlight=new)
    ax.set_xlim(-2.6, 0.2 * len(word) * 1.5 + 1)
    ax.set_ylim(-0.6, len(steps) - 0.4)
    ax.axis("off")
    ax.set_title(f"SmolLM2's BPE on {MERGE_WORD!r}: the lowest-ranked pair merges first "
                 f"({len(steps) - 1} merges, {len(steps[-1][0])} token{'s' if len(steps[-1][0]) > 1 else ''})",
                 fontsize=10)
    save(fig, OUT_MERGES)


if __name__ == "__main__":
    pretokenizers_figure()
    merges_figure()
