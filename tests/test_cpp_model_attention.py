"""The C++ attention kernel, every version, against the numpy lesson (lessons/l06_attention.py).

Shapes cover plain multi-head, grouped-query and multi-query attention (group 1 to 9), a single new token
(decode) and several (prefill, with the causal mask), head_dim not a multiple of the SIMD width (8 or 16),
a head_dim of 1 and up to 128, contexts of 1, 17 and 300 positions (v6 splits long ones into chunks when
it has several threads), and a cache longer than the positions in use (entries past them must be ignored).
Every case runs with a float32 cache and with a float16 one (llama.cpp's default), against the lesson
given the very same float16 cache.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

cpp_model = pytest.importorskip("cpp_core.model", reason="the C++ core is not built (pip install -e .)")
from lessons.l06_attention import attention as numpy_attention  # noqa: E402

SHAPES = [  # (n new tokens, pos, n_head, n_head_kv, head_dim)
    (1, 0, 1, 1, 1),
    (1, 0, 4, 2, 8),
    (1, 37, 9, 3, 64),   # SmolLM2 decoding
    (5, 0, 9, 3, 64),    # SmolLM2 prefill
    (6, 11, 4, 4, 17),   # plain multi-head, odd head_dim
    (3, 2, 6, 1, 23),    # multi-query, head_dim with a tail after 16
    (4, 0, 2, 1, 80),
    (1, 16, 4, 2, 48),   # 17 positions: one full block of 16 and one position after it
    (1, 299, 9, 3, 64),  # 300 positions: a long decode, split into chunks merged flash-style
    (1, 299, 8, 2, 128),  # head_dim 128 (two 64-channel passes), group 4
    (2, 150, 3, 3, 80),  # group 1, head_dim 80 (a tail in the second pass)
    (3, 97, 10, 2, 48),  # group 5: heads done 4 + 1
    (2, 200, 4, 1, 64),  # two tokens, one KV head: split into chunks too (3 threads)
]


@pytest.mark.parametrize("version", cpp_model.attention_versions())
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "n{}-pos{}-h{}-kv{}-d{}".format(*s))
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("kv_dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_attention_matches_lesson(version, shape, n_threads, kv_dtype):
    n, pos, n_head, n_head_kv, hd = shape
    rng = np.random.default_rng(sum(shape))
    n_ctx = pos + n + 5  # a few unused cache slots, filled with garbage that must not be read
    q = rng.standard_normal((n, n_head, hd)).astype(np.float32) * 2
    k = rng.standard_normal((n_head_kv, n_ctx, hd)).astype(kv_dtype)  # [n_head_kv, n_ctx, hd], the lesson's layout
    v = rng.standard_normal((n_head_kv, n_ctx, hd)).astype(kv_dtype)
    k[:, pos + n:] = np.nan  # between one KV head's positions and the next head's
    v[:, pos + n:] = np.nan
    ours = cpp_model.attention(q, k, v, pos, version=version, n_threads=n_threads)
    ref = numpy_attention(q, k[:, : pos + n], v[:, : pos + n], pos)  # the lesson is given the filled positions only
    assert ours.shape == ref.shape == (n, n_head * hd)
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kv_dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_prefetch_changes_no_bit(kv_dtype):
    """v5_gqa_prefetch_avx2 is v4_gqa_avx2 plus requests for rows 8 positions ahead: the same numbers, to the bit."""
    names = {name: ok for name, _idea, ok in cpp_model._core.attention_versions()}
    if not names.get("v5_gqa_prefetch_avx2"):
        pytest.skip("no AVX2 versions on this CPU")
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 9, 64)).astype(np.float32)
    k, v = (rng.standard_normal((3, 60, 64)).astype(kv_dtype) for _ in range(2))
    a4, a5 = (cpp_model.attention(q, k, v, 50, version=name, n_threads=2) for name in ("v4_gqa_avx2", "v5_gqa_prefetch_avx2"))
    np.testing.assert_array_equal(a5, a4)


@pytest.mark.parametrize("kv_dtype", [np.float32, np.float16], ids=["f32", "f16"])
@pytest.mark.parametrize("n_tok, pos, hd, n_threads", [(1, 700, 64, 2), (1, 700, 40, 1), (3, 130, 64, 2), (1, 5, 80, 2)])
def test_v7_prefetch_changes_no_bit(kv_dtype, n_tok, pos, hd, n_threads):
    """v7_gqa_flash_prefetch_avx512 is v6_gqa_flash_avx512 plus requests 4 KB ahead of each K block and V row:
    the same numbers, to the bit, on long rows split into chunks (decoding at 700 with 2 threads), one thread,
    prompts, head sizes that are not multiples of 16, and rows shorter than the prefetch distance."""
    names = {name: ok for name, _idea, ok in cpp_model._core.attention_versions()}
    if not names.get("v7_gqa_flash_prefetch_avx512"):
        pytest.skip("no AVX-512 versions on this CPU")
    rng = np.random.default_rng(7)
    q = rng.standard_normal((n_tok, 9, hd)).astype(np.float32)
    k, v = (rng.standard_normal((3, pos + n_tok + 3, hd)).astype(kv_dtype) for _ in range(2))
    a6, a7 = (cpp_model.attention(q, k, v, pos, version=name, n_threads=n_threads)
              for name in ("v6_gqa_flash_avx512", "v7_gqa_flash_prefetch_avx512"))
    np.testing.assert_array_equal(a7, a6)


# The ladder as docs/20-kernels-attention.md teaches it, and the version each CPU's feature bits must pick.
LADDER = {"x86_64": ["v0_scalar", "v1_threads", "v2_avx2", "v3_avx512", "v4_gqa_avx2", "v5_gqa_prefetch_avx2",
                     "v6_gqa_flash_avx512", "v7_gqa_flash_prefetch_avx512"],
          "aarch64": ["v0_scalar", "v1_threads", "v2_neon"]}
AVX2 = {"avx2", "fma", "f16c"}  # the kernels' AVX2 (cpu/features.h); their AVX-512 is F + BW + VL on top
FAST_PATH = [(AVX2 | {"avx512f", "avx512bw", "avx512vl"}, "v7_gqa_flash_prefetch_avx512"), (AVX2, "v5_gqa_prefetch_avx2"),
             ({"neon"}, "v2_neon"), (set(), "v1_threads")]


def test_versions_are_the_ladder_in_order():
    names = [name for name, _idea, _ok in cpp_model._core.attention_versions()]
    assert names == LADDER["aarch64" if cpp_model._core.cpu_features()["neon"] else "x86_64"]


def test_fast_path_is_what_the_cpu_bits_say():
    if os.environ.get("LLAMA_LESSONS_ATTENTION"):
        pytest.skip("LLAMA_LESSONS_ATTENTION overrides the fast path")
    has = {name for name, ok in cpp_model._core.cpu_features().items() if ok}
    assert cpp_model.attention_active() == next(version for needs, version in FAST_PATH if needs <= has)


@pytest.mark.parametrize("args, message", [
    (dict(q=(2, 4, 8), k=(2, 3, 8), pos=2), "cache holds fewer"),  # k: [n_head_kv, n_ctx, hd]
    (dict(q=(1, 3, 8), k=(2, 4, 8), pos=0), "multiple"),
    (dict(q=(1, 4, 8), k=(2, 4, 9), pos=0), "head_dim"),
    (dict(q=(1, 4, 8), k=(2, 4, 8), pos=-1), "fewer|pos"),
])
def test_bad_shapes_are_value_errors(args, message):
    q = np.zeros(args["q"], np.float32)
    k = np.zeros(args["k"], np.float32)
    with pytest.raises(ValueError, match=message):
        cpp_model.attention(q, k, k, args["pos"])


def test_mixed_cache_dtypes_are_a_value_error():
    q = np.zeros((1, 2, 8), np.float32)
    k = np.zeros((1, 1, 8), np.float32)
    with pytest.raises(ValueError, match="same dtype"):
        cpp_model.attention(q, k, k.astype(np.float16), 0)


def test_f16_cache_is_read_as_float16_not_converted():
    """A float16 cache must reach C++ as float16 bits: the answer equals the float32 answer on the same
    (already rounded) values up to float32 arithmetic, and differs from the unrounded cache's by far more."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 4, 16)).astype(np.float32)
    k = rng.standard_normal((2, 9, 16)).astype(np.float32)
    v = rng.standard_normal((2, 9, 16)).astype(np.float32)
    k16, v16 = k.astype(np.float16), v.astype(np.float16)
    got = cpp_model.attention(q, k16, v16, 8, version="v0_scalar")
    np.testing.assert_allclose(got, cpp_model.attention(q, k16.astype(np.float32), v16.astype(np.float32), 8, version="v0_scalar"),
                               rtol=0, atol=2e-6)
    assert np.abs(got - cpp_model.attention(q, k, v, 8, version="v0_scalar")).max() > 2e-5


