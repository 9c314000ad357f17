"""The C++ decode kernels' activation roundings (cpp_core/act_rounding.py), checked against plain integer
dot products: the algebra the v13 kernel relies on, on a worked example and on random and extreme blocks."""
from __future__ import annotations

import numpy as np

from cpp_core import act_rounding as R


def test_q4_block_without_the_mask_is_the_plain_dot():
    """v13's identity, b_j p_j + hi_j (p_(j+16) - 16 p_j) = lo_j p_j + hi_j p_(j+16), on the comment's example
    and on random blocks with activations at the +-1927 extremes, where the offset must still fit int16."""
    qs = np.zeros(16, np.uint8)
    qs[0] = 0x3A  # lo 10, hi 3
    p = np.zeros(32, np.int64)
    p[0], p[16] = 5, -2
    assert R.dot_q4_block_unmasked(qs, p) == 44 == 10 * 5 + 3 * (-2)
    rng = np.random.default_rng(0)
    for trial in range(200):
        qs = rng.integers(0, 256, 16).astype(np.uint8)
        p = rng.integers(-R.I12_STEPS, R.I12_STEPS + 1, 32)
        if trial < 4:  # the corners: all +-1927
            p = np.where(np.arange(32) < 16, 1, -1) * R.I12_STEPS * (1 if trial % 2 else -1)
        q = np.concatenate([qs & 0xF, qs >> 4]).astype(np.int64)  # elements 0..31
        assert R.dot_q4_block_unmasked(qs, p) == int(q @ p)
    _d, p12, _s = R.quantize_i16(np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32), R.I12_STEPS)
    assert np.abs(p12).max() == R.I12_STEPS  # each block's largest value takes the last step
