"""quant_matmul: every version x every weight type x odd shapes, against numpy's dequantize-then-matmul.

Oracles: lessons.l12_quants.dequantize (itself checked against gguf-py) for the weights, and for the int8
versions a numpy emulation of the 8-bit activations they use (Q8_0/Q8_1 as lessons.l12b quantizes them,
Q8_K as llama.cpp does), so the comparison is tight: a wrong nibble, scale or sub-block shows up as an
error hundreds of times the tolerance. Which rounding of x each version uses, per weight type and token
count, is written below (ROUNDING), from the ladder as docs/20-kernels-matmul.md teaches it: the tests
never ask the kernels what they do.
"""
from __future__ import annotations

import numpy as np
import pytest

from lessons import l12b_legacy_quants as legacy
from lessons.l12_quants import dequantize

K = pytest.importorskip("cpp_core.kernels", reason="the C++ core is not built (pip install -e .)")

TYPES = {"f32": 0, "f16": 1, "bf16": 30, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8,
         "q2_k": 10, "q3_k": 11, "q4_k": 12, "q5_k": 13, "q6_k": 14}
BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
         10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}
# byte offsets of each block's fp16 scales: random bytes there could be inf/nan, so they get sane values
F16_FIELDS = {2: [(0, 0.02)], 3: [(0, 0.02), (2, 0.5)], 6: [(0, 0.02)], 7: [(0, 0.02), (2, 0.5)], 8: [(0, 0.02)],
              10: [(80, 0.02), (82, 0.02)], 11: [(108, 0.02)], 12: [(0, 0.02), (2, 0.02)], 13: [(0, 0.02), (2, 0.02)],
              14: [(208, 0.02)]}
ACT = {2: "q8_0", 6: "q8_0", 8: "q8_0", 3: "q8_1", 7: "q8_1", 10: "q8_k", 11: "q8_k", 12: "q8_k", 13: "q8_k", 14: "q8_k"}


def versions() -> list:
    out = []
    for name, _, ok in K._core.list_versions("quant_matmul"):
        marks = [] if ok else [pytest.mark.skip(reason=f"quant_matmul {name} needs CPU features this machine lacks")]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


# ---- how each version rounds x, by weight type and token count (the ladder, written out) ----
FLOATS = {0, 1, 30}  # F32, F16, BF16: x stays float32 in every version
Q4Q8 = {2, 3, 8}  # Q4_0, Q4_1, Q8_0: the types every fast kernel has
INT8 = {"v2_int8", "v3_avx2", "v4_avx512vnni", "v5_pairs", "v3_neon_int8", "v4_neon_dotprod"}  # llama.cpp's way
F32_TYPES = {  # float32 versions: the types their own kernel takes (others go to the int8 version below them)
    "v0_scalar_dequant": set(TYPES.values()), "v1_threads": set(TYPES.values()),
    "v6_f32_tiled_avx2": Q4Q8 | FLOATS, "v6_f32_tiled_neon": Q4Q8 | FLOATS,
    "v6_f32_tiled_avx512": Q4Q8 | FLOATS | {12, 14},  # + Q4_K, Q6_K
}
for _v in ("v7_rows4", "v8_rows4_lut", "v9_prefetch"):  # decoding four rows at a time; the rest runs v6
    F32_TYPES[_v] = F32_TYPES["v6_f32_tiled_avx512"]
GEMM = {"v10_gemm_avx512": "v9_prefetch", "v10_gemm_avx2": "v6_f32_tiled_avx2"}  # prompts: float32 for every type
I16 = {"v11_i16_decode_avx512": "v10_gemm_avx512", "v12_i16_row_pairs": "v10_gemm_avx512",
       "v11_i16_decode_avx2": "v10_gemm_avx2",  # one token of Q4_0/Q4_1/Q8_0: x rounded to 16 bits
       "v13_i16_q5_avx512": "v10_gemm_avx512", "v13_i16_q5_avx2": "v10_gemm_avx2",  # v13: + Q5_0, Q5_1
       "v14_i16_q4_k_avx512": "v10_gemm_avx512", "v14_i16_q4_k_avx2": "v10_gemm_avx2",  # v14: + Q4_K
       "v15_i16_q6_k_avx512": "v10_gemm_avx512", "v15_i16_q6_k_avx2": "v10_gemm_avx2",  # v15: + Q6_K
       "v16_i16_q5_k_avx512": "v10_gemm_avx512", "v16_i16_q5_k_avx2": "v10_gemm_avx2",  # v16: + Q5_K
       "v17_i16_q3_k_avx512": "v10_gemm_avx512", "v17_i16_q3_k_avx2": "v10_gemm_avx2",  # v17: + Q3_K
       "v18_i16_q2_k_avx512": "v10_gemm_avx512", "v18_i16_q2_k_avx2": "v10_gemm_avx2",  # v18: + Q2_K
       # aarch64 (native builds; under qemu: tests/test_neon_qemu.py): the same steps with NEON, prompts on v6
       **{v: "v6_f32_tiled_neon" for v in ["v11_i16_decode_neon", "v13_i16_q5_neon", "v14_i16_q4_k_neon", "v15_i16_q6_k_neon",
                                           "v16_i16_q5_k_neon", "v17_i16_q3_k_neon", "v18_i16_q2_k_neon"]}}
