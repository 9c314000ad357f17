"""Draw the figures of lessons 12 and 13:

- docs/img/quant_layout.png: where the bits of one block go, per type (drawn from the lessons' block dtypes);
- docs/img/quant_error.png: quantization error against bits per weight, per type;
- docs/img/quant_search.png: how much llama.cpp's scale search gains over the plain min/max fit.

    python tools/make_figures_quant.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lessons import l12b_legacy_quants as legacy  # noqa: E402
from lessons import l13_kquants as kq  # noqa: E402
from lessons.l12_quants import GGML_TYPES, TYPE_IDS, dequantize, quantize  # noqa: E402
from lessons.l13b_kquant_search import make_qkx2_quants  # noqa: E402

IMG = ROOT / "docs" / "img"
LAYOUTS = [("Q4_0", legacy.BLOCK_Q4_0), ("Q4_1", legacy.BLOCK_Q4_1), ("Q5_0", legacy.BLOCK_Q5_0),
           ("Q5_1", legacy.BLOCK_Q5_1), ("Q8_0", legacy.BLOCK_Q8_0), ("Q2_K", kq.BLOCK_Q2_K),
           ("Q3_K", kq.BLOCK_Q3_K), ("Q4_K", kq.BLOCK_Q4_K), ("Q5_K", kq.BLOCK_Q5_K), ("Q6_K", kq.BLOCK_Q6_K)]
# what each field is: the weights' own bits, or overhead (scales, mins)
ROLE = {"qs": "weights: low bits", "ql": "weights: low bits", "qh": "weights: high bit(s)",
        "hmask": "weights: high bit(s)", "d": "f16 super-scale / scale", "dmin": "f16 min / super-min",
        "m": "f16 min / super-min", "scales": "sub-block scales (+ mins)"}
COLORS = {"weights: low bits": "#9ecae1", "weights: high bit(s)": "#3182bd", "f16 super-scale / scale": "#fdae6b",
          "f16 min / super-min": "#e6550d", "sub-block scales (+ mins)": "#a1d99b"}


def layout_figure():
    fig, ax = plt.subplots(figsize=(11, 5.6))
    for row, (name, dtype) in enumerate(LAYOUTS):
        n_weights = GGML_TYPES[TYPE_IDS[name]][1]
        y = len(LAYOUTS) - 1 - row
        x = 0.0
        # fields in storage order; width = the field's bits per weight of the block
        for field, (fdtype, _offset) in sorted(dtype.fields.items(), key=lambda f: f[1][1]):
            width = fdtype.itemsize * 8 / n_weights
            ax.add_patch(plt.Rectangle((x, y - 0.35), width, 0.7, color=COLORS[ROLE[field]], ec="#333333", lw=0.6))
            if width > 0.22:
                ax.text(x + width / 2, y, field, ha="center", va="center", fontsize=8, family="monospace")
            x += width
        ax.text(-0.1, y, f"{name} ({n_weights} w, {dtype.itemsize} B)", ha="right", va="center", fontsize=9)
        ax.text(x + 0.08, y, f"{x:.4g} bits/weight", ha="left", va="center", fontsize=9)
    for label, color in COLORS.items():
        ax.add_patch(plt.Rectangle((0, -10), 0, 0, color=color, label=label))
    ax.set_xlim(-2.6, 10.3)
    ax.set_xticks(range(0, 11))
    ax.set_ylim(-0.6, len(LAYOUTS) - 0.4)
    ax.set_xlabel("bits per weight (each field drawn as its share of one block)")
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, ncol=5, frameon=False)
    ax.set_title("One block of each type, byte fields in storage order")
    fig.tight_layout()
    fig.savefig(IMG / "quant_layout.png", dpi=110)
    plt.close(fig)


def error_figure():
    rng = np.random.default_rng(0)
    x = (rng.standard_t(5, size=(256, 1536)) * 0.02).astype(np.float32)  # LLM weights: roughly Student-t
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for name, color in (("Q2_K", "k"), ("Q3_K", "k"), ("Q4_0", "c"), ("Q4_1", "c"), ("Q4_K", "k"), ("Q5_0", "c"),
                        ("Q5_1", "c"), ("Q5_K", "k"), ("Q6_K", "k"), ("Q8_0", "c")):
        t = TYPE_IDS[name]
        _, block, size = GGML_TYPES[t]
        bpw = size * 8 / block
        y = dequantize(quantize(x, t), t, x.shape)
        rel = np.sqrt(((y - x) ** 2).sum() / (x ** 2).sum())
        ax.scatter(bpw, rel, color="#3182bd" if color == "k" else "#e6550d", zorder=3)
        ax.annotate(name, (bpw, rel), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.scatter([], [], color="#3182bd", label="k-quants (256-weight super-blocks)")
    ax.scatter([], [], color="#e6550d", label="legacy (32-weight blocks)")
    ax.set_yscale("log")
    ax.set_xlabel("bits per weight")
    ax.set_ylabel("relative RMS error  |x - deq(q(x))| / |x|")
    ax.set_title("Quantization error on Student-t (5) weights, 256 x 1536")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(IMG / "quant_error.png", dpi=110)
    plt.close(fig)


def search_figure():
    rng = np.random.default_rng(1)
    x = (rng.standard_t(5, size=(32, 4000)) * 0.02).astype(np.float32)  # 4000 sub-blocks of 32, one per column
    w = np.sqrt((x * x).mean(axis=0)) + np.abs(x)                        # Q4_K's weights
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for nmax, rmin, nstep, label in ((15, -1.0, 20, "4 bits (Q4_K: rmin -1, 20 steps)"),
                                     (31, -0.5, 15, "5 bits (Q5_K: rmin -0.5, 15 steps)")):
        errs = []
        for n in range(nstep + 1):  # the search cut short at nstep = n; n = 0: the min/max fit only
            scale, the_min, L = make_qkx2_quants(x, w, nmax, rmin, 0.1, n, use_mad=False)
            errs.append((w * (scale * L - the_min - x) ** 2).sum())
        ax.plot(range(nstep + 1), np.array(errs) / errs[0], marker="o", ms=3, label=label)
    ax.set_xlabel("nstep: length of the search (0 = scale and min from the extremes, as Q4_1 does)")
    ax.set_xticks(range(0, 21, 2))
    ax.set_ylabel("weighted squared error / min-max fit's")
    ax.set_title("make_qkx2_quants on 4000 Student-t sub-blocks of 32")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(IMG / "quant_search.png", dpi=110)
    plt.close(fig)


def main():
    IMG.mkdir(parents=True, exist_ok=True)
    layout_figure()
    error_figure()
    search_figure()
    print("wrote", IMG / "quant_layout.png", IMG / "quant_error.png", IMG / "quant_search.png")


if __name__ == "__main__":
    main()
