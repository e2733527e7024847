"""Fused cross-entropy kernels: the NumPy reference against log-softmax by definition and finite
differences; the C++ version against the reference, with ignored rows and large vocabularies; errors."""
import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error


def test_reference_forward_and_backward(rng):
    z = rng.standard_normal((5, 7))
    t = np.array([0, 6, -1, 3, 3])
    losses, lse = kernels.cross_entropy_forward(z, t)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    assert np.allclose(losses, [-logp[r, t[r]] if t[r] >= 0 else 0 for r in range(5)])
    dz = kernels.cross_entropy_backward(z, lse, t, 1.0)
    f = lambda: kernels.cross_entropy_forward(z, t)[0].sum()
    assert rel_error(dz, numerical_gradient(f, z, 1.0)) < 1e-8


@requires_core
@pytest.mark.parametrize("N, V", [(1, 1), (3, 65), (37, 50257), (130, 1000)])
def test_cpu_matches_numpy(rng, N, V):
    z = (rng.standard_normal((N, V)) * 3).astype(np.float32)
    t = rng.integers(0, V, N)
    t[::3] = -1  # padded rows
    ref = kernels.cross_entropy_forward(z, t)
    got = kernels.cross_entropy_forward(z, t, backend="cpu")
    for g, r in zip(got, ref):
        assert np.allclose(g, r, rtol=1e-5, atol=1e-5)
    ref_dz = kernels.cross_entropy_backward(z, ref[1], t, 0.25)
    got_dz = kernels.cross_entropy_backward(z, got[1], t, 0.25, backend="cpu")
    assert np.allclose(got_dz, ref_dz, rtol=1e-4, atol=1e-7)
    assert np.all(got_dz[::3] == 0)


@requires_core
def test_cpu_ignores_every_negative_target_not_only_minus_one(rng):
    # A negative target marks a padded row, whatever its value (-100 is PyTorch's ignore_index): loss 0 and a
    # gradient of 0 there. A kernel that took only -1 for padding would subtract dloss at logits[r, -100], a
    # row further back, and leave the padded row's softmax in place.
    N, V = 6, 65
    z = (rng.standard_normal((N, V)) * 3).astype(np.float32)
    t = np.array([3, -100, 64, -1, 0, -7])
    counted = t >= 0
    z64 = z.astype(np.float64)
    lse64 = np.log(np.exp(z64).sum(1))
    losses, lse = kernels.cross_entropy_forward(z, t, backend="cpu")
    np.testing.assert_allclose(losses, np.where(counted, lse64 - z64[np.arange(N), np.where(counted, t, 0)], 0.0),
                               rtol=1e-5, atol=1e-6)
    dz = kernels.cross_entropy_backward(z, lse, t, 0.25, backend="cpu")
    expected = np.exp(z64 - lse64[:, None])
    expected[np.arange(N)[counted], t[counted]] -= 1.0
    expected[~counted] = 0.0
    np.testing.assert_allclose(dz, 0.25 * expected, rtol=1e-4, atol=1e-7)


@requires_core
def test_cpu_errors():
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="out of range"):
        kernels.cross_entropy_forward(z, np.array([0, 3]), backend="cpu")
    with pytest.raises(TypeError, match="int64"):
        kernels.cross_entropy_forward(z, np.array([0, 1], np.int32), backend="cpu")
    with pytest.raises(ValueError, match="one per row"):
        kernels.cross_entropy_forward(z, np.array([0, 1, 2]), backend="cpu")
    with pytest.raises(TypeError, match="float32"):
        kernels.cross_entropy_forward(z.astype(np.float64), np.array([0, 1]), backend="cpu")
