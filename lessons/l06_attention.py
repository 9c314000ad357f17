"""Lesson 6: causal, grouped-query attention with a KV cache.

Each head compares its query with the keys of every earlier position, turns the scores into weights
with a softmax, and averages the values with those weights:

    out_h = softmax(q_h . K_h^T / sqrt(head_dim) + causal mask) . V_h

Causal: the token at position t may look at positions 0..t only (the mask puts -inf on the future).
Grouped-query (GQA, Ainslie et al., 2023): there are fewer key/value heads than query heads. SmolLM2
has 9 query heads and 3 KV heads, so each KV head serves a group of 3 consecutive query heads: query
head h reads KV head h // (n_head // n_head_kv). That shrinks the KV cache by 3x at little cost.

KV cache: when generating, token t's keys and values never change once computed, so we keep them in a
preallocated cache [n_layer, n_head_kv, n_ctx, head_dim] and each new token computes only its own q, k, v,
appends k and v, and attends to everything cached. Prefill (the prompt) and decode (one token) are the
same code: n new queries at positions pos..pos+n-1 against pos+n cached keys.

The cache's number type: llama.cpp keeps K and V as float16 by default (--cache-type-k/-v f16), and so
does run.py. That halves the cache's memory and the bytes a decoded token reads from it. The cost is
one rounding of each cached value to 11 significant bits, a relative error of at most 2^-11:
np.float16(0.1) is 0.0999755859375. The classes here default to float32 (kv_type="f32"), the exact
reference the tests compare against. The arithmetic is float32 either way: the scores and the weighted
sum widen each float16 value exactly to float32.

Worked examples (check them by hand):
  - softmax of equal scores is uniform: softmax([2, 2, 2, 2]) = [0.25, 0.25, 0.25, 0.25], so a query
    that scores every key the same returns the plain mean of the values.
  - the first token (position 0) can only see itself: its output is exactly v[0], whatever q and k are.

    >>> softmax(np.array([2.0, 2.0, 2.0, 2.0]))
    array([0.25, 0.25, 0.25, 0.25])

  - a float16 cache keeps 11 significant bits: 0.1 = 1.6 x 2^-4 becomes 1 + 614/1024 = 1.599609375 x 2^-4.

    >>> float(np.float16(0.1))
    0.0999755859375
"""

import numpy as np


# ---- softmax ----
# --8<-- [start:softmax]
def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along axis; subtracting the max first keeps exp from overflowing."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
# --8<-- [end:softmax]


# ---- the KV cache ----
# --8<-- [start:kv_cache]
KV_TYPES = {"f16": np.float16, "f32": np.float32}  # llama.cpp's names for the cache's number type


def check_kv_type(kv_type: str) -> None:
    if kv_type not in KV_TYPES:
        raise ValueError(f"KV cache type must be one of {', '.join(KV_TYPES)}, not {kv_type!r}")


class KVCache:
    """Keys and values of every position seen so far, per layer, preallocated for n_ctx positions.

    Layout [n_layer, n_head_kv, n_ctx, head_dim]: one head's keys are contiguous, so attention is one
    matrix product per KV head with no copy. kv_type "f32" (the default) stores float32, "f16" float16.
    """

    def __init__(self, n_layer: int, n_ctx: int, n_head_kv: int, head_dim: int, kv_type: str = "f32"):
        check_kv_type(kv_type)
        self.n_ctx = n_ctx
        self.k = np.zeros((n_layer, n_head_kv, n_ctx, head_dim), dtype=KV_TYPES[kv_type])
        self.v = np.zeros((n_layer, n_head_kv, n_ctx, head_dim), dtype=KV_TYPES[kv_type])

    def store(self, layer: int, pos: int, k: np.ndarray, v: np.ndarray) -> None:
        """Write k, v [n, n_head_kv, head_dim] for positions pos..pos+n-1 of one layer (rounded to the cache's type)."""
        n = k.shape[0]
        self.k[layer, :, pos : pos + n] = k.transpose(1, 0, 2)  # [n, n_head_kv, hd] -> [n_head_kv, n, hd]
        self.v[layer, :, pos : pos + n] = v.transpose(1, 0, 2)
# --8<-- [end:kv_cache]


# ---- attention ----
# --8<-- [start:attention]
def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, pos: int) -> np.ndarray:
    """Causal grouped-query attention of n new queries against all cached keys.

    q: [n, n_head, head_dim], the queries of positions pos..pos+n-1 (already rotated by RoPE).
    k, v: [n_head_kv, pos+n, head_dim], the keys/values of positions 0..pos+n-1 (float32, or a float16 cache).
    Returns [n, n_head * head_dim], the heads concatenated (ready for W_o).
    """
    k, v = k.astype(np.float32, copy=False), v.astype(np.float32, copy=False)  # float16 widens exactly
    n, n_head, head_dim = q.shape
    n_head_kv, n_kv = k.shape[0], k.shape[1]
    group = n_head // n_head_kv  # query heads per KV head
    # Query head h = kv * group + g reads KV head kv: gather each KV head's group of queries into one matrix.
    qg = q.reshape(n, n_head_kv, group, head_dim).transpose(1, 2, 0, 3)  # [n_head_kv, group, n, hd]
    qg = qg.reshape(n_head_kv, group * n, head_dim)  # [n_head_kv, group*n, hd]
    scores = (qg @ k.transpose(0, 2, 1)) * np.float32(1.0 / np.sqrt(head_dim))  # [n_head_kv, group*n, n_kv]
    scores = scores.reshape(n_head_kv, group, n, n_kv)  # [n_head_kv, group, n, n_kv]
    if n > 1:  # causal mask: query i (position pos+i) sees keys 0..pos+i; a single new token sees all
        future = np.arange(n_kv)[None, :] > (pos + np.arange(n))[:, None]  # [n, n_kv]
        scores[:, :, future] = -np.inf
    probs = softmax(scores).reshape(n_head_kv, group * n, n_kv)  # [n_head_kv, group*n, n_kv]
    out = probs @ v  # [n_head_kv, group*n, n_kv] @ [n_head_kv, n_kv, hd] -> [n_head_kv, group*n, hd]
    out = out.reshape(n_head_kv, group, n, head_dim).transpose(2, 0, 1, 3)  # [n, n_head_kv, group, hd]
    return out.reshape(n, n_head * head_dim)  # [n, n_head*hd], head h = kv*group + g
# --8<-- [end:attention]
