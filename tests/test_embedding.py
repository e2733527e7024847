"""Embedding: lookup forward, scatter-add backward (repeated ids accumulate), range checks."""
import numpy as np
import pytest

from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import Embedding, embedding_backward, embedding_forward


def test_forward_is_row_lookup(rng):
    w = rng.standard_normal((7, 3))
    idx = np.array([[0, 6, 2], [2, 2, 5]])
    out, _ = embedding_forward(idx, w)
    assert out.shape == (2, 3, 3)
    assert np.array_equal(out[1, 2], w[5]) and np.array_equal(out[0, 1], w[6])


def test_backward_matches_finite_differences_with_repeats(rng):
    w = rng.standard_normal((7, 3))
    idx = np.array([[0, 6, 2], [2, 2, 5]])  # id 2 three times
    dout = rng.standard_normal((2, 3, 3))
    _, cache = embedding_forward(idx, w)
    dw = embedding_backward(dout, cache)
    assert rel_error(dw, numerical_gradient(lambda: embedding_forward(idx, w)[0], w, dout)) < 1e-8
    assert np.allclose(dw[2], dout[0, 2] + dout[1, 0] + dout[1, 1])


@pytest.mark.parametrize("bad", [7, -1])
def test_out_of_range_ids(rng, bad):
    with pytest.raises(ValueError, match="out of range"):
        embedding_forward(np.array([[0, bad]]), rng.standard_normal((7, 3)))


def test_backward_adds_into_a_given_gradient(rng):
    idx = np.array([[1, 1, 4]])
    dout = rng.standard_normal((1, 3, 2))
    _, cache = embedding_forward(idx, rng.standard_normal((5, 2)))
    dw = np.ones((5, 2))
    assert embedding_backward(dout, cache, dw=dw) is dw
    assert np.allclose(dw, 1 + embedding_backward(dout, cache))


def test_class_float32(rng):
    e = Embedding(5, 4, rng, dtype=np.float32)
    out = e.forward(np.array([[1, 1]]))
    e.backward(np.ones_like(out))
    assert out.dtype == np.float32 and np.allclose(e.grads["weight"][1], 2.0)


@pytest.mark.parametrize("shape", [(3, 50), (1, 1), (0, 4), (7,)])
def test_cpu_backward_groups_repeated_ids_like_add_at(shape):
    # the cpu backend sorts the rows by id and adds each run; np.add.at (the numpy backend) is the reference
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, shape)  # few ids: many repeats
    dout = rng.standard_normal(shape + (6,)).astype(np.float32)
    dw_ref = np.ones((5, 6), np.float32)
    dw_cpu = dw_ref.copy()
    kernels.embedding_backward(dw_ref, dout, idx, backend="numpy")
    kernels.embedding_backward(dw_cpu, dout, idx, backend="cpu")
    np.testing.assert_allclose(dw_cpu, dw_ref, rtol=1e-6, atol=1e-6)
