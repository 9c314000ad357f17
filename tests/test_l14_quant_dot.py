"""Lesson 14: quantized dot products, against gguf-py (llama.cpp's Python port) and llama.cpp's logits."""
from __future__ import annotations

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
def run_prompts(model, prompts):
    out = []
    for ids in prompts:
        model.reset()
        out.append(model.forward(ids, 0))
    return out


def test_quantized_activations_on_the_default_model(generation, llama_cpp_logits, default_model, default_numpy_model):
    """Float activations reproduce llama.cpp's F32 run; 8-bit ones move the logits the way and by
    about as much as llama.cpp's Q4_1 run (same weights, only the products differ). The committed
    fixture keeps llama.cpp's logits at the F32 run's 4096 likeliest tokens per position (and its whole
    last row): KLs count the rest as one bucket before the last position (conftest.LlamaCppLogits), and
    the correlation is taken over those 4096 tokens (97.7-99.95% of the probability) at every position."""
    ref = llama_cpp_logits
    prompt = next(k for k in generation if not k.startswith("_"))
    ids = np.array(generation[prompt]["prompt_ids"], np.int32)
    quantized = L.with_quantized_activations(default_numpy_model, default_model)
    yf, yq = run_prompts(default_numpy_model, [ids])[0], run_prompts(quantized, [ids])[0]
    kl_plain = ref.kl("f32", 0, yf).mean()  # same math as llama.cpp's F32 run
    kl_quant = ref.kl("f32", 0, yq).mean()  # the cost of 8-bit activations
    kl_lcpp = ref.kl_f32_q4_1(0).mean()
    assert kl_plain < 1e-5
    assert 1e-4 < kl_quant and kl_lcpp / 4 < kl_quant < kl_lcpp * 4
    top = ref.ids(0)                                                                    # [n, K]
    ours_shift = np.take_along_axis(yq - yf, top, -1)                                   # [n, K]
    lcpp_shift = ref.logits("q4_1", 0) - ref.logits("f32", 0)                           # [n, K]
    corr = np.corrcoef(ours_shift.ravel(), lcpp_shift.ravel())[0, 1]
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
