"""Lesson 12: the ggml type table, float types and legacy block quants.

Oracles: gguf-py (llama.cpp's Python package: GGML_QUANT_SIZES, quants.dequantize/quantize) and
llama.cpp's own quantizer and dequantizer, frozen in tests/fixtures/quant_llamacpp.npz by
tools/make_quant_fixtures.py.
"""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402

from lessons import l12b_legacy_quants as legacy  # noqa: E402
from lessons.l12_quants import GGML_TYPES, dequantize, quantize, row_bytes  # noqa: E402

LEGACY = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
KQUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]


@pytest.fixture(scope="module")
def fx(quant_fixture):
    """llama.cpp's blocks and source rows (tools/make_quant_fixtures.py), loaded once in conftest."""
    return quant_fixture


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_type_table_matches_gguf_and_ggml(fx):
    ggml_sizes = {int(t): (int(b), int(s)) for t, b, s in fx["ggml_type_sizes"]}  # ggml_blck_size/ggml_type_size
    for t, (name, block, size) in GGML_TYPES.items():
        assert T(t).name == name
        assert ggml_sizes[t] == (block, size), name
        if t != T.Q8_1:  # gguf-py still has Q8_1's old layout (f32 d and s: 40 bytes); ggml's is 36
            assert gguf.GGML_QUANT_SIZES[T(t)] == (block, size), name


@pytest.mark.parametrize("t", LEGACY + KQUANTS, ids=lambda t: t.name)
def test_dequantize_equals_gguf_py_on_llamacpp_blocks(fx, t):
    blocks, shape = fx[f"blocks_{int(t)}"], fx["src"].shape
    ours = dequantize(blocks, t, shape)
    assert ours.shape == shape and ours.dtype == np.float32
    np.testing.assert_array_equal(bits(ours), bits(gguf.quants.dequantize(blocks, t)))


@pytest.mark.parametrize("t", LEGACY + KQUANTS + [T.Q8_K], ids=lambda t: t.name)
def test_dequantize_equals_llamacpp(fx, t):
    ref = fx[f"deq_{int(t)}"]                       # llama.cpp's dequantize_row_* on the first rows
    blocks = fx[f"blocks_{int(t)}"][: len(ref)]
    np.testing.assert_array_equal(bits(dequantize(blocks, t, ref.shape)), bits(ref))


def test_q8_1_dequantize_is_q8_0_without_s(fx):
    q81 = fx[f"blocks_{int(T.Q8_1)}"]
    as_q80 = np.concatenate([q81.reshape(-1, 36)[:, :2], q81.reshape(-1, 36)[:, 4:]], axis=1)  # drop s
    ref = gguf.quants.dequantize(as_q80, T.Q8_0).reshape(fx["src"].shape)
    np.testing.assert_array_equal(bits(dequantize(q81, T.Q8_1, fx["src"].shape)), bits(ref))


@pytest.mark.parametrize("t", LEGACY, ids=lambda t: t.name)
def test_legacy_quantize_bit_exact(fx, t):
    src = fx["src"]
    ours = quantize(src, t)
    assert ours.dtype == np.uint8 and ours.shape == (src.shape[0], row_bytes(t, src.shape[1]))
    np.testing.assert_array_equal(ours, fx[f"blocks_{int(t)}"])      # llama.cpp
    np.testing.assert_array_equal(ours, gguf.quants.quantize(src, t))  # gguf-py


@pytest.mark.parametrize("t", LEGACY, ids=lambda t: t.name)
def test_legacy_quantize_random_equals_gguf_py(t):
    rng = np.random.default_rng(int(t))
    x = (rng.standard_normal((32, 512)) * rng.uniform(1e-3, 10, (32, 1))).astype(np.float32)
    x[0, :32] = 0.0  # all-zero block
    np.testing.assert_array_equal(quantize(x, t), gguf.quants.quantize(x, t))


def test_q8_1_quantize_bit_exact(fx):
    np.testing.assert_array_equal(quantize(fx["src"], T.Q8_1), fx[f"blocks_{int(T.Q8_1)}"])


def special_floats(rng):
    x = (rng.standard_normal(4096) * np.exp(rng.standard_normal(4096) * 8)).astype(np.float32)
    x[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3e38, 65520.0]
    return x


def test_float_types_match_gguf_py():
    x = special_floats(np.random.default_rng(0)).reshape(8, 512)
    with np.errstate(over="ignore"):
        f16, bf16 = x.astype(np.float16), gguf.quants.quantize(x, T.BF16)
    np.testing.assert_array_equal(bits(dequantize(x, T.F32, x.shape)), bits(x))
    np.testing.assert_array_equal(bits(dequantize(f16, T.F16, x.shape)), bits(gguf.quants.dequantize(f16, T.F16)))
    np.testing.assert_array_equal(bits(dequantize(bf16, T.BF16, x.shape)), bits(gguf.quants.dequantize(bf16, T.BF16)))
    np.testing.assert_array_equal(quantize(x, T.BF16).view(np.uint8), bf16)  # round to nearest even, NaN stays NaN
    np.testing.assert_array_equal(quantize(x, T.F16), f16)