def test_unknown_version_is_a_value_error():
    q = np.zeros((1, 2, 8), np.float32)
    k = np.zeros((1, 1, 8), np.float32)
    with pytest.raises(ValueError, match="unknown attention version"):
        cpp_model.attention(q, k, k, 0, version="v9_quantum")


@pytest.mark.parametrize("version", cpp_model.attention_versions())
@pytest.mark.parametrize("heads", [(0, 4), (4, 9), (2, 7), (8, 9)])
@pytest.mark.parametrize("n, pos", [(1, 120), (3, 20)])
def test_head_range_computes_those_heads_only(version, heads, n, pos):
    """A decoding team gives each thread a range of query heads, which may cut a KV group in two
    (9 heads in groups of 3 over 2 threads: heads 0-3 and 4-8). Those heads come out as in the full
    call, the others are left alone."""
    rng = np.random.default_rng(pos)
    q = rng.standard_normal((n, 9, 64)).astype(np.float32)
    k, v = rng.standard_normal((2, 3, pos + n, 64)).astype(np.float32)
    full = cpp_model.attention(q, k, v, pos, version=version, n_threads=2).reshape(n, 9, 64)
    part = cpp_model.attention(q, k, v, pos, version=version, n_threads=2, heads=heads).reshape(n, 9, 64)
    b, e = heads
    np.testing.assert_allclose(part[:, b:e], full[:, b:e], rtol=1e-6, atol=1e-6)
    assert not part[:, :b].any() and not part[:, e:].any()


def test_bad_head_range_is_a_value_error():
    q = np.ones((1, 4, 8), np.float32)
    kv = np.ones((2, 2, 8), np.float32)
    for heads in [(3, 2), (0, 5), (-1, 2)]:
        with pytest.raises(ValueError, match="head range"):
            cpp_model.attention(q, kv, kv, 1, heads=heads)
