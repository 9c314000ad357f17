"""The C++ ops (rmsnorm, rope_angles + apply_rope, swiglu, softmax), every version this CPU runs, against the numpy lessons."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lessons.l04_rmsnorm import rmsnorm as np_rmsnorm
from lessons.l05_rope import apply_rope, rope_angles
from lessons.l06_attention import softmax as np_softmax
from lessons.l07_swiglu import silu, swiglu as np_swiglu

K = pytest.importorskip("cpp_core.kernels", reason="the C++ core is not built (pip install -e .)")


def versions(op: str) -> list:
    """Every version in the build; those this CPU cannot run are skipped with the reason."""
    out = []
    for name, _, ok in K._core.list_versions(op):
        marks = [] if ok else [pytest.mark.skip(reason=f"{op} {name} needs CPU features this machine lacks")]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


SIZES = [1, 7, 16, 33, 576, 1536]  # odd sizes exercise the SIMD tails


@pytest.mark.parametrize("version", versions("rmsnorm"))
@pytest.mark.parametrize("n", SIZES)
def test_rmsnorm(version, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) * 4).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    got = K.rmsnorm(x, w, 1e-5, version=version)
    np.testing.assert_allclose(got, np_rmsnorm(x, w, 1e-5), rtol=2e-6, atol=2e-6)


def test_rmsnorm_rejects_bad_weight():
    with pytest.raises(ValueError, match="weight"):
        K.rmsnorm(np.ones((2, 8), np.float32), np.ones(7, np.float32), 1e-5)


@pytest.mark.parametrize("version", versions("swiglu"))
@pytest.mark.parametrize("n", SIZES)
def test_swiglu(version, n):
    rng = np.random.default_rng(n)
    gate = (rng.standard_normal(n) * 6).astype(np.float32)
    gate[:: max(1, n // 4)] = rng.choice([-200.0, -90.0, 0.0, 90.0], size=gate[:: max(1, n // 4)].shape)  # exp's edges
    up = rng.standard_normal(n).astype(np.float32)
    got = K.swiglu(gate, up, version=version)
    np.testing.assert_allclose(got, np_swiglu(gate, up), rtol=3e-6, atol=1e-6)
    np.testing.assert_allclose(got, silu(gate) * up, rtol=3e-6, atol=1e-6)  # what lesson 7's swiglu means


@pytest.mark.parametrize("version", versions("softmax"))
@pytest.mark.parametrize("n", SIZES)
def test_softmax(version, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((4, n)) * 5).astype(np.float32)
    x[1, 1::2] = -np.inf  # a causal mask: those must come out exactly 0
    x[2] += 300.0  # large scores: only their differences matter
    got = K.softmax(x, version=version)
    want = np_softmax(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-8)
    assert np.all(got[1, 1::2] == 0.0)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("n_rot", [2, 64, 1000])
def test_rope_angles(n_rot):
    positions = np.array([0, 1, 7, 300, 8000], np.int32)
    got_cos, got_sin = K.rope_angles(positions, n_rot, 100000.0)
    want_cos, want_sin = rope_angles(positions, n_rot, 100000.0)
    assert got_cos.shape == want_cos.shape == (5, n_rot // 2)
    np.testing.assert_allclose(got_cos, want_cos, rtol=0, atol=1e-6)  # both from double angles, rounded to float
    np.testing.assert_allclose(got_sin, want_sin, rtol=0, atol=1e-6)


@pytest.mark.parametrize("version", versions("apply_rope"))
@pytest.mark.parametrize("neox", [False, True], ids=["adjacent", "neox"])
@pytest.mark.parametrize("n_head,head_dim,n_rot", [(1, 2, 2), (3, 6, 6), (9, 64, 64), (2, 128, 128), (3, 48, 48),
                                                  (2, 80, 80), (4, 64, 32), (2, 80, 36), (1, 96, 46), (2, 320, 300)],
                         ids=lambda v: str(v))
def test_apply_rope(version, neox, n_head, head_dim, n_rot):
    """Whole heads, SIMD tails (46/2 = 23 pairs), partial rotation (n_rot < head_dim: the rest untouched),
    and n_rot 300 (past the SIMD versions' stack tables of 256)."""
    rng = np.random.default_rng(head_dim + n_rot)
    pos, n_tok = 1000, 3
    x = rng.standard_normal((n_tok, n_head, head_dim)).astype(np.float32)
    cos, sin = rope_angles(np.arange(pos, pos + n_tok), n_rot, 100000.0)
    want = apply_rope(x, cos, sin, neox=neox)
    got = K.apply_rope(x, cos, sin, neox, version=version)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[..., n_rot:], x[..., n_rot:])


def test_rope_rejects_bad_shapes():
    with pytest.raises(ValueError, match="n_rot"):
        K.rope_angles(np.arange(2), 5, 10000.0)
    cos, sin = rope_angles(np.arange(2), 8, 10000.0)  # [2, 4]
    with pytest.raises(ValueError, match="exceeds head_dim"):
        K.apply_rope(np.ones((2, 3, 6), np.float32), cos, sin)
    with pytest.raises(ValueError, match="n_tok"):
        K.apply_rope(np.ones((3, 3, 8), np.float32), cos, sin)


