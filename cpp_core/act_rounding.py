"""How the C++ decoding kernels round their activations: the oracle their tests compare against.

Lesson 14 teaches llama.cpp's way: activations rounded to 8 bits (Q8_0, Q8_1, Q8_K). For one token at
a time the C++ core also ships kernels that round them to 16 bits instead (quant_matmul v11, v12) or to
a 12-bit grid that lets a 4-bit weight byte stay whole (v13). Those are choices of the C++ side, not of
llama.cpp, so their reference roundings live here, beside the kernels, in plain numpy:
tests/test_cpp_kernels_matmul.py checks each kernel's product against them to the last bit.
"""
from __future__ import annotations

import numpy as np

QK = 32  # values per activation block, as Q8_0


# --8<-- [start:i16]
def quantize_i16(x: np.ndarray, steps: int = 32767):
    """[..., k] -> d [..., k/32] float32, p [..., k/32, 32] int16, s = d * sum(p) [..., k/32] float32.
    Q8_0's recipe with 32767 steps instead of 127: a value moves by at most max|x|/65534 of its block,
    256x less than with 8 bits, so a dot product keeps float32's answer to about 1e-5.
    steps=I12_STEPS is the AVX2 kernel v13's choice (below)."""
    blocks = np.asarray(x, dtype=np.float32).reshape(*x.shape[:-1], -1, QK)  # [..., nb, 32]
    amax = np.abs(blocks).max(axis=-1)  # [..., nb]
    inv = np.divide(np.float32(steps), amax, out=np.zeros_like(amax), where=amax > 0)  # [..., nb]
    p = np.round(blocks * inv[..., None]).astype(np.int16)  # [..., nb, 32]
    d = amax / np.float32(steps)  # [..., nb]
    return d, p, d * p.sum(axis=-1, dtype=np.int64).astype(np.float32)
# --8<-- [end:i16]


# --8<-- [start:i12]
# A Q4 block's byte j holds element j (low nibble) and element j + 16 (high nibble): b_j = lo_j + 16 hi_j.
# Splitting them costs a mask and a shift per block. Keep the byte whole instead and let the high nibble
# take the surplus back out:  b_j p_j + hi_j (p_(j+16) - 16 p_j) = lo_j p_j + hi_j p_(j+16).
# The second factor must fit int16 for vpmaddwd: |p| <= 1927 gives |p_(j+16) - 16 p_j| <= 17 * 1927 = 32759.
# Example: b = 0x3A (lo 10, hi 3), p_j = 5, p_(j+16) = -2: 58 * 5 + 3 * (-2 - 80) = 290 - 246 = 44 = 10 * 5 + 3 * (-2).
I12_STEPS = 1927


def dot_q4_block_unmasked(qs: np.ndarray, p: np.ndarray) -> int:
    """sum_k q_k p_k of one 4-bit block (16 bytes qs, 32 activations p, |p| <= I12_STEPS) the v13 way."""
    b = qs.astype(np.int64)                              # [16] lo + 16 hi
    p = p.astype(np.int64)
    offset = p[16:] - 16 * p[:16]                        # [16], fits int16
    assert np.abs(offset).max(initial=0) <= 32767
    return int(b @ p[:16] + (b >> 4) @ offset)
# --8<-- [end:i12]
