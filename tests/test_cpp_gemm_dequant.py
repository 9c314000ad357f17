"""v10's SIMD row dequantizers for Q5_0, Q5_1 and the k-quants (cpp_core/src/matmul/gemm_dequant.cpp).

v10 dequantizes each weight row once per prompt, then runs an f32 GEMM. These types used to go through the
scalar lesson port; now they unpack with AVX2 byte logic and scale with AVX-512 or AVX2 FMAs. The promise is
the lesson's floats to the last bit, so the oracle is lessons.l12_quants.dequantize (checked against gguf-py
in test_quants), and the product is made to show the weights themselves: x = the identity gives y = W^T,
each output one weight times 1.0 plus exact zeros (so only the sign of a zero weight is lost). Random bytes in every quant field reach every bit
pattern (5th bits, Q3_K's high-bit mask, Q6_K's 2 high bits, negative Q3_K/Q6_K scales, 6-bit scales and
mins of sub-blocks 4-7); rows of 1 block up to the default model's 1536 columns.
"""
from __future__ import annotations

import numpy as np
import pytest

from test_cpp_kernels_matmul import BLOCK, TYPES, V10, float_weights, random_weights

K = pytest.importorskip("cpp_core.kernels", reason="the C++ core is not built (pip install -e .)")

NEW_TYPES = ["q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]


@pytest.mark.parametrize("version", V10)
@pytest.mark.parametrize("type_name", NEW_TYPES)
@pytest.mark.parametrize("n_blocks, n_rows", [(1, 1), (3, 13), (6, 67)])
def test_dequantized_rows_are_the_lessons_floats(version, type_name, n_blocks, n_rows):
    t = TYPES[type_name]
    n_cols = BLOCK[t][0] * n_blocks  # 32-blocks: 32..192 columns; k-quants: 256..1536 (ffn_down's rows)
    W = random_weights(t, n_rows, n_cols, seed=100 * t + n_blocks)
    got = K.quant_matmul(W, t, np.eye(n_cols, dtype=np.float32), version=version)  # [n_cols, n_rows] = W^T
    np.testing.assert_array_equal(got.T, float_weights(W, t).astype(np.float32))  # (a sum makes -0 +0)


@pytest.mark.parametrize("version", V10)
@pytest.mark.parametrize("type_name", ["q3_k", "q6_k"])
def test_negative_scales_and_extreme_codes(version, type_name):
    """Q3_K and Q6_K have signed sub-block scales; all-ones and all-zeros bytes are the extreme codes
    (Q6_K: q = 31 and -32 with scale -1; Q3_K: q = 3 and -4 with scale 31 or -32)."""
    t = TYPES[type_name]
    n_cols = 256
    W = random_weights(t, 4, n_cols, seed=5)
    block = W.reshape(4, -1)  # one super-block per row
    scale_off = 192 if t == 14 else 96  # Q6_K: int8 scales[16] after ql, qh; Q3_K: scales[12] after hmask, qs
    block[0, :scale_off] = 0xFF
    block[1, :scale_off] = 0x00
    block[2, scale_off:scale_off + (16 if t == 14 else 12)] = 0xFF  # scale -1 (Q6_K) / 31 (Q3_K)
    block[3, scale_off:scale_off + (16 if t == 14 else 12)] = 0x00  # scale 0 (Q6_K) / -32 (Q3_K)
    got = K.quant_matmul(W, t, np.eye(n_cols, dtype=np.float32), version=version)
    np.testing.assert_array_equal(got.T, float_weights(W, t).astype(np.float32))  # (a sum makes -0 +0)


@pytest.mark.parametrize("version", V10)
@pytest.mark.parametrize("type_name", NEW_TYPES)
def test_prompt_product_matches_numpy(version, type_name):
    """A 40-token prompt through the 1536-column rows: the f32 GEMM's sums against float64 numpy."""
    t = TYPES[type_name]
    n_cols = 1536
    W = random_weights(t, 21, n_cols, seed=t)
    x = np.random.default_rng(t).standard_normal((40, n_cols)).astype(np.float32)
    Wf = float_weights(W, t)
    want = x.astype(np.float64) @ Wf.T
    scale = np.abs(x.astype(np.float64)) @ np.abs(Wf).T
    got = K.quant_matmul(W, t, x, version=version, n_threads=2)
    assert np.all(np.abs(got - want) <= 2e-6 * scale + 1e-6)
