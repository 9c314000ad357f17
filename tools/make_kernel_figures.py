"""Draw docs/img/kernels-matmul.png from the numbers tools/bench_kernels.py measured.

    python tools/bench_kernels.py --threads 1 --tokens 1 64 --json docs/img/kernels_bench.json
    python tools/make_kernel_figures.py
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "img" / "kernels_bench.json"
OUT = ROOT / "docs" / "img" / "kernels-matmul.png"


def main() -> None:
    results = json.loads(DATA.read_text())["quant_matmul"]
    one = [r for r in results if r["threads"] == 1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, n_tok, title in [(axes[0], 1, "decode: 1 token"), (axes[1], 64, "prompt: 64 tokens")]:
        rows = [r for r in one if r["n_tok"] == n_tok]
        names = [r["version"] for r in rows]
        ms = [r["cpu_s"] / n_tok * 1e3 for r in rows]
        # the fast paths (x in float32 or 16 bits): v12 with AVX-512 VNNI, v11 AVX2; v5: the fastest int8 version
        colors = {"v12_i16_row_pairs": "#d95f02", "v11_i16_decode_avx2": "#d95f02", "v5_pairs": "#7570b3"}
        bars = ax.barh(names, ms, color=[colors.get(n, "#bbbbbb") for n in names])
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([3, 10, 30, 100, 300]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("CPU ms per token (1 thread, log scale)")
        ax.set_title(title)
        for bar, v in zip(bars, ms):
            ax.text(v * 1.05, bar.get_y() + bar.get_height() / 2, f"{v:.1f}", va="center", fontsize=8)
        ax.set_xlim(min(ms) * 0.5, max(ms) * 3)
        if n_tok == 1:
            floor = rows[0]["bytes"] / 15e9 * 1e3  # bench_kernels.py's decode floor
            ax.axvline(floor, color="#1b9e77", ls="--", lw=1, label="all weights read at 15 GB/s")
            ax.legend(loc="lower right", fontsize=7, frameon=False)
    axes[0].invert_yaxis()
    fig.suptitle("quant_matmul on SmolLM2-135M Q4_1: all 211 matrices of one forward pass")
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
