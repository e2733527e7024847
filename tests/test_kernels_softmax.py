"""softmax over the last axis: the NumPy reference, then minigpt._core against it.

Read top to bottom: the reference forward against explicit loops and its backward against
central finite differences (float64); _core forward and backward in float32 on awkward shapes
and on inputs large enough to overflow an unstabilised exp; empty rows; the same result on 1 and
2 OpenMP threads; bad input, which must raise TypeError/ValueError and leave the process alive.
"""
import math

import numpy as np
import pytest

from conftest import requires_core, run_with_threads
from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error


# ----------------------------------------------------------------------------- the NumPy reference

def test_reference_forward_matches_loops():
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    expected = np.empty_like(x)
    for index in np.ndindex(x.shape[:-1]):  # the textbook formula, one row at a time
        exps = [math.exp(value) for value in x[index]]
        expected[index] = [e / sum(exps) for e in exps]
    np.testing.assert_allclose(kernels.softmax_forward(x), expected, rtol=1e-13, atol=0)


def test_reference_forward_is_stable():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])  # exp(1000) overflows
    y = kernels.softmax_forward(x)
    # softmax ignores a constant shift of a row, so both rows equal softmax([0, 1, 2]) up to order
    expected = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(y, [expected, expected[::-1]], rtol=1e-13)


def test_reference_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5))
    dy = rng.standard_normal((2, 3, 5))  # a random upstream gradient
    dx = kernels.softmax_backward(dy, kernels.softmax_forward(x))
    dx_num = numerical_gradient(lambda: kernels.softmax_forward(x), x, dy)
    assert rel_error(dx, dx_num) < 1e-6


# ----------------------------------------------------------------------------- _core against the reference

SHAPES = [(1,), (7,), (1, 1), (3, 33), (2, 5, 65), (130, 130), (4, 1000)]


@requires_core
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 100.0])  # 100: logits whose exp overflows float32
def test_core_matches_reference(shape, scale):
    rng = np.random.default_rng(len(shape) * 1000 + shape[-1])
    x = (scale * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)

    y = kernels.softmax_forward(x, backend="cpu")
    y64 = kernels.softmax_forward(x.astype(np.float64))
    assert y.dtype == np.float32 and y.shape == shape
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-7)

    dx = kernels.softmax_backward(dy, y, backend="cpu")
    dx64 = kernels.softmax_backward(dy.astype(np.float64), y.astype(np.float64))
    assert dx.dtype == np.float32 and dx.shape == shape
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-6)


@requires_core
@pytest.mark.parametrize("N", [1, 7, 16, 33, 65, 200])  # tails of every SIMD width, whole vectors, both
def test_core_masked_and_underflowing_entries(N):
    # -inf (a masked score) must give exactly 0, and so must scores more than ~87 below the row max,
    # where exp underflows float32; the rest must still match the float64 reference.
    rng = np.random.default_rng(N)
    x = rng.uniform(-200.0, 0.0, (4, N)).astype(np.float32)
    x[:, 0] = 0.0  # the row max
    x[:, 1::3] = -np.inf
    y = kernels.softmax_forward(x, backend="cpu")
    truth = kernels.softmax_forward(x.astype(np.float64))
    assert np.all(y[:, 1::3] == 0.0)
    assert np.all(y[x < -90.0] == 0.0)
    np.testing.assert_allclose(y, truth, rtol=1e-5, atol=1e-30)
    targets = np.zeros(4, np.int64)
    losses, lse = kernels.cross_entropy_forward(x, targets, backend="cpu")
    np.testing.assert_allclose(lse, kernels.cross_entropy_forward(x.astype(np.float64), targets)[1], atol=1e-6)
    dlogits = kernels.cross_entropy_backward(x, lse, targets, 1.0, backend="cpu")
    assert np.all(dlogits[:, 1::3] == 0.0)


@requires_core
@pytest.mark.parametrize("shape", [(0, 5), (2, 0, 7), (0,)])
def test_core_empty_rows(shape):
    x = np.zeros(shape, dtype=np.float32)
    assert kernels.softmax_forward(x, backend="cpu").shape == shape
    assert kernels.softmax_backward(x, x, backend="cpu").shape == shape


# ----------------------------------------------------------------------------- threads

THREADS_SCRIPT = """
import sys
import numpy as np
from minigpt import kernels
rng = np.random.default_rng(2)
x = rng.standard_normal((37, 130)).astype(np.float32)
dy = rng.standard_normal((37, 130)).astype(np.float32)
y = kernels.softmax_forward(x, backend="cpu")
dx = kernels.softmax_backward(dy, y, backend="cpu")
np.savez(sys.argv[1], num_threads=kernels.core_info()["num_threads"], x=x, dy=dy, y=y, dx=dx)
"""



@requires_core
def test_core_same_result_on_1_and_2_threads(tmp_path):
    one, two = (run_with_threads(THREADS_SCRIPT, threads, tmp_path) for threads in (1, 2))
    if kernels.core_info()["openmp"]:
        assert (int(one["num_threads"]), int(two["num_threads"])) == (1, 2)
    y64 = kernels.softmax_forward(one["x"].astype(np.float64))
    np.testing.assert_allclose(one["y"], y64, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(one["dx"], kernels.softmax_backward(one["dy"].astype(np.float64), one["y"]),
                               rtol=1e-4, atol=1e-6)
    # rows are independent and each is summed by one thread, so the thread count changes nothing
    np.testing.assert_array_equal(two["y"], one["y"])
    np.testing.assert_array_equal(two["dx"], one["dx"])


# ----------------------------------------------------------------------------- bad input

X = np.ones((3, 4), dtype=np.float32)

BAD_FORWARD = [  # x, the error, words the message must contain
    (X.astype(np.float64), TypeError, "x must be float32, got float64"),
    (X.astype(np.int64), TypeError, "x must be float32, got int64"),
    (np.ones((3, 8), np.float32)[:, ::2], TypeError, "x must be C-contiguous"),
    (X.T, TypeError, "x must be C-contiguous"),
    (np.array(1.0, dtype=np.float32), ValueError, "x must have at least 1 dimension"),
]


@requires_core
@pytest.mark.parametrize("x, error, message", BAD_FORWARD)
def test_core_forward_rejects_bad_input(x, error, message):
    with pytest.raises(error, match=message):
        kernels.softmax_forward(x, backend="cpu")
    np.testing.assert_allclose(kernels.softmax_forward(X, backend="cpu"), np.full((3, 4), 0.25))  # still alive


BAD_BACKWARD = [  # dy, y, the error, words the message must contain
    (X.astype(np.float64), X, TypeError, "dy must be float32, got float64"),
    (X, X.astype(np.float16), TypeError, "y must be float32, got float16"),
    (X, np.ones((4, 6), np.float32)[::-1, :4], TypeError, "y must be C-contiguous"),
    (X[:, :3].copy(), X, ValueError, r"dy must have the shape of y \(3, 4\), got \(3, 3\)"),
    (X[None], X, ValueError, "dy must have the shape of y"),
    (np.array(1.0, np.float32), np.array(1.0, np.float32), ValueError, "y must have at least 1 dimension"),
]


@requires_core
@pytest.mark.parametrize("dy, y, error, message", BAD_BACKWARD)
def test_core_backward_rejects_bad_input(dy, y, error, message):
    with pytest.raises(error, match=message):
        kernels.softmax_backward(dy, y, backend="cpu")
    np.testing.assert_array_equal(kernels.softmax_backward(X, X, backend="cpu"), np.full((3, 4), -3.0))
