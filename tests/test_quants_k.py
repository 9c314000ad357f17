"""Lesson 13: k-quants. Oracle: llama.cpp's quantizer (ggml_quantize_chunk without an importance
matrix), frozen in tests/fixtures/quant_llamacpp.npz by tools/make_quant_fixtures.py."""

import numpy as np
import pytest

from lessons import l13_kquants as k
from lessons.l12_quants import GGML_TYPES, dequantize, quantize
from lessons.l13b_kquant_search import nearest_int, seq_sum

KQUANTS = {10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K"}
N_MODEL_ROWS = 28  # the fixture's first rows come from the default model, the rest are synthetic


@pytest.fixture(scope="module")
def fx(quant_fixture):
    """llama.cpp's blocks and source rows (tools/make_quant_fixtures.py), loaded once in conftest."""
    return quant_fixture


@pytest.fixture(scope="module")
def ours(fx):
    return {t: quantize(fx["src"], t) for t in [*KQUANTS, 15]}


@pytest.mark.parametrize("t", list(KQUANTS) + [15], ids=lambda t: GGML_TYPES[t][0])
def test_blocks_bit_exact_with_llamacpp(fx, ours, t):
    size = GGML_TYPES[t][2]
    a, b = ours[t].reshape(-1, size), fx[f"blocks_{t}"].reshape(-1, size)
    differ = np.flatnonzero((a != b).any(axis=1))
    assert len(differ) == 0, f"{len(differ)} of {len(a)} super-blocks differ from llama.cpp's, first {differ[:5]}"


@pytest.mark.parametrize("rows", ["model", "synthetic"])
@pytest.mark.parametrize("t", list(KQUANTS), ids=lambda t: KQUANTS[t])
def test_error_not_larger_than_llamacpp(fx, ours, t, rows):
    sel = slice(0, N_MODEL_ROWS) if rows == "model" else slice(N_MODEL_ROWS, None)
    src = fx["src"][sel].astype(np.float64)
    err_ours = ((dequantize(ours[t][sel], t, src.shape) - src) ** 2).sum()
    err_ref = ((dequantize(fx[f"blocks_{t}"][sel], t, src.shape) - src) ** 2).sum()
    assert err_ours <= err_ref
    assert err_ours < 0.5 * (src ** 2).sum()  # and it is a real approximation


def test_error_shrinks_with_bits(fx, ours):
    src = fx["src"][:N_MODEL_ROWS]
    errs = [((dequantize(ours[t][:N_MODEL_ROWS], t, src.shape) - src) ** 2).sum() for t in (10, 11, 12, 13, 14)]
    assert errs == sorted(errs, reverse=True)


def test_nearest_int_is_round_half_even():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.uniform(-100, 100, 1000), np.arange(-20, 20) + 0.5]).astype(np.float32)
    np.testing.assert_array_equal(nearest_int(v), np.rint(v))


def test_seq_sum_adds_in_order_like_c():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((32, 50)) * np.exp(rng.standard_normal((32, 50)) * 4)).astype(np.float32)
    for g in range(a.shape[1]):
        s = np.float32(0)
        for v in a[:, g]:
            s = np.float32(s + v)
        assert seq_sum(a)[g] == s


@pytest.mark.parametrize("name,nbits,unpack,pack", [
    ("2bit", 2, k.unpack_2bit, k.pack_2bit), ("4bit", 4, k.unpack_4bit, k.pack_4bit),
    ("1bit", 1, k.unpack_1bit, k.pack_1bit), ("q6", 6, lambda p: k.unpack_q6(*p), k.pack_q6)])
def test_bit_planes_roundtrip(name, nbits, unpack, pack):
    q = np.random.default_rng(nbits).integers(0, 1 << nbits, (3, 256), dtype=np.uint8)
    np.testing.assert_array_equal(unpack(pack(q)), q)


def test_scale_packing_roundtrip():
    rng = np.random.default_rng(2)
    sc, m = rng.integers(0, 64, (2, 5, 8), dtype=np.uint8)
    got_sc, got_m = k.unpack_scale_min_k4(k.pack_scale_min_k4(sc, m))
    np.testing.assert_array_equal(got_sc, sc)
    np.testing.assert_array_equal(got_m, m)
    codes = rng.integers(0, 64, (5, 16), dtype=np.uint8)
    np.testing.assert_array_equal(k.unpack_scales_q3(k.pack_scales_q3(codes)), codes.astype(np.int16) - 32)


def test_q8_k_bsums_are_sums_of_16(fx, ours):
    b = ours[15].reshape(-1).view(k.BLOCK_Q8_K)
    np.testing.assert_array_equal(b["bsums"], b["qs"].reshape(-1, 16, 16).sum(axis=2))


@pytest.mark.parametrize("t", list(KQUANTS), ids=lambda t: KQUANTS[t])
def test_special_blocks(t):
    x = np.zeros((3, 256), np.float32)       # all zeros, a constant, one spike
    x[1] = 0.5
    x[2, 77] = -4.0
    y = dequantize(quantize(x, t), t, x.shape)
    np.testing.assert_array_equal(y[0], 0.0)
    assert np.abs(y[1] - 0.5).max() < 0.05 and abs(y[2, 77] + 4.0) < 0.05 and np.abs(np.delete(y[2], 77)).max() < 0.05
