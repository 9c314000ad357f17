"""Draw the figures of lessons 5 and 6 into docs/img/ (run from anywhere: python tools/make_figures_forward.py).

rope_rotation.png: how RoPE turns one channel pair per position, fast pairs and slow ones.
attention_map.png: SmolLM2's attention weights on the first tokens of the Shakespeare text (needs the
default model and tests/fixtures/tinyshakespeare40k_smollm2_ids.npy).
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
IMG = REPO / "docs" / "img"

from lessons import l08_transformer  # noqa: E402
from lessons.l01_gguf import GGUFFile  # noqa: E402
from lessons.l05_rope import apply_rope, rope_angles  # noqa: E402
from lessons.l06_attention import softmax  # noqa: E402
from lessons.default_model import default_model_path  # noqa: E402


def rope_figure() -> None:
    head_dim, base = 64, 100000.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    positions = np.arange(0, 13)
    cos, sin = rope_angles(positions, head_dim, base)
    for pair, colour in [(0, "tab:red"), (4, "tab:blue"), (10, "tab:green")]:
        x = np.zeros((len(positions), 1, head_dim), np.float32)
        x[:, 0, 2 * pair] = 1.0  # the unit vector of one pair, (1, 0)
        out = apply_rope(x, cos, sin)[:, 0, 2 * pair : 2 * pair + 2]  # [n_pos, 2]
        theta = base ** (-2 * pair / head_dim)
        left.plot(out[:, 0], out[:, 1], "o" if pair == 0 else "o-", color=colour, ms=4, lw=0.8, label=f"pair {pair}: {theta:.3g} rad/position")
        for p in (1, 2, 12):
            left.annotate(str(p), out[p], textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    left.add_patch(plt.Circle((0, 0), 1, fill=False, ls=":", color="grey"))
    left.set_aspect("equal")
    left.set_xlim(-1.25, 1.25)
    left.set_ylim(-1.25, 1.25)
    left.set_title("(1, 0) rotated at positions 0..12")
    left.legend(fontsize=8, loc="lower left")
    positions = np.arange(512)
    cos, _ = rope_angles(positions, head_dim, base)
    im = right.imshow(cos.T, aspect="auto", cmap="RdBu", origin="lower", interpolation="nearest")
    right.set_xlabel("position")
    right.set_ylabel("pair i")
    right.set_title(f"cos(position × theta_i), head_dim {head_dim}, base {base:g}")
    fig.colorbar(im, ax=right)
    fig.tight_layout()
    fig.savefig(IMG / "rope_rotation.png", dpi=110)


def attention_figure(n_tokens: int = 24, layers=(1, 10, 25)) -> None:
    gguf = GGUFFile(default_model_path())
    model = l08_transformer.NumpyLlama(gguf, n_ctx=64)
    ids = np.load(REPO / "tests" / "fixtures" / "tinyshakespeare40k_smollm2_ids.npy")[:n_tokens].astype(np.int32)
    recorded = []
    original = l08_transformer.attention

    def recording_attention(q, k, v, pos):
        recorded.append((q.copy(), k.copy()))
        return original(q, k, v, pos)

    l08_transformer.attention = recording_attention
    try:
        model.forward(ids, 0)
    finally:
        l08_transformer.attention = original
    vocab = gguf.metadata["tokenizer.ggml.tokens"]
    labels = [vocab[t].replace("Ġ", "·").replace("Ċ", "↵") for t in ids]
    c = model.config
    fig, axes = plt.subplots(1, len(layers), figsize=(5.2 * len(layers), 5.4))
    for ax, layer in zip(axes, layers):
        q, k = recorded[layer]  # [n, n_head, hd], [n_head_kv, n, hd]
        k = np.repeat(k, c.n_head // c.n_head_kv, axis=0)  # [n_head, n, hd]
        scores = np.einsum("qhd,hkd->hqk", q, k) / np.sqrt(c.head_dim)  # [n_head, n, n]
        scores[:, np.triu(np.ones((n_tokens, n_tokens), bool), 1)] = -np.inf
        probs = softmax(scores).mean(0)  # averaged over the 9 heads
        ax.imshow(probs, cmap="magma", vmin=0, vmax=1)
        ax.set_xticks(range(n_tokens), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n_tokens), labels, fontsize=7)
        ax.set_title(f"layer {layer}, mean of {c.n_head} heads")
        ax.set_xlabel("key (attended to)")
    axes[0].set_ylabel("query")
    fig.tight_layout()
    fig.savefig(IMG / "attention_map.png", dpi=110)


if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    rope_figure()
    attention_figure()
    print("wrote", *sorted(p.name for p in IMG.glob("*.png")))
