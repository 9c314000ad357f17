"""Draw the figures of lessons 7, 9 and 11 from the default model (SmolLM2-135M-Instruct Q4_1):

- docs/img/07-swiglu-gate.png: SiLU, and the gate of one real feed-forward block: silu(gate) over the
  1536 hidden channels for one token, most of them nearly shut;
- docs/img/09-sampling-filters.png: the next-token distribution after a real prompt, best first, and
  which tokens llama.cpp's default chain (top-k 40, top-p 0.95, min-p 0.05, temperature 0.8) keeps;
- docs/img/11-perplexity-chunks.png: llama-perplexity's method on tinyshakespeare-40k (the token ids in
  tests/fixtures/), n_ctx 512: each chunk's perplexity and the running estimate.

    python tools/make_lesson_figures.py [swiglu] [sampling] [perplexity]     (default: all three)

The numpy model of lesson 8 computes the first two; the perplexity figure runs the C++ twin
(cpp_core.model.CppLlama, the same method and numbers to float32 rounding), a few minutes on 2 cores.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lessons.default_model import default_model_path  # noqa: E402
from lessons.l01_gguf import GGUFFile  # noqa: E402
from lessons.l02_tokenizer import Tokenizer  # noqa: E402
from lessons.l07_swiglu import silu  # noqa: E402
from lessons.l08_transformer import NumpyLlama  # noqa: E402
from lessons.l09_sampling import (Sampler, SamplingParams, min_p_filter, probabilities,  # noqa: E402
                                  top_k_filter, top_p_filter)
from lessons.l11_perplexity import perplexity  # noqa: E402

IMG = ROOT / "docs" / "img"
PROMPT = "The capital of France is"
GATE_LAYER = 15


def save(fig, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / name, dpi=110, bbox_inches="tight")
    print(f"wrote {IMG / name}")


def swiglu_figure(model: NumpyLlama, tok: Tokenizer) -> None:
    captured = []

    def recording_linear(x, w):  # lesson 8's hook: every weight product passes here
        y = x @ w.T
        if w is model.weights.layers[GATE_LAYER].w_gate_up:
            captured.append(y)  # [n, 2 * n_ff]
        return y

    ids = tok.encode(PROMPT)
    model.reset()
    model.linear = recording_linear
    model.forward(np.array(ids), 0)
    del model.linear  # back to the class's plain product
    n_ff = model.config.n_ff
    gate, up = captured[0][-1, :n_ff], captured[0][-1, n_ff:]  # the last token's [n_ff] each
    open_ = silu(gate)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    z = np.linspace(-6, 6, 400)
    a.plot(z, silu(z), label="silu(z) = z·sigmoid(z)", color="#1f77b4")
    a.plot(z, np.maximum(z, 0), "--", label="relu(z)", color="#999999", lw=1)
    a.axhline(0, color="#cccccc", lw=0.6)
    a.set_xlabel("gate value z")
    a.set_title("the gate's curve: shut below 0, open above")
    a.legend(fontsize=9)
    share = np.mean(np.abs(open_) < 0.1 * np.abs(open_).max())
    b.hist(open_, bins=80, color="#2ca02c")
    b.set_yscale("log")
    b.set_xlabel(f"silu(gate) per hidden channel ({n_ff} channels)")
    b.set_ylabel("channels")
    b.set_title(f"SmolLM2 block {GATE_LAYER}, last token of {PROMPT!r}:\n"
                f"{share:.0%} of the channels pass under a tenth of the widest; "
                f"|up| averages {np.abs(up).mean():.2f}", fontsize=9)
    save(fig, "07-swiglu-gate.png")


def sampling_figure(model: NumpyLlama, tok: Tokenizer) -> None:
    p = SamplingParams()
    model.reset()
    logits = model.forward(np.array(tok.encode(PROMPT)), 0, last_only=True)[-1]  # [n_vocab]
    ids, lg = top_k_filter(np.arange(logits.size), logits, p.top_k)  # llama.cpp's chain, step by step
    after_p, _ = top_p_filter(ids, lg, p.top_p)
    after_min, _ = min_p_filter(*top_p_filter(ids, lg, p.top_p), p.min_p)
    shown = 60
    order = np.argsort(-logits)[:shown]
    probs = probabilities(logits)[order]
    colors = ["#2ca02c" if t in set(after_min) else "#ff7f0e" if t in set(after_p) else
              "#1f77b4" if t in set(ids) else "#cccccc" for t in order]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.bar(range(shown), probs, color=colors)
    ax.set_yscale("log")
    for k in range(6):
        ax.text(k, probs[k] * 1.15, repr(tok.decode([int(order[k])])), rotation=60, fontsize=8, ha="left", va="bottom")
    for color, label in [("#2ca02c", f"kept by all: {len(after_min)}"),
                         ("#ff7f0e", f"dropped by min-p {p.min_p}"),
                         ("#1f77b4", f"dropped by top-p {p.top_p}"), ("#cccccc", f"beyond top-k {p.top_k}")]:
        ax.bar([0], [0], color=color, label=label)
    kept_ids, kept = Sampler(p).distribution(logits, [])  # the lesson's whole chain, temperature included
    assert kept_ids.tolist() == after_min.tolist()
    ax.set_title(f"next token after {PROMPT!r} (SmolLM2, probabilities at temperature 1): the default chain "
                 f"keeps {len(after_min)}, and at temperature {p.temp} draws the best with p = {kept[0]:.2f}", fontsize=9)
    ax.set_xlabel("tokens, most probable first")
    ax.set_ylabel("probability")
    ax.set_ylim(top=max(probs) * 8)
    ax.legend(fontsize=9)
    save(fig, "09-sampling-filters.png")


def perplexity_figure(model, n_ctx: int = 512) -> None:
    ids = np.load(ROOT / "tests" / "fixtures" / "tinyshakespeare40k_smollm2_ids.npy").astype(np.int32)
    running = []
    ppl, err = perplexity(model, ids, n_ctx, on_chunk=lambda i, n, p: (running.append(p), print(f"chunk {i + 1}/{n}: {p:.3f}")))
    scored = n_ctx // 2 - 1  # tokens scored per chunk
    total_nll = np.log(running) * scored * np.arange(1, len(running) + 1)  # running mean nll * tokens so far
    per_chunk = np.exp(np.diff(total_nll, prepend=0.0) / scored)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = np.arange(1, len(running) + 1)
    ax.bar(x, per_chunk, color="#9ecae1", label="each chunk's perplexity")
    ax.plot(x, running, "o-", color="#d62728", ms=3, label="running estimate (what llama-perplexity prints)")
    ax.set_xlabel(f"chunk of {n_ctx} tokens (only its second half, {scored} tokens, is scored)")
    ax.set_ylabel("perplexity")
    ax.set_title(f"SmolLM2-135M Q4_1 on tinyshakespeare-40k: PPL = {ppl:.4f} ± {err:.2f} over "
                 f"{len(running)} chunks", fontsize=10)
    ax.legend(fontsize=9)
    save(fig, "11-perplexity-chunks.png")


def main(which: list[str]) -> None:
    with GGUFFile(default_model_path()) as f:
        model, tok = NumpyLlama(f, n_ctx=512), Tokenizer.from_metadata(f.metadata)
        if "swiglu" in which:
            swiglu_figure(model, tok)
        if "sampling" in which:
            sampling_figure(model, tok)
        if "perplexity" in which:
            from cpp_core.model import CppLlama
            perplexity_figure(CppLlama(f, n_ctx=512, n_threads=2))


if __name__ == "__main__":
    main(sys.argv[1:] or ["swiglu", "sampling", "perplexity"])
