"""The CUDA kernels' own code, run on the CPU: no GPU needed.

Each kernel's per-thread body is a __host__ __device__ function (cpp_core/src/cuda/*.cu); cpp_core/src/cuda/
bindings/bind_cuda_host.cpp compiles those same functions for the host and runs them as the kernel's grid would (every row,
every lane of a warp, every (token, head)). So these tests check, against the lessons, everything a kernel computes
except what only a GPU does (shuffles, shared memory, launch geometry, device float rounding): which bytes of which
block a thread reads, how it unpacks them, which position and head an index stands for. tests/test_cuda_kernels.py
checks the rest on a GPU.

Oracles: lessons.l12_quants.dequantize (itself checked against gguf-py), l04 rmsnorm, l05 RoPE, l06 attention,
l07 swiglu; for the int8 version v2, the activations rounded as it rounds them, then an exact float64 product."""
import numpy as np
import pytest

from cpp_core import _core
from lessons.l04_rmsnorm import rmsnorm
from lessons.l05_rope import apply_rope, rope_angles
from lessons.l06_attention import attention
from lessons.l07_swiglu import swiglu
from lessons.l12_quants import GGML_TYPES, dequantize
from lessons.l12b_legacy_quants import round_half_away
from tools.make_synthetic_gguf import random_blocks

H = _core.cuda_host
QUANT_TYPES = [2, 3, 6, 7, 8, 10, 11, 12, 13, 14]  # Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
ALL_TYPES = [0, 1] + QUANT_TYPES
NAMES = {t: GGML_TYPES[t][0] for t in ALL_TYPES}


def weights(t, n_rows, n_cols, seed=0):
    raw = random_blocks(t, n_rows, n_cols, np.random.default_rng(seed))  # every bit pattern, sane scales
    return raw, dequantize(raw, t, (n_rows, n_cols))


@pytest.mark.parametrize("t", ALL_TYPES, ids=NAMES.get)
def test_dequant_one_is_the_lesson(t):
    """v0's per-weight decoder (dequant_one) gives every weight the lesson's dequantize gives."""
    raw, want = weights(t, 4, 512)
    np.testing.assert_allclose(H.dequantize(t, raw, 512), want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("t", QUANT_TYPES, ids=NAMES.get)
def test_decode_unit_is_the_lesson(t):
    """v1/v2's decoder: 32 integers and two affine maps per unit, a * q + b = the lesson's weights."""
    raw, want = weights(t, 4, 512, seed=1)
    np.testing.assert_allclose(H.dequantize(t, raw, 512, units=True), want, rtol=1e-6, atol=1e-8)


SHAPES = [(5, 256, 1), (3, 1024, 9), (2, 2048, 2), (70, 288, 66)]  # (rows, cols, tokens): 8-64 units, 1-66 tokens, ragged tiles


def bound(x, w):
    """What float32 rounding may cost a dot product: a few ulps of the sum of |x||w|."""
    return 1e-5 * (np.abs(x) @ np.abs(w).T) + 1e-6


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("t", ALL_TYPES, ids=NAMES.get)
@pytest.mark.parametrize("version", ["matvec_v0", "matvec_v1", "matmul_v0", "matmul_v1", "matmul_v2"])
def test_float_products(version, t, shape):
    """v0 (a thread's loop over the row), v1 (32 lanes' strided shares, summed), v2 (64 x 64 tiles, threads phase by
    phase): x @ W^T of the lesson's weights."""
    n_rows, n_cols, n_tok = shape
    if n_cols % (256 if t >= 10 else 32):
        pytest.skip("k-quant rows are whole super-blocks of 256")
    raw, w = weights(t, n_rows, n_cols, seed=n_cols)
    x = np.random.default_rng(2).standard_normal((n_tok, n_cols)).astype(np.float32)
    want = x.astype(np.float64) @ w.T.astype(np.float64)
    got = H.product(version, t, raw, x)
    assert got.shape == (n_tok, n_rows)
    assert np.all(np.abs(got - want) <= bound(x, w))


def q8_activations(x):
    """x rounded as quantize_unit_q8 rounds it: per 32, scale amax/127 (float32), round(x * (1/scale)) half away."""
    u = x.reshape(x.shape[0], -1, 32)
    d = (np.abs(u).max(-1, keepdims=True) / np.float32(127)).astype(np.float32)  # [n, units, 1]
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d > 0)
    q = round_half_away((u * inv).astype(np.float32))
    return (q * d).reshape(x.shape).astype(np.float64)


