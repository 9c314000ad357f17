"""Lesson 14: quantized dot products, against gguf-py (llama.cpp's Python port) and llama.cpp's logits."""
from __future__ import annotations

import json
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as Q  # noqa: E402

from lessons import l14_quant_dot as L  # noqa: E402
from lessons.l01_gguf import GGMLType as T  # noqa: E402

LEGACY = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]


def random_weights(rng, m, k, wtype):
    w = (rng.standard_normal((m, k)) * 0.1).astype(np.float32)
    return gguf.quants.quantize(w, Q(int(wtype)))


def random_q4_K(rng, m, k):
    """Random Q4_K blocks (gguf-py cannot quantize k-quants, but it can dequantize them)."""
    raw = rng.integers(0, 256, (m, k // 256, 144), dtype=np.uint8)
    raw[..., 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
    raw[..., 2:4] = np.frombuffer(np.float16(0.004).tobytes(), np.uint8)
    return raw.reshape(m, -1)


@pytest.mark.parametrize("wtype", LEGACY)
def test_unpacked_integers_times_scales_are_the_weights(wtype):
    raw = random_weights(np.random.default_rng(1), 8, 128, wtype)
    d, m, q = L.unpack_legacy(raw, wtype)
    ours = (d[..., None] * q + (0 if m is None else m[..., None])).reshape(8, 128)
    np.testing.assert_array_equal(ours, gguf.quants.dequantize(raw, Q(int(wtype))))


def test_q4_K_unpacking_matches_gguf_py():
    raw = random_q4_K(np.random.default_rng(2), 4, 512)
    d, dmin, sc, mn, q = L.unpack_q4_K(raw)
    ours = d[..., None, None] * sc[..., None] * q.reshape(4, 2, 8, 32) - dmin[..., None, None] * mn[..., None]
    np.testing.assert_allclose(ours.reshape(4, 512), gguf.quants.dequantize(raw, Q.Q4_K), rtol=1e-6, atol=1e-7)


def test_q8_0_activations_match_gguf_py():
    x = np.random.default_rng(3).standard_normal((6, 256)).astype(np.float32)
    d, p = L.quantize_q8_0(x)
    oracle = gguf.quants.dequantize(gguf.quants.quantize(x, Q.Q8_0), Q.Q8_0)
    np.testing.assert_array_equal((d[..., None] * p).reshape(6, 256), oracle)


def test_q8_1_sum_and_q8_K_bsums():
    x = np.random.default_rng(4).standard_normal((3, 512)).astype(np.float32)
    d, s, p = L.quantize_q8_1(x)
    assert np.abs(p).max() == 127
    np.testing.assert_allclose(s, d * p.sum(-1), rtol=2e-3)  # s is d * sum(p), stored as fp16
    dk, pk, bsums = L.quantize_q8_K(x)
    np.testing.assert_array_equal(bsums, pk.reshape(3, 2, 16, 16).sum(-1))
    np.testing.assert_allclose(dk[..., None] * pk, x.reshape(3, 2, 256), atol=np.abs(x).max() / 254 + 1e-7)


def test_worked_example_from_the_docstring():
    # One Q4_1 block: d=0.5, m=-1, q=[0,3,15,2,0,...]; activations [0.2,-0.4,1.27,0.1,0,...].
    q = np.zeros(32, np.uint8)
    q[:4] = [0, 3, 15, 2]
    block = (np.frombuffer(np.float16(0.5).tobytes() + np.float16(-1).tobytes(), np.uint8).tolist()
             + list((q[:16] | (q[16:] << 4)).astype(np.uint8)))
    raw = np.array([block], np.uint8)
    x = np.zeros((1, 32), np.float32)
    x[0, :4] = [0.2, -0.4, 1.27, 0.1]
    w = gguf.quants.dequantize(raw, Q.Q4_1)  # oracle: [-1, 0.5, 6.5, 0, -1, -1, ...]
    got = L.matmul_quantized(x, raw, T.Q4_1)[0, 0]
    assert got == pytest.approx(float(x[0] @ w[0]), rel=1e-3)
    assert got == pytest.approx(7.855, rel=1e-3)


@pytest.mark.parametrize("wtype", LEGACY + [T.Q4_K])
def test_integer_dot_equals_float_dot_of_the_dequantized_operands(wtype):
    """The integer path is exact algebra: the same number as dequantizing both sides and
    multiplying in float (up to the fp16 rounding of Q8_1's s), and close to the f32 product."""
    rng = np.random.default_rng(5)
    raw = random_q4_K(rng, 40, 512) if wtype == T.Q4_K else random_weights(rng, 40, 512, wtype)
    w = gguf.quants.dequantize(raw, Q(int(wtype))).reshape(40, 512)
    x = rng.standard_normal((20, 512)).astype(np.float32)
    got = L.matmul_quantized(x, raw, wtype, rows_per_step=7)
    act = L.VEC_DOT_TYPE[wtype]
    if act == T.Q8_K:
        d, p, _ = L.quantize_q8_K(x)
        x_hat = (d[..., None] * p).reshape(20, 512)
    else:
        d, p = L.quantize_q8_0(x)
        x_hat = (d[..., None] * p).reshape(20, 512)
    exact = x_hat.astype(np.float64) @ w.T.astype(np.float64)
    scale = np.abs(exact).max()
    tol = 2e-3 if act == T.Q8_1 else 1e-5  # Q8_1: s = d*sum(p) is rounded to fp16
    assert np.abs(got - exact).max() <= tol * scale
    rel = np.linalg.norm(got - x @ w.T) / np.linalg.norm(x @ w.T)
    assert 1e-4 < rel < 0.02  # 8-bit activations cost something, but not much


# ---- the model: with Q8 activations the numpy model moves from llama.cpp's F32 run toward its Q4_1 run ----
def kl(p_logits, q_logits):
    lp = p_logits - np.logaddexp.reduce(p_logits.astype(np.float64), axis=-1, keepdims=True)
    lq = q_logits - np.logaddexp.reduce(q_logits.astype(np.float64), axis=-1, keepdims=True)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def run_prompts(model, prompts):
    out = []
    for ids in prompts:
        model.reset()
        out.append(model.forward(ids, 0))
    return out


@pytest.fixture(scope="module")
def reference(reference_dir):
    return (np.load(reference_dir / "smollm2_logits.npz"),
            json.loads((reference_dir / "smollm2_generation.json").read_text()))


def test_quantized_activations_on_the_default_model(reference, default_model, default_numpy_model):
    """Float activations reproduce llama.cpp's F32 run; 8-bit ones move the logits the way and by
    about as much as llama.cpp's Q4_1 run (same weights, only the products differ)."""
    logits, gen = reference
    prompt = next(k for k in gen if not k.startswith("_"))
    ids = np.array(gen[prompt]["prompt_ids"], np.int32)
    quantized = L.with_quantized_activations(default_numpy_model, default_model)
    yf, yq = run_prompts(default_numpy_model, [ids])[0], run_prompts(quantized, [ids])[0]
    f32_ref, q4_ref = logits["f32_p0_logits"], logits["q4_1_p0_logits"]
    kl_plain = kl(f32_ref, yf).mean()  # same math as llama.cpp's F32 run
    kl_quant = kl(f32_ref, yq).mean()  # the cost of 8-bit activations
    kl_lcpp = kl(f32_ref, q4_ref).mean()
    assert kl_plain < 1e-5
    assert 1e-4 < kl_quant and kl_lcpp / 4 < kl_quant < kl_lcpp * 4
    corr = np.corrcoef((yq - yf).ravel(), (q4_ref - f32_ref).ravel())[0, 1]
    assert corr > 0.5
    # the copy has its own cache and weights: the float model is unchanged
    np.testing.assert_array_equal(run_prompts(default_numpy_model, [ids])[0], yf)


# ---- the C++ twin: its int8 kernels must compute lesson 14's numbers ----
INT8_KERNELS = ("v2_int8", "v3_avx2", "v4_avx512vnni", "v5_pairs")  # cpp_core's versions that quantize x


@pytest.mark.parametrize("wtype", LEGACY + [T.Q4_K])
def test_cpp_int8_kernels_agree_with_the_lesson(wtype):
    kernels = pytest.importorskip("cpp_core.kernels")
    from lessons.l12_quants import quantize
    versions = [v for v in kernels.available_versions().get("quant_matmul", []) if v in INT8_KERNELS]
    assert versions, "no int8 quant_matmul version in cpp_core"
    rng = np.random.default_rng(6)
    raw = quantize((rng.standard_normal((48, 512)) * 0.1).astype(np.float32), wtype)
    x = rng.standard_normal((5, 512)).astype(np.float32)
    ours = L.matmul_quantized(x, raw, wtype)
    for version in versions:
        theirs = kernels.quant_matmul(raw, int(wtype), x, version=version)
        assert np.abs(theirs - ours).max() <= 2e-6 * np.abs(ours).max(), version


def test_q4_block_without_the_mask_is_the_plain_dot():
    """v13's identity, b_j p_j + hi_j (p_(j+16) - 16 p_j) = lo_j p_j + hi_j p_(j+16), on the comment's example
    and on random blocks with activations at the +-1927 extremes, where the offset must still fit int16."""
    qs = np.zeros(16, np.uint8)
    qs[0] = 0x3A  # lo 10, hi 3
    p = np.zeros(32, np.int64)
    p[0], p[16] = 5, -2
    assert L.dot_q4_block_unmasked(qs, p) == 44 == 10 * 5 + 3 * (-2)
    rng = np.random.default_rng(0)
    for trial in range(200):
        qs = rng.integers(0, 256, 16).astype(np.uint8)
        p = rng.integers(-L.I12_STEPS, L.I12_STEPS + 1, 32)
        if trial < 4:  # the corners: all +-1927
            p = np.where(np.arange(32) < 16, 1, -1) * L.I12_STEPS * (1 if trial % 2 else -1)
        q = np.concatenate([qs & 0xF, qs >> 4]).astype(np.int64)  # elements 0..31
        assert L.dot_q4_block_unmasked(qs, p) == int(q @ p)
    _d, p12, _s = L.quantize_i16(np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32), L.I12_STEPS)
    assert np.abs(p12).max() == L.I12_STEPS  # each block's largest value takes the last step
