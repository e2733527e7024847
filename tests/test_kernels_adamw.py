"""The fused AdamW update: the C++ version against the NumPy reference over several steps, errors."""
import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels

pytestmark = requires_core


@pytest.mark.parametrize("shape, wd", [((1,), 0.0), ((7, 33), 0.1), ((100_003,), 0.01)])
def test_matches_numpy_over_steps(rng, shape, wd):
    p_ref = rng.standard_normal(shape).astype(np.float32)
    m_ref, v_ref = np.zeros_like(p_ref), np.zeros_like(p_ref)
    p, m, v = p_ref.copy(), m_ref.copy(), v_ref.copy()
    for t in range(1, 6):
        g = rng.standard_normal(shape).astype(np.float32)
        args = (1e-2, 0.9, 0.95, 1e-8, wd, 1 - 0.9**t, 1 - 0.95**t)
        kernels.adamw_update(p_ref, m_ref, v_ref, g, *args)
        kernels.adamw_update(p, m, v, g, *args, backend="cpu")
    for got, ref in ((p, p_ref), (m, m_ref), (v, v_ref)):
        assert np.allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_errors():
    p = np.ones(4, np.float32)
    args = (1e-3, 0.9, 0.99, 1e-8, 0.0, 0.1, 0.01)
    with pytest.raises(ValueError, match="shape"):
        kernels.adamw_update(p, p.copy(), p.copy(), np.ones(5, np.float32), *args, backend="cpu")
    with pytest.raises(TypeError, match="float32"):
        kernels.adamw_update(p.astype(np.float64), p.copy(), p.copy(), p.copy(), *args, backend="cpu")
    frozen = p.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        kernels.adamw_update(frozen, p.copy(), p.copy(), p.copy(), *args, backend="cpu")
