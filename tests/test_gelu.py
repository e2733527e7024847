"""GELU (tanh form): forward against known values and the exact erf GELU, backward against finite differences."""
import math

import numpy as np
import pytest

from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import GELU, gelu_backward, gelu_forward


def test_forward_known_values():
    out, _ = gelu_forward(np.array([0.0, 1.0, -1.0, 10.0, -10.0]))
    # 0.5 * 1 * (1 + tanh(sqrt(2/pi) * 1.044715)) = 0.8411919906...
    assert np.allclose(out, [0.0, 0.8411919906082768, -0.15880800939172324, 10.0, 0.0], atol=1e-12)


def test_forward_close_to_exact_erf_gelu():
    x = np.linspace(-6, 6, 1001)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.abs(gelu_forward(x)[0] - exact).max() < 1e-3  # the tanh form is an approximation


def test_backward_matches_finite_differences(rng):
    x, dout = rng.standard_normal((3, 7)) * 2, rng.standard_normal((3, 7))
    _, cache = gelu_forward(x)
    assert rel_error(gelu_backward(dout, cache), numerical_gradient(lambda: gelu_forward(x)[0], x, dout)) < 1e-8


def test_class_keeps_dtype(rng):
    g = GELU()
    out = g.forward(rng.standard_normal(5).astype(np.float32))
    assert out.dtype == np.float32 and g.backward(np.ones_like(out)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_far_ends_give_the_limits(dtype):
    # 0 and slope 0 far left, x and slope 1 far right, for any size of x: x^3 overflowed past 7e12 (float32),
    # which made the backward 0 * inf = NaN and gelu(-inf) NaN. NaN stays NaN.
    left, right = [-np.inf, -3e38, -1e30, -1e19, -1e4, -20.0], [20.0, 1e4, 1e19, 1e30, 3e38, np.inf]
    x = np.array(left + right + [np.nan], dtype=dtype)
    with np.errstate(all="raise"):  # no overflow on the way either
        out, cache = gelu_forward(x)
        dx = gelu_backward(np.full_like(x, 2.0), cache)
    n, m = len(left), len(left) + len(right)
    assert (out[:n] == 0).all() and (dx[:n] == 0).all()
    assert np.array_equal(out[n:m], x[n:m]) and (dx[n:m] == 2.0).all()
    assert np.isnan(out[m]) and np.isnan(dx[m])
