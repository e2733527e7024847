"""Linear: forward against an explicit sum, backward against finite differences, C++ against NumPy."""
import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import Linear, linear_backward, linear_forward


def test_forward_matches_explicit_sum(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, _ = linear_forward(x, w, b)
    expected = np.einsum("btc,cd->btd", x, w) + b
    assert out.shape == (2, 3, 5)
    assert np.allclose(out, expected)


@pytest.mark.parametrize("with_bias", [True, False])
def test_backward_matches_finite_differences(rng, with_bias):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    b = rng.standard_normal(5) if with_bias else None
    dout = rng.standard_normal((2, 3, 5))
    _, cache = linear_forward(x, w, b)
    dx, dw, db = linear_backward(dout, cache)
    f = lambda: linear_forward(x, w, b)[0]
    assert rel_error(dx, numerical_gradient(f, x, dout)) < 1e-8
    assert rel_error(dw, numerical_gradient(f, w, dout)) < 1e-8
    if with_bias:
        assert rel_error(db, numerical_gradient(f, b, dout)) < 1e-8
    else:
        assert db is None


@requires_core
def test_cpu_backend_matches_numpy(rng):
    x = rng.standard_normal((3, 17, 33)).astype(np.float32)  # 51 rows, sizes that divide no tile
    w = rng.standard_normal((33, 65)).astype(np.float32)
    b = rng.standard_normal(65).astype(np.float32)
    dout = rng.standard_normal((3, 17, 65)).astype(np.float32)
    out_np, cache_np = linear_forward(x, w, b, backend="numpy")
    out_cpu, cache_cpu = linear_forward(x, w, b, backend="cpu")
    assert np.allclose(out_cpu, out_np, rtol=1e-5, atol=1e-5)
    for g_cpu, g_np in zip(linear_backward(dout, cache_cpu), linear_backward(dout, cache_np)):
        assert g_cpu.dtype == np.float32
        assert np.allclose(g_cpu, g_np, rtol=1e-4, atol=1e-4)


def test_class_accumulates_grads(rng):
    layer = Linear(4, 3, rng, dtype=np.float64)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    layer.forward(x)
    layer.backward(dout)
    layer.backward(dout)  # a second contribution adds, it does not overwrite
    assert np.allclose(layer.grads["weight"], 2 * x.T @ dout)
    assert np.allclose(layer.grads["bias"], 2 * dout.sum(0))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_backward_adds_the_bias_gradient_into_a_given_db(rng, backend):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 7, 4), (4, 33), (33,)))
    dout = rng.standard_normal((2, 7, 33)).astype(np.float32)
    _, cache = linear_forward(x, w, b, backend=backend)
    db = np.ones(33, dtype=np.float32)
    assert linear_backward(dout, cache, db=db)[2] is db  # in place: the layer passes its grads["bias"]
    np.testing.assert_allclose(db, 1 + dout.sum(axis=(0, 1)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kernels.bias_grad(dout.reshape(14, 33), backend=backend), dout.sum(axis=(0, 1)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="2-D"):
        kernels.bias_grad(dout, backend=backend)


def test_float32_stays_float32(rng):
    layer = Linear(4, 3, rng, dtype=np.float32)
    out = layer.forward(rng.standard_normal((2, 4)).astype(np.float32))
    assert out.dtype == np.float32
    assert layer.backward(np.ones_like(out)).dtype == np.float32


def test_wrong_feature_count_is_a_clear_error(rng):
    with pytest.raises(ValueError, match="features"):
        linear_forward(np.ones((2, 5)), np.ones((4, 3)), None)
