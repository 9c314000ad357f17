import math

import numpy as np
import pytest

from lessons.l05_rope import apply_rope, permute_hf_to_gguf, rope_angles


def rope_complex_oracle(x, positions, n_rot, base):
    """Adjacent-pair RoPE as Meta's LLaMA writes it: pair (x[2i], x[2i+1]) is a complex number times e^(i p theta_i)."""
    out = x.astype(np.float64).copy()
    for t, p in enumerate(positions):
        for h in range(x.shape[1]):
            for i in range(n_rot // 2):
                z = complex(x[t, h, 2 * i], x[t, h, 2 * i + 1]) * complex(math.cos(p * base ** (-2 * i / n_rot)),
                                                                           math.sin(p * base ** (-2 * i / n_rot)))
                out[t, h, 2 * i], out[t, h, 2 * i + 1] = z.real, z.imag
    return out


def random_heads(n=3, n_heads=2, head_dim=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_heads, head_dim)).astype(np.float32)


@pytest.mark.parametrize("neox", [False, True])
def test_position_zero_is_identity(neox):
    x = random_heads(n=1)
    cos, sin = rope_angles(np.array([0]), 8, 10000.0)
    np.testing.assert_array_equal(apply_rope(x, cos, sin, neox), x)


def test_single_pair_turns_by_position_radians():
    # worked example: head_dim 2 has one pair with theta = 1 radian, so (1, 0) at position p -> (cos p, sin p)
    x = np.array([[[1.0, 0.0]]] * 3, np.float32)  # [3 positions, 1 head, 2]
    cos, sin = rope_angles(np.array([0, 1, 5]), 2, 100000.0)
    out = apply_rope(x, cos, sin)
    np.testing.assert_allclose(out[:, 0], [[1, 0], [math.cos(1), math.sin(1)], [math.cos(5), math.sin(5)]], atol=1e-6)


@pytest.mark.parametrize("base", [10000.0, 100000.0, 500000.0])
@pytest.mark.parametrize("n_rot", [8, 4])
def test_normal_mode_matches_complex_oracle(base, n_rot):
    x = random_heads()
    positions = np.array([0, 7, 300])
    cos, sin = rope_angles(positions, n_rot, base)
    out = apply_rope(x, cos, sin, neox=False)
    np.testing.assert_allclose(out, rope_complex_oracle(x, positions, n_rot, base), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[..., n_rot:], x[..., n_rot:])  # channels past n_rot pass through


@pytest.mark.parametrize("neox", [False, True])
def test_rotation_keeps_length_and_scores_depend_on_distance_only(neox):
    q, k = random_heads(n=1, seed=1), random_heads(n=1, seed=2)
    def rotated(x, p):
        cos, sin = rope_angles(np.array([p]), 8, 10000.0)
        return apply_rope(x, cos, sin, neox)
    np.testing.assert_allclose(np.linalg.norm(rotated(q, 123), axis=-1), np.linalg.norm(q, axis=-1), rtol=1e-5)
    score = lambda m, n: np.sum(rotated(q, m) * rotated(k, n), axis=-1)  # noqa: E731
    np.testing.assert_allclose(score(10, 3), score(107, 100), rtol=1e-4, atol=1e-5)
    assert not np.allclose(score(10, 3), score(10, 4), rtol=1e-3)


def test_neox_on_hf_layout_equals_normal_on_gguf_layout():
    # why converters permute W_q / W_k: half-split RoPE on HF rows == adjacent-pair RoPE on GGUF rows
    rng = np.random.default_rng(3)
    n_heads, head_dim, n_embd = 3, 8, 12
    w_q_hf = rng.standard_normal((n_heads * head_dim, n_embd)).astype(np.float32)
    w_k_hf = rng.standard_normal((n_heads * head_dim, n_embd)).astype(np.float32)
    x = rng.standard_normal((5, n_embd)).astype(np.float32)
    cos, sin = rope_angles(np.arange(5), head_dim, 10000.0)

    def scores(w_q, w_k, neox):
        q = apply_rope((x @ w_q.T).reshape(5, n_heads, head_dim), cos, sin, neox)
        k = apply_rope((x @ w_k.T).reshape(5, n_heads, head_dim), cos, sin, neox)
        return np.einsum("qhd,khd->hqk", q, k)

    hf = scores(w_q_hf, w_k_hf, neox=True)
    gguf = scores(permute_hf_to_gguf(w_q_hf, n_heads), permute_hf_to_gguf(w_k_hf, n_heads), neox=False)
    np.testing.assert_allclose(gguf, hf, rtol=1e-4, atol=1e-4)
    wrong = scores(w_q_hf, w_k_hf, neox=False)  # the mistake the permutation prevents
    assert not np.allclose(wrong, hf, rtol=1e-2, atol=1e-2)


def test_permutation_interleaves_halves():
    w = np.arange(8, dtype=np.float32)[:, None]  # one head of 8 rows: halves [0..3] and [4..7]
    np.testing.assert_array_equal(permute_hf_to_gguf(w, 1)[:, 0], [0, 4, 1, 5, 2, 6, 3, 7])


def test_odd_rotation_count_is_rejected():
    with pytest.raises(ValueError, match="even"):
        rope_angles(np.arange(2), 7, 10000.0)
