"""LayerNorm kernels: the C++ version against the NumPy reference (float32, awkward widths), errors."""
import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels

pytestmark = requires_core


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 33), (130, 768), (4, 1, 65)])
def test_forward_and_backward_match_numpy(rng, shape):
    C = shape[-1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    ref = kernels.layernorm_forward(x, w, b, backend="numpy")
    got = kernels.layernorm_forward(x, w, b, backend="cpu")
    for g, r in zip(got, ref):
        assert g.shape == r.shape and np.allclose(g, r, rtol=1e-4, atol=1e-5)
    ref_grads = kernels.layernorm_backward(dout, x, *ref[1:], w, backend="numpy")
    got_grads = kernels.layernorm_backward(dout, x, *got[1:], w, backend="cpu")
    for g, r in zip(got_grads, ref_grads):
        assert np.allclose(g, r, rtol=1e-3, atol=1e-4)


def test_bad_input():
    x, w = np.ones((2, 4), np.float32), np.ones(4, np.float32)
    with pytest.raises(TypeError, match="float32"):
        kernels.layernorm_forward(x.astype(np.float64), w, w, backend="cpu")
    with pytest.raises(ValueError, match="w must have shape"):
        kernels.layernorm_forward(x, np.ones(3, np.float32), w, backend="cpu")
    with pytest.raises(TypeError, match="C-contiguous"):
        kernels.layernorm_forward(np.ones((4, 8), np.float32)[:, ::2], w, w, backend="cpu")
    out, mean, rstd = kernels.layernorm_forward(x, w, w, backend="cpu")
    with pytest.raises(ValueError, match="one value per row"):
        kernels.layernorm_backward(x, x, mean[:1], rstd, w, backend="cpu")