ADDS = {"v13": {6, 7}, "v14": {12}, "v15": {14}, "v16": {13}, "v17": {11}, "v18": {10}}  # each step's new types
I16_TYPES = {v: Q4Q8.union(*(t for step, t in ADDS.items() if int(v[1:3]) >= int(step[1:]))) for v in I16}  # each one's
I16_CASES = [(v, name) for v in versions() if v.id in I16 for name, t in TYPES.items() if t in I16_TYPES[v.id]]
# v19: prompts through the 16-bit path (an integer GEMM), every quant type; shorter ones: v18. From 8 tokens
# where v18 keeps x in float32 for short products (v9's types: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K), else from 3.
I16_GEMM = {"v19_i16_gemm_avx512": "v18_i16_q2_k_avx512"}
I16_GEMM_MIN_TOKENS = {2: 8, 3: 8, 8: 8, 12: 8, 14: 8, 6: 3, 7: 3, 10: 3, 11: 3, 13: 3}  # by weight type


def rounding(version: str, t: int, n_tok: int) -> str:
    """What a version does to x for weight type t and n_tok tokens: "f32" (as it is), "int8" or "i16"."""
    if t in FLOATS:
        return "f32"
    if version in INT8:
        return "int8"
    if version in I16_GEMM:
        return "i16" if n_tok >= I16_GEMM_MIN_TOKENS[t] else rounding(I16_GEMM[version], t, n_tok)
    if version in I16:
        return "i16" if n_tok == 1 and t in I16_TYPES[version] else rounding(I16[version], t, n_tok)
    if version in GEMM:  # the GEMM from 3 tokens, or from 12 where the shorter path keeps x in float32 anyway
        return "f32" if n_tok >= 3 else rounding(GEMM[version], t, n_tok)
    return "f32" if t in F32_TYPES[version] else "int8"


TOLERANCE = {"f32": 2e-6, "int8": 1e-5, "i16": 2e-6}  # of sum |x w|: float32 sums; int8: only the scales round


