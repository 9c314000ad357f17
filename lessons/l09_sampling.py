"""Lesson 9: sampling, turning logits into the next token.

The model gives a score (logit) per vocabulary entry. Greedy decoding takes the largest; sampling
draws at random from a trimmed, sharpened distribution. We follow llama.cpp's default chain and
defaults (common/common.h), one filter after the other on the surviving candidates:

    logit bias -> penalties -> top_k -> top_p -> min_p -> temperature -> draw

  - logit bias ({} = none): a number added to chosen tokens' logits; -inf bans a token.
  - penalties, over the last repeat_last_n tokens: repetition (1.0 = off) divides a seen token's
    logit by the penalty if positive, multiplies it if negative (both push it down); then
    frequency (0 = off) subtracts count * penalty and presence (0 = off) subtracts the penalty once
    (OpenAI's formula, as llama.cpp applies it).
  - top_k (40; <= 0 = off): keep the k largest logits.
  - top_p (0.95; >= 1 = off): keep the smallest set of top tokens whose probabilities sum to >= p.
  - min_p (0.05; <= 0 = off): keep tokens whose probability is >= min_p times the best one's.
  - temperature (0.8): divide logits by it; < 1 sharpens, > 1 flattens. temp <= 0 means greedy.
  - draw one token from softmax of what is left, with a seeded numpy Generator (seed=None: random).
Each filter keeps at least one token. llama.cpp's chain also has DRY, top-n-sigma, typical-p and
XTC stages between these; all four are off by default, so they are left out here. llama.cpp draws
with its own RNG, so a seeded run here is reproducible but not token-for-token equal to llama.cpp's;
greedy runs are.

Worked example (check it by hand): logits [2, 1, 0, -1] have probabilities [0.644, 0.237, 0.087, 0.032].
top_k=3 drops -1; renormalized [0.665, 0.245, 0.090]; top_p=0.9: 0.665 < 0.9, 0.665 + 0.245 = 0.910 >= 0.9,
so tokens 0 and 1 survive; min_p=0.05 keeps both (0.245/0.665 = 0.37 >= 0.05); the draw picks token 0
with probability e^2 / (e^2 + e^1) = 0.731 at temp 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SamplingParams:
    temp: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    seed: int | None = None


# ---- the filters: each takes (ids, logits) of the surviving candidates and returns a subset ----
# --8<-- [start:filters]
def apply_repeat_penalty(logits: np.ndarray, recent: list[int], penalty: float) -> np.ndarray:
    """Push down every token that appears in recent (each counted once, like llama.cpp)."""
    if penalty == 1.0 or not recent:
        return logits
    logits = logits.copy()
    seen = np.unique(np.asarray(recent, dtype=np.int64))
    seen = seen[(seen >= 0) & (seen < logits.shape[0])]
    vals = logits[seen]
    logits[seen] = np.where(vals > 0, vals / penalty, vals * penalty)
    return logits


def apply_count_penalties(logits: np.ndarray, recent: list[int], frequency: float, presence: float) -> np.ndarray:
    """logit -= count * frequency + (count > 0) * presence, for each token seen in recent."""
    if (frequency == 0.0 and presence == 0.0) or not recent:
        return logits
    seen, counts = np.unique(np.asarray(recent, dtype=np.int64), return_counts=True)
    ok = (seen >= 0) & (seen < logits.shape[0])
    logits = logits.copy()
    logits[seen[ok]] -= (counts[ok] * frequency + presence).astype(np.float32)
    return logits


def apply_logit_bias(logits: np.ndarray, bias: dict[int, float]) -> np.ndarray:
    """Add bias[id] to logits[id]; ids outside the vocabulary are ignored."""
    if not bias:
        return logits
    logits = logits.copy()
    for tid, b in bias.items():
        if 0 <= tid < logits.shape[0]:
            logits[tid] += np.float32(b)
    return logits


def top_k_filter(ids: np.ndarray, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k largest logits, sorted from best to worst (k <= 0 or k >= n: keep all, sorted)."""
    if 0 < k < logits.shape[0]:
        keep = np.argpartition(-logits, k - 1)[:k]  # the k best, unordered: O(n) instead of a full sort
        ids, logits = ids[keep], logits[keep]
    order = np.argsort(-logits, kind="stable")
    return ids[order], logits[order]


def probabilities(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - np.max(logits))
    return e / e.sum()


def top_p_filter(ids: np.ndarray, logits: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the shortest best-first prefix whose probability mass reaches p (input sorted best first)."""
    if p >= 1.0:
        return ids, logits
    cumulative = np.cumsum(probabilities(logits))  # [n], non-decreasing
    n_keep = int(np.searchsorted(cumulative, p, side="left")) + 1  # first index with cum >= p, inclusive
    return ids[:n_keep], logits[:n_keep]


def min_p_filter(ids: np.ndarray, logits: np.ndarray, min_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep tokens with probability >= min_p * max probability, i.e. logit >= max logit + log(min_p)."""
    if min_p <= 0.0:
        return ids, logits
    keep = logits >= np.max(logits) + np.log(min_p)
    return ids[keep], logits[keep]
# --8<-- [end:filters]


# ---- the chain ----
# --8<-- [start:sampler]
class Sampler:
    def __init__(self, params: SamplingParams | None = None):
        self.params = params or SamplingParams()
        self.rng = np.random.default_rng(self.params.seed)

    def distribution(self, logits: np.ndarray, history: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The surviving candidates after the chain: (ids, probabilities), best first."""
        p = self.params
        logits = apply_logit_bias(np.asarray(logits, dtype=np.float32), p.logit_bias)  # [n_vocab]
        if p.repeat_last_n != 0:  # llama.cpp: -1 = the whole history, 0 = off
            recent = history if p.repeat_last_n < 0 else history[-p.repeat_last_n :]
            logits = apply_repeat_penalty(logits, recent, p.repeat_penalty)
            logits = apply_count_penalties(logits, recent, p.frequency_penalty, p.presence_penalty)
        if p.temp <= 0:  # greedy: a single candidate (ties go to the lowest id)
            return np.array([np.argmax(logits)]), np.ones(1)
        ids = np.arange(logits.shape[0])  # [n_vocab]
        ids, logits = top_k_filter(ids, logits, p.top_k)  # [k] each, best first
        ids, logits = top_p_filter(ids, logits, p.top_p)
        ids, logits = min_p_filter(ids, logits, p.min_p)
        return ids, probabilities(logits / np.float32(p.temp))  # temperature last, as llama.cpp does

    def sample(self, logits: np.ndarray, history: list[int]) -> int:
        """Pick the next token from logits [n_vocab]; history = prompt + generated tokens so far."""
        ids, probs = self.distribution(logits, history)
        if len(ids) == 1:
            return int(ids[0])
        return int(ids[self.rng.choice(len(ids), p=probs)])
# --8<-- [end:sampler]
