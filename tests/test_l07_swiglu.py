import math

import numpy as np
import pytest

from lessons.l07_swiglu import silu, swiglu_ffn


def test_worked_example():
    one = lambda v: np.array([[v]], np.float32)  # noqa: E731
    out = swiglu_ffn(one(1), one(1), one(2), one(3))
    assert out[0, 0] == pytest.approx(3 * 2 * (1 / (1 + math.exp(-1))), rel=1e-6)


@pytest.mark.parametrize("z", [-1000.0, -90.0, -1.278, 0.0, 0.5, 30.0, 1000.0])
def test_silu_matches_definition_and_never_warns(z):
    x = np.array([z], np.float32)
    expected = z * (1 / (1 + math.exp(-z))) if z > -700 else 0.0
    np.testing.assert_allclose(silu(x), [expected], rtol=1e-6, atol=1e-30)


def test_silu_minimum():
    z = np.linspace(-3, 0, 30001, dtype=np.float64)
    s = silu(z)
    assert z[np.argmin(s)] == pytest.approx(-1.2785, abs=1e-3)
    assert s.min() == pytest.approx(-0.2785, abs=1e-3)


def test_ffn_matches_elementwise_oracle():
    rng = np.random.default_rng(0)
    n, d, ff = 3, 8, 12
    x = rng.standard_normal((n, d)).astype(np.float32)
    wg, wu = rng.standard_normal((ff, d)).astype(np.float32), rng.standard_normal((ff, d)).astype(np.float32)
    wd = rng.standard_normal((d, ff)).astype(np.float32)
    expected = np.zeros((n, d))
    for t in range(n):  # loops over scalars: the formula written out
        hidden = [0.0] * ff
        for j in range(ff):
            g = sum(float(wg[j, i]) * float(x[t, i]) for i in range(d))
            u = sum(float(wu[j, i]) * float(x[t, i]) for i in range(d))
            hidden[j] = g / (1 + math.exp(-g)) * u
        for o in range(d):
            expected[t, o] = sum(float(wd[o, j]) * hidden[j] for j in range(ff))
    np.testing.assert_allclose(swiglu_ffn(x, wg, wu, wd), expected, rtol=1e-4, atol=1e-5)


def test_docstring_examples():
    import doctest

    import lessons.l07_swiglu as module

    result = doctest.testmod(module)
    assert result.attempted >= 1 and result.failed == 0