def random_weights(t: int, n_rows: int, n_cols: int, seed: int) -> np.ndarray:
    """Raw rows of type t: random bits everywhere (every code pattern), sane values in the fp16 scales."""
    rng = np.random.default_rng(seed)
    if t == 0:
        return rng.standard_normal((n_rows, n_cols)).astype(np.float32)
    if t == 1:
        return rng.standard_normal((n_rows, n_cols)).astype(np.float16)
    if t == 30:
        return (rng.standard_normal((n_rows, n_cols)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    block, nbytes = BLOCK[t]
    raw = rng.integers(0, 256, size=(n_rows, n_cols // block, nbytes), dtype=np.uint8)
    for off, scale in F16_FIELDS[t]:
        vals = rng.uniform(-scale, scale, size=raw.shape[:2]).astype(np.float16)
        if t in (10, 12, 13):  # k-quant d and dmin are non-negative in real files (mins are subtracted)
            vals = np.abs(vals)
        raw[..., off:off + 2] = vals.view(np.uint8).reshape(raw.shape[:2] + (2,))
    return raw.reshape(n_rows, -1)


def float_weights(W: np.ndarray, t: int) -> np.ndarray:
    n_cols = K.n_cols_of(W, t)
    return dequantize(W, t, (W.shape[0], n_cols)).astype(np.float64)


def emulate_activations(x: np.ndarray, fmt: str) -> np.ndarray:
    """x as the int8 versions see it: quantized to fmt and back, in float64."""
    if fmt == "q8_0":
        blocks = legacy.quantize_q8_0(x.reshape(-1, 32).astype(np.float32))
        return legacy.dequantize_q8_0(blocks).reshape(x.shape).astype(np.float64)
    if fmt == "q8_1":
        blocks = legacy.quantize_q8_1(x.reshape(-1, 32).astype(np.float32))
        return legacy.dequantize_q8_1(blocks).reshape(x.shape).astype(np.float64)
    # Q8_K (llama.cpp's quantize_row_q8_K): the largest-magnitude value maps to -127, d stays float32
    b = x.reshape(-1, 256).astype(np.float32)
    mx = np.take_along_axis(b, np.abs(b).argmax(-1)[:, None], -1)
    iscale = np.where(mx != 0, np.float32(-127) / np.where(mx != 0, mx, 1), 0).astype(np.float32)
    q = np.minimum(127, np.rint(iscale * b))
    d = np.where(iscale != 0, np.float32(1) / np.where(iscale != 0, iscale, 1), 0).astype(np.float32)
    return (q * d).reshape(x.shape).astype(np.float64)


def quantize_i16(x: np.ndarray):
    """The rounding v11/v12 promise (docs/20-kernels-matmul.md), in float32 as they do it: per block of 32,
    d = max|x| / 32767 and p = round-half-even(x * (32767 / max|x|)). -> d [..., nb], p [..., nb, 32], sum(p)."""
    b = np.asarray(x, np.float32).reshape(*x.shape[:-1], -1, 32)  # [..., nb, 32]
    top = np.abs(b).max(-1)  # [..., nb]
    inv = np.divide(np.float32(32767), top, out=np.zeros_like(top), where=top > 0)  # 0 for an all-zero block
    p = np.rint(b * inv[..., None]).astype(np.int16)  # [..., nb, 32]
    return top / np.float32(32767), p, p.sum(-1, dtype=np.int64)


def emulate_i16(x: np.ndarray) -> np.ndarray:
    """x as the 16-bit decoding kernels see it (quantize_i16 and back), in float64."""
    d, p, _ = quantize_i16(x)
    return (d[..., None].astype(np.float64) * p).reshape(x.shape)


def emulate_x(x, version, t, n_tok):
    """x as the version sees it for type t: rounded to 8 bits, to 16 bits, or float32 as it is."""
    r = rounding(version, t, n_tok)
    return emulate_activations(x, ACT[t]) if r == "int8" else emulate_i16(x) if r == "i16" else x.astype(np.float64)


def q8_1_offset_rounding(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Q4_1/Q5_1 x Q8_1 use the activation's stored s = fp16(d * sum(q)) for the weight offset m: the
    difference from the exact m * sum(x_quantized), per [token, row]."""
    n_tok, n_cols = x.shape
    blocks = legacy.quantize_q8_1(x.reshape(-1, 32).astype(np.float32)).reshape(n_tok, n_cols // 32, 36)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float64)
    s16 = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
    exact = d * blocks[..., 4:].view(np.int8).sum(-1)  # [n_tok, n_blocks]
    m = W.reshape(W.shape[0], n_cols // 32, -1)[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
    return (s16 - exact) @ m.T  # [n_tok, n_blocks] @ [n_blocks, n_rows]


SHAPES = [(1, 1), (5, 1), (37, 3), (16, 2)]  # (n_rows, n_col_blocks): 1 row, 1 block, odd counts


@pytest.mark.parametrize("version", versions())
@pytest.mark.parametrize("type_name", list(TYPES))
@pytest.mark.parametrize("n_tok", [1, 2, 3, 6, 9])
def test_quant_matmul(version, type_name, n_tok):
    t = TYPES[type_name]
    block = BLOCK[t][0] if BLOCK[t][0] > 1 else 16
    for i, (n_rows, n_blocks) in enumerate(SHAPES):
        n_cols = block * n_blocks + (3 if block == 16 and i % 2 else 0)  # float types: not a multiple of 16 either
        W = random_weights(t, n_rows, n_cols, seed=100 * t + i)
        x = np.random.default_rng(i + n_tok).standard_normal((n_tok, n_cols)).astype(np.float32)
        Wf = float_weights(W, t)
        r = rounding(version, t, n_tok)
        xs = emulate_x(x, version, t, n_tok)  # x rounded as the version rounds it
        want = xs @ Wf.T  # [n_tok, n_cols] @ [n_cols, n_rows] -> [n_tok, n_rows]
        if r == "int8" and ACT[t] == "q8_1":
            want += q8_1_offset_rounding(W, x)
        scale = np.abs(xs) @ np.abs(Wf).T  # what rounding errors are relative to
        tol = TOLERANCE[r]
        got = K.quant_matmul(W, t, x, version=version, n_threads=2)
        assert got.shape == (n_tok, n_rows)
        err = np.abs(got - want)
        assert np.all(err <= tol * scale + 1e-6), f"{type_name} {version} {n_rows}x{n_cols}: max err/scale {np.max(err / (scale + 1e-30)):.2e}"


@pytest.mark.parametrize("version, type_name", [  # the (version, type) pairs that round 5 tokens to 8 bits
    pytest.param(v.values[0], name, marks=v.marks, id=f"{v.id}-{name}") for v in versions() if v.id != "v2_int8"
    for name, t in TYPES.items() if t in ACT and rounding(v.values[0], t, 5) == "int8"])
def test_simd_matches_scalar_int8(version, type_name):
    """The SIMD versions compute the same integer sums as v2_int8: they may differ only in float rounding."""
    t = TYPES[type_name]
    n_cols = BLOCK[t][0] * (8 if BLOCK[t][0] == 32 else 3)
    W = random_weights(t, 29, n_cols, seed=7)
    x = np.random.default_rng(3).standard_normal((5, n_cols)).astype(np.float32)
    ref = K.quant_matmul(W, t, x, version="v2_int8")
    got = K.quant_matmul(W, t, x, version=version)
    scale = np.abs(x) @ np.abs(float_weights(W, t)).T
    assert np.all(np.abs(got - ref) <= 1e-5 * scale)


def test_kernel_names_follow_versions():
    assert K.quant_matmul_kernel("v0_scalar_dequant", 3) == "q4_1 dequantize + f32 dot scalar"
    assert K.quant_matmul_kernel("v2_int8", 3) == "q4_1 x q8_1 scalar"
    assert K.quant_matmul_kernel("v2_int8", 14) == "q6_k x q8_k scalar"
    if K.cpu_features()["avx512vnni"]:
        assert K.quant_matmul_kernel("v10_gemm_avx512", 6, 3).startswith("q5_0 dequantized once per row x f32 gemm")
        assert K.quant_matmul_kernel("v10_gemm_avx512", 6, 2) == "q5_0 x q8_0 avx2"  # short: v9 -> v6 -> v4's int8
        assert K.quant_matmul_kernel("v10_gemm_avx512", 3, 1).endswith("prefetch 2 KB ahead")  # decoding: v9
        assert K.quant_matmul_kernel("v10_gemm_avx512", 3, 11).endswith("1-8 tokens per block")  # v9 -> v6 up to 11
        assert "gemm" in K.quant_matmul_kernel("v10_gemm_avx512", 3, 12)
    with pytest.raises(ValueError):
        K.quant_matmul_kernel("v9", 3)


@pytest.mark.parametrize("version", versions())
def test_routes_agree_with_the_ladder(version):
    """The C++ table's route (its own kernel or its fallback's) rounds x as ROUNDING, written here, says."""
    for type_name, t in TYPES.items():
        for n_tok in (1, 2, 3, 11, 12, 64):
            kernel, r = K.quant_matmul_kernel(version, t, n_tok), rounding(version, t, n_tok)
            assert (" x q8" in kernel) == (r == "int8") and (" x int16" in kernel) == (r == "i16"), \
                f"{version} {type_name} n_tok={n_tok}: runs '{kernel}', the ladder says {r}"


def test_version_numbers_are_in_order():
    """Each number one idea, in the table's order (ISA builds of one idea share a number)."""
    numbers = [int(name[1:].split("_")[0]) for name, _, _ in K._core.list_versions("quant_matmul")]
    assert numbers == sorted(numbers) and numbers[0] == 0, numbers


@pytest.mark.parametrize("type_name", list(TYPES))
def test_dequantize_matches_lesson(type_name):
    t = TYPES[type_name]
    W = random_weights(t, 7, BLOCK[t][0] * 2 if BLOCK[t][0] > 1 else 40, seed=t)
    np.testing.assert_array_equal(K.dequantize(W, t), float_weights(W, t).astype(np.float32))


@pytest.mark.parametrize("fmt", ["q8_0", "q8_1"])
def test_activation_quantizer_matches_lesson(fmt):
    x = (np.random.default_rng(0).standard_normal((4, 256)) * 3).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero block
    got = K.quantize_activations(x, fmt).reshape(-1, 34 if fmt == "q8_0" else 36)
    want = (legacy.quantize_q8_0 if fmt == "q8_0" else legacy.quantize_q8_1)(x.reshape(-1, 32))
    np.testing.assert_array_equal(got[:, :2], want[:, :2])  # d, as fp16
    q_got, q_want = got[:, -32:].view(np.int8).astype(int), want[:, -32:].view(np.int8).astype(int)
    assert np.abs(q_got - q_want).max() <= 1 and np.mean(q_got != q_want) < 0.01  # ties/ulps: round-half-even vs away


def test_q8k_quantizer_matches_llama_cpp_formula():
    x = (np.random.default_rng(1).standard_normal((2, 512)) * 2).astype(np.float32)
    raw = K.quantize_activations(x, "q8_k").reshape(-1, 292)
    d = raw[:, :4].copy().view(np.float32)[:, 0]
    q = raw[:, 4:260].view(np.int8).astype(np.float64)
    bsums = raw[:, 260:292].copy().view(np.int16)
    np.testing.assert_allclose(q * d[:, None], emulate_activations(x, "q8_k").reshape(-1, 256), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(bsums, q.reshape(-1, 16, 16).sum(-1))


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_threads_give_identical_results(n_threads):
    W = random_weights(3, 301, 576, seed=1)
    x = np.random.default_rng(0).standard_normal((4, 576)).astype(np.float32)
    ref = K.quant_matmul(W, 3, x, n_threads=1)
    np.testing.assert_array_equal(K.quant_matmul(W, 3, x, n_threads=n_threads), ref)


def test_vector_x_and_empty_rows():
    W = random_weights(8, 3, 64, seed=0)
    x = np.ones(64, np.float32)
    y = K.quant_matmul(W, 8, x)
    assert y.shape == (3,)
    np.testing.assert_allclose(y, K.quant_matmul(W, 8, x[None])[0])
    assert K.quant_matmul(W[:0], 8, x[None]).shape == (1, 0)


@pytest.mark.parametrize("bad", ["type", "cols", "x", "kquant_cols"])
def test_bad_input_raises_value_error(bad):
    W = random_weights(3, 4, 64, seed=0)
    x = np.ones((2, 64), np.float32)
    with pytest.raises(ValueError):
        if bad == "type":
            K.quant_matmul(W, 99, x)
        elif bad == "cols":
            K.quant_matmul(W[:, :30], 3, x)  # 30 bytes: not a whole number of 20-byte blocks
        elif bad == "x":
            K.quant_matmul(W, 3, np.ones((2, 65), np.float32))
        else:
            K._core.quant_matmul(W, 12, 4, 64, x, "", K.thread_pool(1))  # k-quants need 256 columns


def test_thread_pool_survives_many_small_jobs():
    """Hundreds of back-to-back jobs (with workers spinning, sleeping and waking late) give the one-thread result."""
    W = random_weights(3, 40, 64, seed=2)
    x = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)
    ref = K.quant_matmul(W, 3, x, n_threads=1)
    for i in range(300):
        np.testing.assert_array_equal(K.quant_matmul(W, 3, x, n_threads=2 + i % 3), ref)


@pytest.mark.parametrize("version", [v for v in versions() if not v.id.startswith(("v0", "v1"))])
@pytest.mark.parametrize("type_name", ["q4_0", "q4_1", "q8_0", "q5_0", "q5_1"])
@pytest.mark.parametrize("n_blocks", [17, 48])
@pytest.mark.parametrize("n_tok", [1, 2, 10])
@pytest.mark.parametrize("n_rows", [19, 29])
def test_rows_longer_than_16_blocks(version, type_name, n_blocks, n_tok, n_rows):
    """v5-v12 fetch scales 16 blocks at a time: rows of 576 (18 blocks) and 1536 (48) span several groups
    (v7-v9 take 1-2 tokens, v11-v12 one token, four rows at a time: 19 rows = 4 groups of 4 and 3 single rows;
    v12 reads the scales of its rows as one run of blocks, a 128-byte window at a time, so windows straddle rows;
    29 rows: 7 groups of 4 and one single row, whose run of blocks ends in a part-filled window)."""
    t = TYPES[type_name]
    W = random_weights(t, n_rows, 32 * n_blocks, seed=n_blocks)
    x = np.random.default_rng(n_blocks).standard_normal((n_tok, 32 * n_blocks)).astype(np.float32)
    Wf = float_weights(W, t)
    r = rounding(version, t, n_tok)
    xs = emulate_x(x, version, t, n_tok)
    want = xs @ Wf.T + (q8_1_offset_rounding(W, x) if r == "int8" and ACT[t] == "q8_1" else 0.0)
    scale = np.abs(xs) @ np.abs(Wf).T
    got = K.quant_matmul(W, t, x, version=version)
    assert np.all(np.abs(got - want) <= TOLERANCE[r] * scale + 1e-6)


@pytest.mark.parametrize("version", [v for v in versions() if v.id.startswith(("v7", "v8", "v9"))])
@pytest.mark.parametrize("type_name", ["q4_0", "q4_1", "q8_0"])
@pytest.mark.parametrize("n_tok", [1, 2])
def test_rows4_versions_equal_v6_bitwise(version, type_name, n_tok):
    """v7-v9 make v6's very weights and sum them in v6's order, four rows at a time: equal to the last bit."""
    t = TYPES[type_name]
    W = random_weights(t, 23, 32 * 18, seed=5)
    x = np.random.default_rng(5).standard_normal((n_tok, 32 * 18)).astype(np.float32)
    np.testing.assert_array_equal(K.quant_matmul(W, t, x, version=version), K.quant_matmul(W, t, x, version="v6_f32_tiled_avx512"))


@pytest.mark.parametrize("version, type_name", [pytest.param(v.values[0], n, marks=v.marks, id=f"{v.id}-{n}") for v, n in I16_CASES])
def test_one_token_rounding_error_stays_within_its_bound(type_name, version):
    """v11/v12 round one token's activations to 16 bits: against float32 activations (v1) the products move
    by about 1e-5 of their scale, and no more: 16-bit rounding gives up none of float32's accuracy that matters."""
    t = TYPES[type_name]
    n_cols = 576 if BLOCK[t][0] == 32 else 1536  # the default model's rows; k-quants: its ffn_down's
    W = random_weights(t, 64, n_cols, seed=11)
    x = (np.random.default_rng(11).standard_normal((1, n_cols)) * np.geomspace(0.01, 100, n_cols)).astype(np.float32)
    exact = x.astype(np.float64) @ float_weights(W, t).T  # [1, 64]
    scale = np.abs(x.astype(np.float64)) @ np.abs(float_weights(W, t)).T
    rel16 = np.abs(K.quant_matmul(W, t, x, version=version) - exact) / scale
    rel32 = np.abs(K.quant_matmul(W, t, x, version="v1_threads") - exact) / scale
    bound = 2e-5
    assert rel16.max() < bound and rel32.max() < 2e-6
    assert rel16.max() > rel32.max()  # the rounding is real: not secretly the float path
    assert rel16.max() > bound / 40  # and as coarse as its steps say: not a finer rounding than claimed


@pytest.mark.parametrize("version, type_name", [pytest.param(v.values[0], n, marks=v.marks, id=f"{v.id}-{n}") for v, n in I16_CASES])
def test_i16_long_rows(type_name, version):
    """Rows of 150 blocks (4800 columns; k-quants 19 super-blocks), longer than any of the default model's, so the AVX2 kernel's buffer
    for its pass of scales must grow; 7 rows: a group of four and 3 rows left over."""
    t = TYPES[type_name]
    n_cols = 32 * 150 if BLOCK[t][0] == 32 else 256 * 19
    W = random_weights(t, 7, n_cols, seed=13)
    x = np.random.default_rng(13).standard_normal((1, n_cols)).astype(np.float32)
    Wf = float_weights(W, t)
    xs = emulate_i16(x)  # x as the version rounds it
    want = xs @ Wf.T  # [1, n_cols] @ [n_cols, 7]
    scale = np.abs(xs) @ np.abs(Wf).T
    got = K.quant_matmul(W, t, x, version=version, n_threads=1)
    assert np.all(np.abs(got - want) <= 2e-6 * scale + 1e-6)


@pytest.mark.parametrize("version", [v for v in versions() if v.id in I16])
def test_i16_rounding_is_quantize_i16_bit_for_bit(version):
    """Q8_0 rows of one-hot weights (d = 1, a single q = 1) pick single activations: y[r] = d_x * xq[r], one
    float product. So y is quantize_i16 (above) to the last bit, for every 16-bit kernel (the AVX-512
    and the AVX2 rounding must agree): scales, round-to-nearest-even, and saturation at 32767."""
    n = 96
    W = np.zeros((n, n // 32, 34), np.uint8)
    W[..., 0:2] = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    W[np.arange(n), np.arange(n) // 32, 2 + np.arange(n) % 32] = 1
    x = (np.random.default_rng(7).standard_normal((1, n)) * np.geomspace(1e-3, 1e3, n)).astype(np.float32)
    x[0, 40:48] = [0.5, -0.5, 1.5, 2.5, 0.0, -0.0, 3.5, 1e-30]  # ties and zeros in block 1
    x[0, 64:] = 0  # an all-zero block: d = 0
    d, p, _ = quantize_i16(x)
    want = (d[..., None] * p).reshape(1, n).astype(np.float32)
    np.testing.assert_array_equal(K.quant_matmul(W.reshape(n, -1), 8, x, version=version), want)



@pytest.mark.parametrize("version", [v for v in versions() if v.id.startswith("v13")])
def test_q5_fifth_bit_alone_is_quantize_i16_bit_for_bit(version):
    """v13 on Q5_1 rows whose every nibble is 0 and whose only set fifth bit is element r's (d = 1, m = 0): each
    row picks one activation times 16, y[r] = 16 d_x xq[r], and times 16 is exact in float32. So y is
    16 x quantize_i16 to the last bit: the fifth bit lands on its own element, in every lane of either half
    of a block, in row pairs and in the rows left over (96 rows: 24 calls of 4)."""
    n = 96
    W = np.zeros((n, n // 32, 24), np.uint8)  # Q5_1: d, m, qh (u32), qs[16]
    W[..., 0:2] = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    qh = np.zeros((n, n // 32), np.uint32)
    qh[np.arange(n), np.arange(n) // 32] = np.uint32(1) << (np.arange(n) % 32).astype(np.uint32)
    W[..., 4:8] = qh.view(np.uint8).reshape(n, n // 32, 4)
    x = (np.random.default_rng(8).standard_normal((1, n)) * np.geomspace(1e-3, 1e3, n)).astype(np.float32)
    d, p, _ = quantize_i16(x)
    want = (d[..., None] * p).reshape(1, n).astype(np.float32) * np.float32(16)
    np.testing.assert_array_equal(K.quant_matmul(W.reshape(n, -1), 7, x, version=version), want)
    np.testing.assert_array_equal(float_weights(W.reshape(n, -1), 7), 16 * np.eye(n))  # the lesson agrees on W

# ---- v10: each row dequantized once, then a GEMM (prompts of 12+ tokens; every type) ----
V10 = [v for v in versions() if v.id in GEMM]  # v10_gemm_avx512 and v10_gemm_avx2


def gemm_cols(t: int) -> int:
    """Columns past v10's 128-column chunks, and for float types not a multiple of 16 either."""
    block = BLOCK[t][0]
    return 16 * 9 + 3 if block == 1 else 32 * 5 if block == 32 else 512


@pytest.mark.parametrize("version", V10)
@pytest.mark.parametrize("type_name", list(TYPES))
def test_v10_multiplies_the_lessons_weights_exactly(version, type_name):
    """x = the identity makes y = W^T: each output is one weight times 1.0 plus exact zeros, so v10's
    dequantized rows (SIMD for Q4_0/Q4_1/Q8_0/F16/BF16, the scalar port otherwise) must be the lesson's
    floats to the last bit."""
    t = TYPES[type_name]
    n_cols = gemm_cols(t)
    W = random_weights(t, 37, n_cols, seed=11 + t)
    got = K.quant_matmul(W, t, np.eye(n_cols, dtype=np.float32), version=version)  # [n_cols, 37]
    np.testing.assert_array_equal(got.T, float_weights(W, t).astype(np.float32))


@pytest.mark.parametrize("version", V10)
@pytest.mark.parametrize("type_name", list(TYPES))
@pytest.mark.parametrize("n_tok", [3, 7, 17, 64, 257])
def test_v10_odd_shapes(version, type_name, n_tok):
    """Rows not a multiple of the micro-tile (8 or 4 rows) or the 64-row group, tokens not a multiple of
    the token tile (48 or 24), columns not a multiple of the 128-column chunk."""
    t = TYPES[type_name]
    n_cols = gemm_cols(t)
    W = random_weights(t, 67, n_cols, seed=t + n_tok)
    x = np.random.default_rng(n_tok).standard_normal((n_tok, n_cols)).astype(np.float32)
    Wf = float_weights(W, t)
    want = x.astype(np.float64) @ Wf.T  # [n_tok, n_cols] @ [n_cols, n_rows]
    scale = np.abs(x.astype(np.float64)) @ np.abs(Wf).T
    got = K.quant_matmul(W, t, x, version=version, n_threads=2)
    err = np.abs(got - want)
    assert np.all(err <= 2e-6 * scale + 1e-6), f"{type_name} n_tok={n_tok}: max err/scale {np.max(err / (scale + 1e-30)):.2e}"


@pytest.mark.parametrize("version", V10)
def test_v10_threads_give_identical_results(version):
    """Each (row, token) is one sum in column order whatever rows a thread groups: bit-identical."""
    W = random_weights(3, 301, 576, seed=3)
    x = np.random.default_rng(4).standard_normal((100, 576)).astype(np.float32)
    ref = K.quant_matmul(W, 3, x, version=version, n_threads=1)
    for n_threads in (2, 3):
        np.testing.assert_array_equal(K.quant_matmul(W, 3, x, version=version, n_threads=n_threads), ref)


# ---- v19: prompts through the 16-bit path, an integer GEMM (4+ tokens; every quant type) ----
V19 = [v for v in versions() if v.id in I16_GEMM]
QUANTS = [name for name, t in TYPES.items() if t not in FLOATS]


@pytest.mark.parametrize("version", V19)
@pytest.mark.parametrize("type_name", QUANTS)
@pytest.mark.parametrize("n_tok", [3, 8, 17, 49, 257])
def test_v19_odd_shapes(version, type_name, n_tok):
    """Against numpy with x rounded as quantize_i16 rounds it: 67 rows (not a multiple of the 8-row micro-tile or
    the 64-row group), tokens not a multiple of the 48-token tile (49: a tile of one vector), columns past the
    256-column chunk (legacy types: 288 = 256 + 32; k-quants: 3 super-blocks)."""
    t = TYPES[type_name]
    n_cols = 32 * 9 if BLOCK[t][0] == 32 else 768
    W = random_weights(t, 67, n_cols, seed=t + n_tok)
    x = np.random.default_rng(n_tok).standard_normal((n_tok, n_cols)).astype(np.float32)
    Wf = float_weights(W, t)
    assert rounding(version, t, n_tok) == ("i16" if n_tok >= I16_GEMM_MIN_TOKENS[t] else "f32")
    xs = emulate_x(x, version, t, n_tok)  # [n_tok, n_cols], x as v19 (or v18 below its threshold) rounds it
    want = xs @ Wf.T  # [n_tok, n_cols] @ [n_cols, 67]
    scale = np.abs(xs) @ np.abs(Wf).T
    got = K.quant_matmul(W, t, x, version=version, n_threads=2)
    err = np.abs(got - want)
    assert np.all(err <= TOLERANCE["i16"] * scale + 1e-6), f"{type_name} n_tok={n_tok}: max err/scale {np.max(err / (scale + 1e-30)):.2e}"


@pytest.mark.parametrize("version", V19)
@pytest.mark.parametrize("type_name", list(TYPES))
def test_v19_short_products_run_v18_bit_for_bit(version, type_name):
    """Decoding (one token), products shorter than v19's threshold, and float weights at any length, are v18's: same bits."""
    t = TYPES[type_name]
    n_cols = 16 * 9 + 3 if BLOCK[t][0] == 1 else 32 * 9 if BLOCK[t][0] == 32 else 512
    W = random_weights(t, 37, n_cols, seed=t)
    for n_tok in (1, 2) + ((12, 64) if t in FLOATS else tuple(range(3, I16_GEMM_MIN_TOKENS[t]))):
        x = np.random.default_rng(n_tok).standard_normal((n_tok, n_cols)).astype(np.float32)
        np.testing.assert_array_equal(K.quant_matmul(W, t, x, version=version),
                                      K.quant_matmul(W, t, x, version="v18_i16_q2_k_avx512"))


@pytest.mark.parametrize("version", V19)
def test_v19_rounding_is_quantize_i16_bit_for_bit(version):
    """Q8_0 rows of one-hot weights (d = 1, a single q = 1) pick single activations: y[t, r] = d_x[t] * xq[t, r],
    one float product, for 9 tokens at once: the GEMM rounds x exactly as quantize_i16 (and the decoding path) do."""
    n, n_tok = 96, 9
    W = np.zeros((n, n // 32, 34), np.uint8)
    W[..., 0:2] = np.frombuffer(np.float16(1.0).tobytes(), np.uint8)
    W[np.arange(n), np.arange(n) // 32, 2 + np.arange(n) % 32] = 1
    x = (np.random.default_rng(9).standard_normal((n_tok, n)) * np.geomspace(1e-3, 1e3, n)).astype(np.float32)
    x[1, 40:48] = [0.5, -0.5, 1.5, 2.5, 0.0, -0.0, 3.5, 1e-30]  # ties and zeros
    x[2, 64:] = 0  # an all-zero block: d = 0
    d, p, _ = quantize_i16(x)
    want = (d[..., None] * p).reshape(n_tok, n).astype(np.float32)
    np.testing.assert_array_equal(K.quant_matmul(W.reshape(n, -1), 8, x, version=version), want)


@pytest.mark.parametrize("version", V19)
def test_v19_q6_k_rows_past_the_int32_bound(version):
    """Q6_K folds its 8-bit scales into the int16 weights: |w16| up to 32 * 128 = 4096, so a block of 32 such
    weights against x at 32767 sums to 4.3e9, past int32. Rows whose blocks could (sum |w16| > 65535) must still
    be exact: every q = -32 (ql = qh = 0) under scale -128, and x the same positive value everywhere (every
    xq = 32767): each block's true sum is +4.29e9. A normal row in the same micro-tile must not be disturbed."""
    t, n_cols = 14, 512
    W = random_weights(t, 9, n_cols, seed=21).reshape(9, 2, 210)
    W[0, :, :192] = 0  # ql, qh: q = -32 everywhere
    W[0, :, 192:208] = np.uint8(0x80)  # scales: -128
    W[5, 0, :192] = 0  # row 5: only its first super-block's q's at -32, scales random
    W = W.reshape(9, -1)
    x = np.full((9, n_cols), 0.75, np.float32)
    x[1::2] *= -1  # negative tokens too
    x[4, ::7] = 0.1
    Wf = float_weights(W, t)
    xs = emulate_i16(x)
    want = xs @ Wf.T
    scale = np.abs(xs) @ np.abs(Wf).T
    got = K.quant_matmul(W, t, x, version=version, n_threads=1)
    assert np.all(np.abs(got - want) <= TOLERANCE["i16"] * scale + 1e-6), np.max(np.abs(got - want) / scale)


@pytest.mark.parametrize("version", V19)
@pytest.mark.parametrize("type_name", ["q4_1", "q2_k"])
def test_v19_threads_give_identical_results(version, type_name):
    """Each (row, token) sums its blocks in column order whatever rows a thread takes: bit-identical."""
    t = TYPES[type_name]
    W = random_weights(t, 301, 512, seed=3)
    x = np.random.default_rng(4).standard_normal((100, 512)).astype(np.float32)
    ref = K.quant_matmul(W, t, x, version=version, n_threads=1)
    for n_threads in (2, 3):
        np.testing.assert_array_equal(K.quant_matmul(W, t, x, version=version, n_threads=n_threads), ref)
