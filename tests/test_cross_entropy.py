"""Softmax cross-entropy: forward against log-softmax by definition, stability, ignore mask, finite differences."""
import numpy as np
import pytest

from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import cross_entropy_backward, cross_entropy_forward


def test_forward_matches_definition(rng):
    logits, targets = rng.standard_normal((2, 3, 5)), rng.integers(0, 5, (2, 3))
    loss, _ = cross_entropy_forward(logits, targets)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = -np.mean([np.log(p[b, t, targets[b, t]]) for b in range(2) for t in range(3)])
    assert np.isclose(loss, expected)


def test_uniform_logits_give_log_vocab():
    loss, _ = cross_entropy_forward(np.zeros((4, 65)), np.arange(4))
    assert np.isclose(loss, np.log(65))


def test_large_logits_are_stable():
    logits = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    loss, cache = cross_entropy_forward(logits, np.array([1]))
    assert np.isfinite(loss) and np.isclose(loss, 1000.0)
    assert np.all(np.isfinite(cross_entropy_backward(1.0, cache)))


def test_ignored_positions_add_nothing(rng):
    logits = rng.standard_normal((2, 4, 6))
    targets = rng.integers(0, 6, (2, 4))
    masked = targets.copy()
    masked[0, 1] = masked[1, 3] = -1
    loss, cache = cross_entropy_forward(logits, masked)
    keep = masked != -1
    ref, _ = cross_entropy_forward(logits[keep], targets[keep])
    assert np.isclose(loss, ref)
    dlogits = cross_entropy_backward(1.0, cache)
    assert np.all(dlogits[0, 1] == 0) and np.all(dlogits[1, 3] == 0)


def test_all_ignored_gives_zero():
    loss, cache = cross_entropy_forward(np.ones((1, 2, 3)), np.full((1, 2), -1))
    assert loss == 0 and np.all(cross_entropy_backward(1.0, cache) == 0)


def test_backward_matches_finite_differences(rng):
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, (2, 3))
    targets[1, 0] = -1
    _, cache = cross_entropy_forward(logits, targets)
    f = lambda: cross_entropy_forward(logits, targets)[0]
    assert rel_error(cross_entropy_backward(1.0, cache), numerical_gradient(f, logits, 1.0)) < 1e-8


def test_float32_stays_float32(rng):
    loss, cache = cross_entropy_forward(rng.standard_normal((3, 4)).astype(np.float32), np.array([0, 1, 2]))
    assert loss.dtype == np.float32 and cross_entropy_backward(1.0, cache).dtype == np.float32


def test_bad_targets():
    with pytest.raises(ValueError, match="targets must lie"):
        cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="targets must lie"):  # not padding: only ignore_index (-1) is
        cross_entropy_forward(np.zeros((2, 3)), np.array([0, -5]))
    with pytest.raises(TypeError, match="integers"):
        cross_entropy_forward(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="must match"):
        cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1, 2]))
