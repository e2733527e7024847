"""bias_grad: the NumPy reference against explicit loops, then minigpt._core against it.

Read top to bottom: the reference (db = dout.sum(axis=0), added into db when given) against a loop
in float64; _core on shapes that leave every kind of column tail, adding into a given db and into a
view of a flat buffer (what Linear passes); bad input, which must raise and leave the process alive.
Every SIMD path and 1 and 2 threads: test_kernels_simd_paths.py. bias_grad is linear in dout, the
backward of adding a bias to every row: its own gradient check is Linear's (test_linear.py).
"""
import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels


def test_reference_matches_loops():
    dout = np.random.default_rng(0).standard_normal((5, 3))
    expected = [sum(dout[r, c] for r in range(5)) for c in range(3)]
    np.testing.assert_allclose(kernels.bias_grad(dout), expected, rtol=1e-14)
    db = np.ones(3)
    assert kernels.bias_grad(dout, db) is db
    np.testing.assert_allclose(db, np.add(expected, 1.0), rtol=1e-14)


# (N, C): one row, columns below one vector, whole blocks of 64 and ragged ends, two thread blocks
@requires_core
@pytest.mark.parametrize("N, C", [(1, 1), (3, 7), (1000, 3), (17, 64), (33, 65), (9, 129), (4096, 128), (300, 1000)])
def test_core_matches_reference(N, C):
    rng = np.random.default_rng(N * 1000 + C)
    dout = rng.standard_normal((N, C)).astype(np.float32)
    expected = kernels.bias_grad(dout.astype(np.float64))
    np.testing.assert_allclose(kernels.bias_grad(dout, backend="cpu"), expected, rtol=1e-5, atol=1e-5 * np.sqrt(N))
    db = rng.standard_normal(C).astype(np.float32)
    before = db.astype(np.float64)
    assert kernels.bias_grad(dout, db, backend="cpu") is db  # added into, in place
    np.testing.assert_allclose(db, before + expected, rtol=1e-5, atol=1e-5 * np.sqrt(N))


@requires_core
def test_core_adds_into_a_view_of_a_flat_buffer():
    flat = np.zeros(10 + 130, np.float32)  # other gradients first, as in the model's flat buffer
    view = flat[10:]
    dout = np.ones((4, 130), np.float32)
    kernels.bias_grad(dout, view, backend="cpu")
    assert (flat[:10] == 0).all() and (flat[10:] == 4).all()


D = np.ones((3, 4), np.float32)
BAD = [  # (dout, db), the error, words the message must contain
    ((D.astype(np.float64), None), TypeError, "dout must be float32, got float64"),
    ((np.ones((3, 8), np.float32)[:, ::2], None), TypeError, "dout must be C-contiguous"),
    ((D[0], None), ValueError, r"dout must be 2-D \(N, C\)"),
    ((D, np.ones(3, np.float32)), ValueError, r"db must have shape \(C,\) = \(4,\) from dout \(3, 4\)"),
    ((D, np.ones(4, np.float64)), TypeError, "db must be float32"),
]


@requires_core
@pytest.mark.parametrize("args, error, message", BAD)
def test_core_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.bias_grad(*args, backend="cpu")
    readonly = np.zeros(4, np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="db must be writeable"):
        kernels.bias_grad(D, readonly, backend="cpu")
    np.testing.assert_array_equal(kernels.bias_grad(D, backend="cpu"), [3, 3, 3, 3])  # the process survives
