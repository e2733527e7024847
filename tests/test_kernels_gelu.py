"""GELU kernels: the C++ version (with its vectorised tanh) against the NumPy reference, errors."""
import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels

pytestmark = requires_core


@pytest.mark.parametrize("n", [1, 7, 33, 1000, 100_003])
def test_matches_numpy(rng, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    x[:3] = [0.0, 30.0, -30.0][: min(3, n)]  # the saturated tails
    dout = rng.standard_normal(n).astype(np.float32)
    x64, dout64 = x.astype(np.float64), dout.astype(np.float64)  # the truth, to float32 precision
    assert np.allclose(kernels.gelu_forward(x, backend="cpu"), kernels.gelu_forward(x64), rtol=1e-5, atol=1e-6)
    # In the far negative tail gelu' is about 1e-6 and tanh rounds to -1 in float32: an absolute error
    # of a few 1e-6 there, which NumPy's own float32 tanh shows as well.
    assert np.allclose(kernels.gelu_backward(dout, x, backend="cpu"), kernels.gelu_backward(dout64, x64),
                       rtol=1e-5, atol=5e-6)


def test_any_shape_and_errors(rng):
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    assert kernels.gelu_forward(x, backend="cpu").shape == (2, 3, 5)
    with pytest.raises(TypeError, match="float32"):
        kernels.gelu_forward(x.astype(np.float64), backend="cpu")
    with pytest.raises(ValueError, match="shape"):
        kernels.gelu_backward(x[0].copy(), x, backend="cpu")
