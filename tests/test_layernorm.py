"""LayerNorm: forward against the definition, backward against finite differences."""
import numpy as np

from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import LayerNorm, layernorm_backward, layernorm_forward


def test_forward_matches_definition(rng):
    x, w, b = rng.standard_normal((2, 3, 8)) * 3 + 1, rng.standard_normal(8), rng.standard_normal(8)
    out, _ = layernorm_forward(x, w, b)
    mu = x.mean(-1, keepdims=True)
    sigma2 = ((x - mu) ** 2).sum(-1, keepdims=True) / x.shape[-1]
    assert np.allclose(out, (x - mu) / np.sqrt(sigma2 + 1e-5) * w + b)


def test_normalised_rows_have_zero_mean_unit_variance(rng):
    x = rng.standard_normal((4, 16)) * 5 - 2
    out, _ = layernorm_forward(x, np.ones(16), np.zeros(16))
    assert np.allclose(out.mean(-1), 0, atol=1e-12)
    assert np.allclose(out.var(-1), 1, atol=1e-3)


def test_backward_matches_finite_differences(rng):
    x, w, b = rng.standard_normal((2, 3, 8)), rng.standard_normal(8), rng.standard_normal(8)
    dout = rng.standard_normal((2, 3, 8))
    _, cache = layernorm_forward(x, w, b)
    dx, dw, db = layernorm_backward(dout, cache)
    f = lambda: layernorm_forward(x, w, b)[0]
    for analytic, param in ((dx, x), (dw, w), (db, b)):
        assert rel_error(analytic, numerical_gradient(f, param, dout)) < 1e-8


def test_class_float32_and_accumulation(rng):
    ln = LayerNorm(8, dtype=np.float32)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    out = ln.forward(x)
    assert out.dtype == np.float32
    dx = ln.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and ln.grads["bias"].dtype == np.float32
    assert np.allclose(ln.grads["bias"], 3.0)
    # a second backward adds (gradient accumulation, a weight used twice): gain and bias both
    x2, dout2 = rng.standard_normal((3, 8)).astype(np.float32), rng.standard_normal((3, 8)).astype(np.float32)
    gain_first = ln.grads["weight"].copy()
    ln.forward(x2)
    ln.backward(dout2)
    alone = LayerNorm(8, dtype=np.float32)
    alone.forward(x2)
    alone.backward(dout2)
    assert np.allclose(ln.grads["bias"], 3.0 + alone.grads["bias"])
    assert np.allclose(ln.grads["weight"], gain_first + alone.grads["weight"])
