"""Dropout: explicit generator and train flag; the mask scales by 1/(1-p); backward uses the same mask."""
import numpy as np
import pytest

from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import Dropout, dropout_backward, dropout_forward


def test_eval_and_p0_are_identity(rng):
    x = rng.standard_normal((4, 5))
    assert dropout_forward(x, 0.5, rng, train=False)[0] is x
    assert dropout_forward(x, 0.0, rng, train=True)[0] is x


def test_train_drops_fraction_p_and_keeps_expectation():
    x = np.ones((200, 500))
    out, _ = dropout_forward(x, 0.3, np.random.default_rng(0), train=True)
    kept = out != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    assert np.allclose(out[kept], 1 / 0.7)
    assert abs(out.mean() - 1.0) < 0.01


def test_same_seed_same_mask():
    x = np.ones((10, 10))
    a, _ = dropout_forward(x, 0.5, np.random.default_rng(7), train=True)
    b, _ = dropout_forward(x, 0.5, np.random.default_rng(7), train=True)
    assert np.array_equal(a, b)


def test_backward_matches_finite_differences(rng):
    x, dout = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    _, cache = dropout_forward(x, 0.4, np.random.default_rng(3), train=True)
    f = lambda: dropout_forward(x, 0.4, np.random.default_rng(3), train=True)[0]  # same mask each call
    assert rel_error(dropout_backward(dout, cache), numerical_gradient(f, x, dout)) < 1e-8


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_probability(p):
    with pytest.raises(ValueError, match="p must be"):
        Dropout(p)


def test_class_keeps_dtype(rng):
    d = Dropout(0.5)
    out = d.forward(np.ones(100, dtype=np.float32), rng, train=True)
    assert out.dtype == np.float32 and d.backward(np.ones(100, dtype=np.float32)).dtype == np.float32