@pytest.mark.parametrize("shape", SHAPES[:1] + SHAPES[2:3], ids=str)
@pytest.mark.parametrize("t", ALL_TYPES, ids=NAMES.get)
def test_int8_product(t, shape):
    """v2: int8 activations and dp4a. Its integer sums are exact, so against x rounded the same way the product
    is float32-close; against the float x it is int8-close (llama.cpp's and the CPU int8 versions' error)."""
    n_rows, n_cols, n_tok = shape
    raw, w = weights(t, n_rows, n_cols, seed=n_cols + 1)
    x = np.random.default_rng(3).standard_normal((n_tok, n_cols)).astype(np.float32)
    got = H.product("matvec_v2", t, raw, x)
    xr = x.astype(np.float64) if t in (0, 1) else q8_activations(x)  # float weights: v2 runs v1 on float x
    assert np.all(np.abs(got - xr @ w.T) <= bound(x, w))
    exact = x.astype(np.float64) @ w.T
    assert np.abs(got - exact).max() <= 0.02 * np.abs(exact).max()


def test_bad_shapes_are_refused():
    raw, _ = weights(2, 2, 64)
    with pytest.raises(ValueError, match="bytes"):
        H.product("matvec_v0", 2, raw, np.zeros((1, 96), np.float32))
    with pytest.raises(ValueError, match="version"):
        H.product("matvec_v9", 2, raw, np.zeros((1, 64), np.float32))


def test_add_rmsnorm_is_the_lesson():
    """rmsnorm v2's row: the residual add, then the lesson's norm of the sum."""
    rng = np.random.default_rng(9)
    x, y, w = (rng.standard_normal(s).astype(np.float32) for s in ((2, 576), (2, 576), 576))
    total, out = H.add_rmsnorm(x, y, w, 1e-5)
    np.testing.assert_array_equal(total, x + y)
    np.testing.assert_allclose(out, rmsnorm(x + y, w, 1e-5), rtol=1e-6, atol=1e-6)


def test_rmsnorm_is_the_lesson():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 576)).astype(np.float32) * 3, rng.standard_normal(576).astype(np.float32)
    np.testing.assert_allclose(H.rmsnorm(x, w, 1e-5), rmsnorm(x, w, 1e-5), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("neox", [False, True], ids=["normal", "neox"])
@pytest.mark.parametrize("n_rot", [64, 32], ids=["full", "partial"])
def test_rope_is_the_lesson(neox, n_rot):
    """Both pair layouts, all channels or the first n_rot, at positions pos..pos+n-1 (far ones too)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 64)).astype(np.float32)  # [n, n_head, head_dim]
    pos = 5000
    cos, sin = rope_angles(np.arange(pos, pos + 4), n_rot, 10000.0)
    np.testing.assert_allclose(H.rope(x, pos, n_rot, 10000.0, neox), apply_rope(x, cos, sin, neox=neox), rtol=1e-5, atol=1e-6)


def test_swiglu_is_the_lesson():
    rng = np.random.default_rng(6)
    g, u = (rng.standard_normal(1000).astype(np.float32) * 8 for _ in range(2))
    np.testing.assert_allclose(H.swiglu(g, u), swiglu(g, u), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("t", [0, 1, 3, 12], ids=NAMES.get)
def test_embed_is_the_lesson(t):
    raw, w = weights(t, 40, 256)
    tokens = np.array([7, 0, 39, 7], np.int32)
    np.testing.assert_allclose(H.embed(t, raw, 256, tokens), w[tokens], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n_tok, pos", [(1, 17), (5, 0), (4, 9)])
def test_attention_is_the_lesson(n_tok, pos):
    """Grouped queries (6 heads on 2 KV heads) over a float16 cache with room for more positions than are filled:
    the junk past pos + n must never be read (causality) and each query head must find its KV head."""
    rng = np.random.default_rng(7)
    n_head, n_kv, hd, n_ctx = 6, 2, 32, 40
    q = rng.standard_normal((n_tok, n_head, hd)).astype(np.float32)
    k = rng.standard_normal((n_kv, n_ctx, hd)).astype(np.float16)
    v = rng.standard_normal((n_kv, n_ctx, hd)).astype(np.float16)
    k[:, pos + n_tok:], v[:, pos + n_tok:] = 1e4, np.nan  # never read
    want = attention(q, k[:, :pos + n_tok], v[:, :pos + n_tok], pos)
    np.testing.assert_allclose(H.attention(q, k.view(np.uint16), v.view(np.uint16), pos), want, rtol=1e-5, atol=1e-6)
