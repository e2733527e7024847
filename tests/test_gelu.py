"""GELU (tanh form): forward against known values and the exact erf GELU, backward against finite differences."""
import math

import numpy as np

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
