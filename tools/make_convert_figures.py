#!/usr/bin/env python3
"""docs/img/convert_qk_rows.png: where each row of one W_q head goes from HF's layout to GGUF's.

    python tools/make_convert_figures.py

The arrows are computed by lessons.l19_convert.hf_to_gguf_rows on the row numbers themselves, so the
picture is the code's answer, not a drawing of it.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import sys
    sys.path.insert(0, str(ROOT))
    from lessons.l19_convert import hf_to_gguf_rows

    hd = 8
    gguf_rows = hf_to_gguf_rows(np.arange(hd)[:, None], 1)[:, 0]  # GGUF row r holds HF row gguf_rows[r]
    colors = plt.cm.tab10(np.arange(hd // 2))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in range(hd):
        pair, half = r % (hd // 2), r // (hd // 2)  # HF row r: pair r mod 4, half r div 4
        ax.add_patch(plt.Rectangle((0, hd - 1 - r), 2.2, 0.85, color=colors[pair], alpha=0.35 + 0.5 * half))
        ax.text(1.1, hd - 1 - r + 0.42, f"HF row {r}: pair {pair}, {'xy'[half]}", ha="center", va="center", fontsize=9)
    for r, src in enumerate(gguf_rows):
        pair, half = src % (hd // 2), src // (hd // 2)
        ax.add_patch(plt.Rectangle((5, hd - 1 - r), 2.2, 0.85, color=colors[pair], alpha=0.35 + 0.5 * half))
        ax.text(6.1, hd - 1 - r + 0.42, f"GGUF row {r}: pair {pair}, {'xy'[half]}", ha="center", va="center", fontsize=9)
        ax.annotate("", xy=(5, hd - 1 - r + 0.42), xytext=(2.2, hd - 1 - src + 0.42),
                    arrowprops=dict(arrowstyle="->", color="gray", lw=0.8))
    ax.text(1.1, hd + 0.3, "Hugging Face (rotate_half):\npair i = rows i and i + 4", ha="center", fontsize=9)
    ax.text(6.1, hd + 0.3, "GGUF / Meta (neighbours):\npair i = rows 2i and 2i + 1", ha="center", fontsize=9)
    ax.set_xlim(-0.2, 7.4)
    ax.set_ylim(-0.3, hd + 1.3)
    ax.axis("off")
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "convert_qk_rows.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
