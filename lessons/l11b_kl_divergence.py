"""Lesson 11b: KL divergence, how far a quantized model's predictions moved from the original's.

Perplexity (lesson 11) looks at one number per position: the probability of the token that really
came next. Errors of a quantization can cancel there: a quantized model Q that is a little more sure
of the right token here and a little less sure there can score the same perplexity as the base model,
or even a better one, while predicting differently at almost every step. What we want to know is
"does Q behave like the base model?", and that is a question about the *whole* next-token
distribution at every position. The Kullback-Leibler divergence answers it:

    KL(base || Q) = sum_i p_base(i) * (ln p_base(i) - ln p_Q(i))      >= 0, and 0 only if p_Q == p_base

It does not care which token is right, only whether Q puts its probability where the base model does.
llama-perplexity --kl-divergence prints its mean over all scored tokens, with percentiles (the tail
matters: a few positions where Q is badly wrong are what a user notices), and next to it:

  - delta-p: p_Q(true token) - p_base(true token), in percent (its mean, percentiles and RMS);
  - "Same top p": how often the most likely token of Q is the base model's (greedy decoding agrees);
  - both perplexities, their ratio and the correlation of the per-token log-likelihoods.

Worked example, two tokens: p_base = (1/2, 1/2) and p_Q = (3/4, 1/4), the true token is token 0.
    KL = 1/2 ln((1/2)/(3/4)) + 1/2 ln((1/2)/(1/4)) = 1/2 ln(4/3) = 0.143841
    nll_base = ln 2 = 0.693147, nll_Q = ln(4/3) = 0.287682: Q looks *better* by perplexity!
    delta-p = 3/4 - 1/2 = +25%, and the top token agrees only by tie-breaking (both pick token 0).

The base model's distributions are saved once (a file, lesson 11c) and every quantization compared with
it. A float32 row of 49152 log-probs per token would be big; llama.cpp keeps 16 bits per log-prob:
the row's range [max - 16, max] of logits in 65535 steps (log-probs below max - 16, probabilities
under e^-16 = 1.1e-7 of the top one, are all stored as the bottom step and left out of the sum).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLOOR = 16.0  # log-probs more than 16 below the row's top are clamped (and skipped in the KL sum)
STEPS = 65535.0  # uint16


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """ln softmax per row in float64: [n, n_vocab] -> [n, n_vocab]."""
    x = logits.astype(np.float64)  # [n, n_vocab]
    x = x - x.max(axis=-1, keepdims=True)  # [n, n_vocab], top = 0
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))  # [n, n_vocab]


# --8<-- [start:pack]
def row_width(n_vocab: int) -> int:
    """uint16s per stored row: 2 float32 (scale, min_log_prob) = 4 uint16, then n_vocab, made even."""
    return 2 * ((n_vocab + 1) // 2) + 4


def pack_log_probs(logits: np.ndarray) -> np.ndarray:
    """The base model's rows as llama.cpp stores them: logits [n, n_vocab] -> uint16 [n, row_width]."""
    n, n_vocab = logits.shape
    x = logits.astype(np.float32)  # [n, n_vocab]
    top = x.max(axis=1)  # [n]
    low = np.maximum(x.min(axis=1), top - np.float32(FLOOR))  # [n]: the bottom of the stored range
    log_sum = np.log(np.exp((x - top[:, None]).astype(np.float64)).sum(axis=1))  # [n]
    min_log_prob = (low - top - log_sum).astype(np.float32)  # [n]: ln p of the bottom step
    scale = ((top - low) / np.float32(STEPS)).astype(np.float32)  # [n]: ln p per step
    safe = np.where(scale > 0, scale, np.float32(1))  # [n]: a flat row has scale 0: all its steps are 0
    steps = np.rint((x - low[:, None]) * (np.float32(1) / safe)[:, None])  # [n, n_vocab]
    steps = np.where((x > low[:, None]) & (scale[:, None] > 0), steps, 0)  # [n, n_vocab]
    rows = np.zeros((n, row_width(n_vocab)), np.uint16)  # [n, row_width]
    rows[:, 0:2] = scale.reshape(n, 1).view(np.uint16)  # float32 bytes as two uint16
    rows[:, 2:4] = min_log_prob.reshape(n, 1).view(np.uint16)
    rows[:, 4 : 4 + n_vocab] = np.clip(steps, 0, STEPS).astype(np.uint16)
    return rows


def unpack_log_probs(rows: np.ndarray, n_vocab: int) -> np.ndarray:
    """uint16 [n, row_width] -> the base model's log-probs, float32 [n, n_vocab]."""
    head = np.ascontiguousarray(rows[:, 0:4]).view(np.float32)  # [n, 2]: scale, min_log_prob
    return head[:, 0:1] * rows[:, 4 : 4 + n_vocab].astype(np.float32) + head[:, 1:2]  # [n, n_vocab]
# --8<-- [end:pack]


