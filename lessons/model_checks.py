"""The model's checks: what every backend's constructor and forward() verify before they compute.

Kept out of lesson 8 so its forward pass reads first. A caller (run.py, a test, a reader at the
prompt) can pass anything: a context of 10^9 positions, a token id past the vocabulary, a float as
a position. Each of those is a one-line ValueError here instead of a multi-gigabyte allocation, an
IndexError deep in numpy, or a silently wrong answer. The numpy model (lesson 8) and the C++ model
(cpp_core/model.py) call the same functions.

Worked example: SmolLM2-135M's cache at n_ctx 8192 in float32 is 2 (K and V) * 30 layers * 3 KV heads
* 8192 positions * 64 * 4 bytes = 360 MiB; at n_ctx 4 million it would be 176 GiB: refused.
"""
from __future__ import annotations

import numpy as np

from lessons.l06_attention import KV_TYPES

MAX_CACHE_BYTES = 16 << 30  # refuse a KV cache bigger than this rather than let the OS find out


def check_n_ctx(n_ctx, n_ctx_train: int) -> int:
    """A context length between 1 and the model's training context, as an int."""
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, (int, np.integer)) or not 1 <= n_ctx <= n_ctx_train:
        raise ValueError(f"n_ctx must be between 1 and the model's training context {n_ctx_train}, got {n_ctx}")
    return int(n_ctx)


def check_cache_bytes(config, n_ctx: int, kv_type: str) -> int:
    """Bytes of the K and V caches for n_ctx positions; ValueError beyond MAX_CACHE_BYTES."""
    itemsize = np.dtype(KV_TYPES[kv_type]).itemsize
    cache_bytes = 2 * config.n_layer * config.n_head_kv * n_ctx * config.head_dim * itemsize  # K and V
    if cache_bytes > MAX_CACHE_BYTES:
        raise ValueError(f"a KV cache of n_ctx {n_ctx} would take {cache_bytes / 2**30:.1f} GiB; use a smaller context")
    return cache_bytes


def check_forward_args(tokens, pos, n_ctx: int, n_vocab: int) -> np.ndarray:
    """Every backend's forward() starts here: tokens [n] as int64, or a one-line ValueError."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.size == 0 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a non-empty 1-D integer array, got shape {tokens.shape} {tokens.dtype}")
    if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)) or pos < 0:
        raise ValueError(f"pos must be a non-negative integer, got {pos!r}")
    if pos + tokens.size > n_ctx:
        raise ValueError(f"context full: positions {pos}..{pos + tokens.size - 1} do not fit in n_ctx {n_ctx}")
    if tokens.min() < 0 or tokens.max() >= n_vocab:
        raise ValueError(f"token id out of range [0, {n_vocab})")
    return tokens.astype(np.int64)