def test_raw_bytes_accepted_for_float_types():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    np.testing.assert_array_equal(dequantize(x.view(np.uint8), T.F32, (3, 4)), x)
    np.testing.assert_array_equal(dequantize(x.astype(np.float16).view(np.uint8), T.F16, (3, 4)), x)


def test_worked_examples_in_docstring():
    # Q8_0: amax 2.54 -> d = 0.02, q = round(x / d)
    x = np.zeros((1, 32), np.float32)
    x[0, :3] = [0.1, -2.54, 1.0]
    b = legacy._blocks(quantize(x, T.Q8_0), legacy.BLOCK_Q8_0)
    assert list(b["qs"][0, :4]) == [5, -127, 50, 0]
    assert b["d"][0] == np.float16(np.float32(2.54) / np.float32(127))
    # Q4_1: min -1, max 2 -> d = 0.2; 0.5 -> q = 8 -> 0.6; the max is exact
    x = np.linspace(-1.0, 2.0, 32, dtype=np.float32)[None, :].copy()
    x[0, 5] = 0.5
    raw = quantize(x, T.Q4_1)
    q = legacy.unpack_nibbles(legacy._blocks(raw, legacy.BLOCK_Q4_1)["qs"])
    assert q[0, 5] == 8 and q[0, 31] == 15
    y = dequantize(raw, T.Q4_1, x.shape)
    assert abs(y[0, 5] - 0.6) < 1e-3 and abs(y[0, 31] - 2.0) < 1e-3


@pytest.mark.parametrize("call", [
    lambda: dequantize(np.zeros(19, np.uint8), T.Q4_0, (32,)),           # wrong byte count
    lambda: dequantize(np.zeros(18, np.uint8), T.Q4_0, (33,)),           # not whole blocks
    lambda: dequantize(np.zeros(18, np.uint8), 99, (32,)),               # unknown type
    lambda: dequantize(np.zeros(18, np.uint8), T.Q4_0, (-1, 32)),        # negative dimension
    lambda: quantize(np.zeros((2, 48), np.float32), T.Q4_0),             # not whole blocks
    lambda: quantize(np.zeros((1, 256), np.float32), T.IQ2_XXS),         # unsupported type
    lambda: quantize(np.full((1, 32), np.nan, np.float32), T.Q8_0),      # NaN
    lambda: quantize(np.float32(1.0), T.Q8_0),                           # 0-d
    lambda: dequantize(np.zeros(4, np.float64), T.F32, (8,)),            # float64 is not F32 data
    lambda: dequantize([0] * 18, T.Q4_0, (32,)),                         # a list of ints is not bytes
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_empty_tensor():
    assert dequantize(np.zeros((0, 18), np.uint8), T.Q4_0, (0, 32)).shape == (0, 32)
    assert quantize(np.zeros((0, 256), np.float32), T.Q4_K).shape == (0, 144)


def test_default_model_tensors_equal_gguf_py(default_model):
    seen = set()
    for t in sorted(default_model.tensors.values(), key=lambda t: int(np.prod(t.shape))):  # smallest of each type
        if t.ggml_type in seen or np.prod(t.shape) > 3_000_000:
            continue
        seen.add(t.ggml_type)
        np.testing.assert_array_equal(bits(dequantize(t.data, t.ggml_type, t.shape)),
                                      bits(gguf.quants.dequantize(np.asarray(t.data), T(int(t.ggml_type)))),
                                      err_msg=t.name)
    assert {int(T.Q4_1), int(T.F32)} <= {int(t) for t in seen}


def test_quantized_tensors_survive_a_gguf_file(tmp_path):
    """Tensors of every type, quantized here, written with write_gguf, read back by gguf-py and by lesson 1."""
    from lessons.l01_gguf import GGUFFile, write_gguf

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 512)) * 0.1).astype(np.float32)
    types = [T.F32, T.F16, T.BF16, *LEGACY, *KQUANTS]
    tensors = [(f"t{int(t)}", int(t), x.shape, quantize(x, t)) for t in types]
    path = tmp_path / "q.gguf"
    write_gguf(path, {"general.architecture": "test"}, tensors)
    theirs = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    f = GGUFFile(path)
    for t in types:
        ref = gguf.quants.dequantize(theirs[f"t{int(t)}"].data, t).reshape(x.shape)
        info = f.tensors[f"t{int(t)}"]
        np.testing.assert_array_equal(bits(dequantize(info.data, info.ggml_type, info.shape)), bits(ref), err_msg=t.name)