# The version each op's fast path must pick, from the CPU's feature bits (cpu_features(), cpuid + xgetbv).
# AVX2 means AVX2 + FMA + F16C; AVX-512 means F + BW + VL; the matmul's AVX-512 versions also need VNNI.
AVX2 = {"avx2", "fma", "f16c"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl"}
FAST_PATH = [  # (needs, {op: version}), best first
    (AVX512 | {"avx512vnni"}, {"quant_matmul": "v19_i16_gemm_avx512"}),
    (AVX2, {"quant_matmul": "v18_i16_q2_k_avx2"}),
    ({"neon"}, {"quant_matmul": "v18_i16_q2_k_neon"}),
    (set(), {"quant_matmul": "v1_threads"}),
]
SMALL_OPS_FAST_PATH = [
    (AVX512, "v2_avx512"), (AVX2, "v1_avx2"), ({"neon"}, "v1_neon"), (set(), "v0_scalar"),
]


def expected_fast_path(cpu: dict) -> dict:
    has = {name for name, ok in cpu.items() if ok}
    out = next(versions for needs, versions in FAST_PATH if needs <= has).copy()
    small = next(version for needs, version in SMALL_OPS_FAST_PATH if needs <= has)
    return out | {op: small for op in ("rmsnorm", "apply_rope", "swiglu", "softmax")}


def test_fast_path_is_what_the_cpu_bits_say():
    if os.environ.get("LLAMA_LESSONS_MATMUL"):
        pytest.skip("LLAMA_LESSONS_MATMUL overrides the fast path")
    assert K.active_versions() == expected_fast_path(K.cpu_features())


def test_listing_starts_at_v0_and_runs_in_order():
    listed, avail = K.list_versions(), K.available_versions()
    for op in K.OPS:
        numbers = [int(name[1:].split("_")[0]) for name in listed[op]]
        assert numbers[0] == 0 and numbers == sorted(numbers), (op, listed[op])
        assert avail[op][0] == listed[op][0]  # v0 (scalar) runs everywhere
def cpuinfo_flags() -> set[str] | None:
    """The CPU's feature flags as the Linux kernel reports them: an oracle independent of the core's cpuid code."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), None)
    return None if flags is None else set(flags)


# what each SIMD suffix of the small ops' versions needs, in /proc/cpuinfo's spelling
SUFFIX_NEEDS = {"scalar": set(), "avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx512bw", "avx512vl"}}


def test_feature_detection_agrees_with_the_kernel():
    """The core's cpuid reading and the versions it offers against /proc/cpuinfo (x86 Linux)."""
    flags = cpuinfo_flags()
    if flags is None or "sse2" not in flags:
        pytest.skip("no x86 /proc/cpuinfo on this machine")
    ours = K.cpu_features()
    for name in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"):
        assert ours[name] == (name in flags), name
    assert ours["avx512vnni"] == ("avx512_vnni" in flags) and not ours["neon"]
    listed, avail = K.list_versions(), K.available_versions()
    for op in ("rmsnorm", "apply_rope", "swiglu", "softmax"):
        for name in listed[op]:
            runnable = SUFFIX_NEEDS[name.split("_", 1)[1]] <= flags
            assert (name in avail[op]) == runnable, (op, name)


def test_fast_paths():
    listed, avail, active = K.list_versions(), K.available_versions(), K.active_versions()
    for op in K.OPS:
        assert listed[op][0].startswith("v0"), op
        if op != "quant_matmul":
            assert active[op] == avail[op][-1], op  # the fast path runs the last (fastest) version this CPU has
    with pytest.raises(ValueError, match="unknown"):
        K.rmsnorm(np.ones(4, np.float32), np.ones(4, np.float32), 1e-5, version="v9_nonsense")


@pytest.mark.parametrize("n_tok", [1, 5])
def test_quant_matmul_fast_path_keeps_float_activations(n_tok):
    """quant_matmul's fast path (version=None, what the model runs) computes x @ dequantize(W).T as the F32
    model does: here within 1e-7 of the largest output with float activations (a prompt without AVX-512 VNNI),
    2e-5 with activations rounded to 16 bits (one token: v11-v18; prompts through v19), where 8-bit
    activations are off by 4e-3 to 5e-3."""
    from lessons.l01_gguf import GGMLType
    from lessons.l12_quants import dequantize, quantize

    rng = np.random.default_rng(n_tok)
    raw = quantize((rng.standard_normal((64, 512)) * 0.1).astype(np.float32), GGMLType.Q4_1)
    x = rng.standard_normal((n_tok, 512)).astype(np.float32)
    want = x.astype(np.float64) @ dequantize(raw, GGMLType.Q4_1, (64, 512)).astype(np.float64).T  # [n_tok, 64]
    got = K.quant_matmul(raw, int(GGMLType.Q4_1), x)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_thread_pool_counts():
    assert K.thread_pool(1).n_threads == 1
    assert K.thread_pool(3).n_threads == 3
    with pytest.raises(ValueError):
        K.thread_pool(0)
