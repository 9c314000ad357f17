"""Lesson 11: perplexity, the standard yardstick of a language model (and of a quantization).

Perplexity is exp(mean negative log-likelihood) of the true next tokens of a text: a model that is
uniformly unsure between k tokens at every step has perplexity k. Lower is better. We measure it the
way llama.cpp's llama-perplexity does, so the numbers can be compared:

  - tokenize the whole text once; cut it into consecutive chunks of n_ctx tokens (the leftover tail
    is dropped; at least 2 chunks' worth of tokens are required).
  - if the model adds a BOS token, the first token of every chunk is *replaced* by BOS (SmolLM2 doesn't).
  - evaluate each chunk from an empty cache, in batched forwards: the first half (context only, its
    logits are never used, so we ask for the last row only) then the second half.
  - score only the second half: the logit at position j predicts token j+1, for j = n_ctx/2 .. n_ctx-2,
    so every scored token has at least n_ctx/2 tokens of context. That is n_ctx/2 - 1 tokens per chunk.
  - ppl = exp(mean nll); its standard error by the delta method, as llama.cpp prints after "+/-":
        stderr = ppl * sqrt((mean(nll^2) - mean(nll)^2) / (N - 1))

Worked example: if every scored token had probability 1/8, every nll is ln 8 = 2.079, the mean is
ln 8, ppl = 8, and since all nll are equal the standard error is 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


# --8<-- [start:token_nll]
def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row: logits [n, n_vocab], targets [n] -> [n] float64."""
    logits = logits.astype(np.float64)  # [n, n_vocab]
    top = logits.max(axis=-1, keepdims=True)  # [n, 1]
    log_sum = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]  # [n]: log sum exp
    return log_sum - logits[np.arange(len(targets)), targets]  # [n]
# --8<-- [end:token_nll]


# --8<-- [start:chunks]
def count_chunks(n_ids: int, n_ctx: int, max_chunks: int | None = None) -> int:
    """How many chunks of n_ctx tokens llama-perplexity scores in n_ids tokens (at most max_chunks)."""
    if n_ctx < 4 or n_ctx % 2:
        raise ValueError(f"n_ctx must be an even number >= 4, got {n_ctx}")
    if n_ids < 2 * n_ctx:
        raise ValueError(f"need at least 2 * n_ctx = {2 * n_ctx} tokens, got {n_ids}")
    n_chunks = n_ids // n_ctx
    return n_chunks if max_chunks is None or max_chunks < 0 else min(n_chunks, max_chunks)


def scored_chunks(model, ids, n_ctx: int, bos_id: int | None = None, max_chunks: int | None = None):
    """Yield, per chunk, (logits [n_ctx/2 - 1, n_vocab], targets [n_ctx/2 - 1]): what gets scored.

    This is the walk over the text that perplexity and KL divergence (lesson 11b) share.
    bos_id: pass the BOS id when the model's tokenizer adds BOS (it then replaces the first token of
    each chunk); None for SmolLM2.
    """
    ids = np.asarray(ids, dtype=np.int32)
    n_chunks = count_chunks(len(ids), n_ctx, max_chunks)
    first = n_ctx // 2
    for i in range(n_chunks):
        chunk = ids[i * n_ctx : (i + 1) * n_ctx].copy()  # [n_ctx]
        if bos_id is not None:
            chunk[0] = bos_id
        model.reset()
        model.forward(chunk[:first], 0, last_only=True)  # the first half is context only: skip its logits
        logits = model.forward(chunk[first:], first)  # [n_ctx/2, n_vocab], positions first..n_ctx-1
        yield logits[:-1], chunk[first + 1 :]  # position j predicts token j+1: [n_ctx/2 - 1, n_vocab], [n_ctx/2 - 1]
# --8<-- [end:chunks]


# --8<-- [start:perplexity]
def perplexity(model, ids, n_ctx: int, on_chunk: Callable[[int, int, float], None] | None = None,
               bos_id: int | None = None, max_chunks: int | None = None,
               on_logits: Callable[[np.ndarray], None] | None = None) -> tuple[float, float]:
    """llama-perplexity's estimate over ids: (ppl, standard error).

    on_chunk(i, n_chunks, ppl_so_far) is called after each chunk; max_chunks is llama.cpp's --chunks;
    on_logits(logits) gets each chunk's scored logits (lesson 11b saves the base model's from there).
    """
    n_chunks = count_chunks(len(ids), n_ctx, max_chunks)
    nll_sum, nll2_sum, count = 0.0, 0.0, 0
    for i, (logits, targets) in enumerate(scored_chunks(model, ids, n_ctx, bos_id, max_chunks)):
        nll = token_nll(logits, targets)  # [n_ctx/2 - 1]
        if on_logits is not None:
            on_logits(logits)
        nll_sum, nll2_sum, count = nll_sum + nll.sum(), nll2_sum + np.square(nll).sum(), count + nll.size
        if on_chunk is not None:
            on_chunk(i, n_chunks, float(np.exp(nll_sum / count)))
    mean, mean_sq = nll_sum / count, nll2_sum / count
    ppl = float(np.exp(mean))
    variance = max(mean_sq - mean * mean, 0.0)
    return ppl, float(ppl * np.sqrt(variance / (count - 1)))
# --8<-- [end:perplexity]
