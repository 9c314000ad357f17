import numpy as np
import pytest

from lessons.l04_rmsnorm import rmsnorm


def rmsnorm_oracle(x, weight, eps):
    """RMSNorm from its definition, in float64: x * sqrt(n) / ||x|| when eps = 0."""
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).sum(-1, keepdims=True) / x.shape[-1] + eps) * weight


@pytest.mark.parametrize("value", [3.0, -3.0, 0.25, 1e4])
def test_constant_vector_becomes_the_weight(value):
    # worked example of the docstring: a constant row has RMS |c|, so it normalizes to sign(c) * weight
    weight = np.array([1, 2, 3, 4], np.float32)
    out = rmsnorm(np.full((2, 4), value, np.float32), weight, eps=0.0)
    np.testing.assert_allclose(out, np.sign(value) * np.broadcast_to(weight, (2, 4)), rtol=1e-6)


def test_matches_definition_on_random_rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 576)).astype(np.float32) * 3
    w = rng.standard_normal(576).astype(np.float32)
    out = rmsnorm(x, w, 1e-5)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, rmsnorm_oracle(x, w, 1e-5), rtol=1e-5, atol=1e-6)


def test_unit_rms_and_scale_invariance():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    ones = np.ones(64, np.float32)
    out = rmsnorm(x, ones, 0.0)
    np.testing.assert_allclose(np.sqrt(np.mean(out.astype(np.float64) ** 2, -1)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(rmsnorm(x * 1000, ones, 0.0), out, rtol=1e-5, atol=1e-6)


def test_eps_keeps_zero_vector_finite():
    out = rmsnorm(np.zeros((1, 8), np.float32), np.ones(8, np.float32), 1e-5)
    assert np.all(out == 0)


def test_docstring_examples():
    import doctest

    import lessons.l04_rmsnorm as module

    result = doctest.testmod(module)
    assert result.attempted >= 1 and result.failed == 0