# --8<-- [start:token_stats]
def token_stats(logits: np.ndarray, base_rows: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per scored token: KL(base || Q), nll of Q and of base, delta-p, same top token.

    logits [n, n_vocab] of the model Q; base_rows uint16 [n, row_width] packed by pack_log_probs;
    targets [n] the true next tokens.
    """
    n_vocab = logits.shape[1]
    log_q = log_softmax(logits)  # [n, n_vocab]
    log_base = unpack_log_probs(base_rows, n_vocab).astype(np.float64)  # [n, n_vocab]
    kept = log_base > -FLOOR  # [n, n_vocab]: the clamped bottom carries no probability worth summing
    terms = np.exp(log_base) * (log_base - log_q)  # [n, n_vocab]: p_base(i) ln(p_base(i) / p_Q(i))
    kld = np.where(kept, terms, 0.0).sum(axis=1)  # [n]
    rows = np.arange(len(targets))  # [n]
    nll, nll_base = -log_q[rows, targets], -log_base[rows, targets]  # [n], [n]
    return {"kld": kld, "nll": nll, "nll_base": nll_base,
            "p_diff": np.exp(-nll) - np.exp(-nll_base),  # [n]
            "same_top": logits.argmax(axis=1) == log_base.argmax(axis=1)}  # [n] bool
# --8<-- [end:token_stats]


# --8<-- [start:statistics]
def mean_and_uncertainty(x: np.ndarray) -> tuple[float, float]:
    """llama.cpp's (mean, standard error of the mean); the error is 0 for 10 values or fewer."""
    mean = float(x.mean())
    var = float(np.square(x).mean()) - mean * mean
    return mean, (float(np.sqrt(var / (x.size - 1))) if var > 0 and x.size > 10 else 0.0)


def covariance(a: np.ndarray, b: np.ndarray) -> float:
    """Covariance of the two means (divided by n - 1 like their errors); 0 below 10 values."""
    if a.size < 10:
        return 0.0
    return (float((a * b).mean()) - float(a.mean()) * float(b.mean())) / (a.size - 1)


def percentile(sorted_values: np.ndarray, fraction: float) -> float:
    """Linear interpolation between the two nearest ranks, as llama.cpp does (numpy's 'linear')."""
    if fraction <= 0 or fraction >= 1:
        return float(sorted_values[0 if fraction <= 0 else -1])
    p = fraction * (sorted_values.size - 1)
    i = int(p)
    j = min(i + 1, sorted_values.size - 1)
    return float((1 - (p - i)) * sorted_values[i] + (p - i) * sorted_values[j])


@dataclass
class KLStats:
    count: int
    ppl: tuple[float, float]  # (value, uncertainty): Mean PPL(Q)
    ppl_base: tuple[float, float]
    cor: float  # Cor(ln(PPL(Q)), ln(PPL(base)))
    ln_ratio: tuple[float, float]
    ratio: tuple[float, float]
    diff: tuple[float, float]
    kld: tuple[float, float]
    p_diff: tuple[float, float]
    rms_p_diff: tuple[float, float]
    same_top: tuple[float, float]
    kld_sorted: np.ndarray = field(repr=False)
    p_diff_sorted: np.ndarray = field(repr=False)


def statistics(tokens: dict[str, np.ndarray]) -> KLStats:
    """All of llama-perplexity's figures from the per-token arrays of token_stats (concatenated)."""
    nll, nll_base = tokens["nll"], tokens["nll_base"]
    ln_q, ln_base = mean_and_uncertainty(nll), mean_and_uncertainty(nll_base)
    cov = covariance(nll, nll_base)
    ppl, ppl_base = np.exp(ln_q[0]), np.exp(ln_base[0])
    ln_ratio = (ln_q[0] - ln_base[0], float(np.sqrt(max(ln_q[1] ** 2 + ln_base[1] ** 2 - 2 * cov, 0.0))))
    ratio = float(np.exp(ln_ratio[0]))
    diff_var = (ppl * ln_q[1]) ** 2 + (ppl_base * ln_base[1]) ** 2 - 2 * ppl * ppl_base * cov
    mse = mean_and_uncertainty(np.square(tokens["p_diff"]))
    rms = float(np.sqrt(mse[0]))
    same = float(tokens["same_top"].mean())
    return KLStats(
        count=nll.size, ppl=(ppl, ppl * ln_q[1]), ppl_base=(ppl_base, ppl_base * ln_base[1]),
        cor=cov / (ln_q[1] * ln_base[1]) if ln_q[1] and ln_base[1] else 0.0,
        ln_ratio=ln_ratio, ratio=(ratio, ratio * ln_ratio[1]),
        diff=(ppl - ppl_base, float(np.sqrt(max(diff_var, 0.0)))),
        kld=mean_and_uncertainty(tokens["kld"]), p_diff=mean_and_uncertainty(tokens["p_diff"]),
        rms_p_diff=(rms, 0.5 / rms * mse[1] if rms > 0 else 0.0),
        same_top=(same, float(np.sqrt(same * (1 - same) / (nll.size - 1))) if nll.size > 1 else 0.0),
        kld_sorted=np.sort(tokens["kld"]), p_diff_sorted=np.sort(tokens["p_diff"]))
# --8<-- [end:statistics]


def kl_divergence(model, ids, base, bos_id: int | None = None, on_chunk=None) -> KLStats:
    """Score model Q on ids against a saved base (lesson 11c's BaseFile: n_ctx, n_chunk, rows(i)).

    The walk over the text is lesson 11's: the same chunks, the same scored positions.
    on_chunk(i, stats_so_far) is called after each chunk.
    """
    from lessons.l11_perplexity import scored_chunks

    parts: list[dict[str, np.ndarray]] = []
    for i, (logits, targets) in enumerate(scored_chunks(model, ids, base.n_ctx, bos_id, base.n_chunk)):
        rows = base.rows(i)  # [n_ctx/2 - 1, row_width]
        for s in range(0, len(targets), 64):  # 64 tokens at a time: float64 [64, n_vocab] arrays, not [n_ctx/2, ...]
            parts.append(token_stats(logits[s : s + 64], rows[s : s + 64], targets[s : s + 64]))
        if on_chunk is not None:
            on_chunk(i, statistics({k: np.concatenate([p[k] for p in parts]) for k in parts[0]}))
    return statistics({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
