"""matmul: the NumPy reference against einsum, then minigpt._core against the reference.

Read top to bottom: the reference forward against an independent formula (float64); _core in
float32 on shapes that divide no unroll or tile size, every transpose variant, with and without
bias; empty sizes; the same result on 1 and 2 OpenMP threads; a property test over shapes; and
bad input, which must raise TypeError/ValueError and leave the process alive. matmul is linear,
so its backward is matmul with other flags and needs no finite-difference check of its own.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import requires_core
from minigpt import kernels

VARIANTS = [(False, False), (False, True), (True, False), (True, True)]  # (trans_a, trans_b)


def make_operands(rng, M, N, K, trans_a, trans_b, dtype=np.float32):
    """a, b stored the way the flags say (a (K, M) when trans_a, b (N, K) when trans_b), and a bias (N,)."""
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    return a, b, bias


def reference64(a, b, trans_a, trans_b, bias):
    """The NumPy reference in float64 on the same values: the yardstick for float32 results."""
    bias = None if bias is None else bias.astype(np.float64)
    return kernels.matmul(a.astype(np.float64), b.astype(np.float64), trans_a, trans_b, bias)


# ----------------------------------------------------------------------------- the NumPy reference

@pytest.mark.parametrize("trans_a, trans_b", VARIANTS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_reference_matches_einsum(trans_a, trans_b, with_bias):
    rng = np.random.default_rng(0)
    a, b, bias = make_operands(rng, 5, 7, 3, trans_a, trans_b, np.float64)
    # einsum reads the flags as index order, independently of any transpose
    expected = np.einsum(f"{'km' if trans_a else 'mk'},{'nk' if trans_b else 'kn'}->mn", a, b)
    if with_bias:
        expected = expected + bias
    out = kernels.matmul(a, b, trans_a, trans_b, bias if with_bias else None)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- _core against the reference

SHAPES = [(1, 1, 1), (7, 33, 65), (65, 7, 130), (130, 65, 33), (33, 130, 7), (1, 65, 130)]  # (M, N, K)


@requires_core
@pytest.mark.parametrize("M, N, K", SHAPES)
@pytest.mark.parametrize("trans_a, trans_b", VARIANTS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_core_matches_reference(M, N, K, trans_a, trans_b, with_bias):
    rng = np.random.default_rng(M * 10000 + N * 100 + K)
    a, b, bias = make_operands(rng, M, N, K, trans_a, trans_b)
    bias = bias if with_bias else None
    expected = reference64(a, b, trans_a, trans_b, bias)
    out = kernels.matmul(a, b, trans_a, trans_b, bias, backend="cpu")
    assert out.dtype == np.float32 and out.shape == (M, N)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    # the triple-loop teaching version gives the same answer
    naive = kernels._core.matmul_naive(a, b, trans_a, trans_b, bias)
    np.testing.assert_allclose(naive, expected, rtol=1e-5, atol=1e-4)


@requires_core
@pytest.mark.parametrize("M, N, K", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)])
@pytest.mark.parametrize("trans_a, trans_b", VARIANTS)
def test_core_empty_sizes(M, N, K, trans_a, trans_b):
    a, b, bias = make_operands(np.random.default_rng(0), M, N, K, trans_a, trans_b)
    out = kernels.matmul(a, b, trans_a, trans_b, bias, backend="cpu")
    assert out.shape == (M, N)
    np.testing.assert_array_equal(out, np.broadcast_to(bias, (M, N)))  # with K = 0 only the bias is left


# ----------------------------------------------------------------------------- threads

THREADS_SCRIPT = """
import sys
import numpy as np
from minigpt import kernels
rng = np.random.default_rng(1)
saved = {"num_threads": kernels.core_info()["num_threads"]}
for trans_a, trans_b in [(False, False), (False, True), (True, False), (True, True)]:
    name = f"{int(trans_a)}{int(trans_b)}"
    a = rng.standard_normal((70, 33) if trans_a else (33, 70)).astype(np.float32)  # M = 33, K = 70
    b = rng.standard_normal((65, 70) if trans_b else (70, 65)).astype(np.float32)  # N = 65
    bias = rng.standard_normal(65).astype(np.float32)
    saved.update({"a" + name: a, "b" + name: b, "bias" + name: bias,
                  "out" + name: kernels.matmul(a, b, trans_a, trans_b, bias, backend="cpu")})
np.savez(sys.argv[1], **saved)
"""


def run_with_threads(script, threads, tmp_path):
    """Run `script` in a fresh interpreter with OMP_NUM_THREADS=threads; return the arrays it saved."""
    path = tmp_path / f"threads{threads}.npz"
    package_root = os.path.dirname(os.path.dirname(kernels.__file__))  # so the child imports this minigpt
    pythonpath = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join(pythonpath))
    # cwd=tmp_path: from the repository root, the child would import the source tree, which has no _core
    result = subprocess.run([sys.executable, "-c", script, str(path)], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(np.load(path))


@requires_core
def test_core_same_result_on_1_and_2_threads(tmp_path):
    runs = {threads: run_with_threads(THREADS_SCRIPT, threads, tmp_path) for threads in (1, 2)}
    if kernels.core_info()["openmp"]:
        assert [int(runs[t]["num_threads"]) for t in (1, 2)] == [1, 2]
    for trans_a, trans_b in VARIANTS:
        name = f"{int(trans_a)}{int(trans_b)}"
        run = runs[1]
        expected = reference64(run["a" + name], run["b" + name], trans_a, trans_b, run["bias" + name])
        np.testing.assert_allclose(run["out" + name], expected, rtol=1e-5, atol=1e-4)
        # each element is summed by one thread in one order, so the thread count changes nothing
        np.testing.assert_array_equal(runs[2]["out" + name], run["out" + name])


# ----------------------------------------------------------------------------- property test

@requires_core
@settings(max_examples=30, deadline=None)
@given(M=st.integers(0, 40), N=st.integers(0, 40), K=st.integers(0, 40), trans_a=st.booleans(),
       trans_b=st.booleans(), with_bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_core_matches_reference_on_any_shape(M, N, K, trans_a, trans_b, with_bias, seed):
    a, b, bias = make_operands(np.random.default_rng(seed), M, N, K, trans_a, trans_b)
    bias = bias if with_bias else None
    out = kernels.matmul(a, b, trans_a, trans_b, bias, backend="cpu")
    assert out.shape == (M, N)
    np.testing.assert_allclose(out, reference64(a, b, trans_a, trans_b, bias), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- bad input

A = np.ones((4, 6), dtype=np.float32)  # (M, K)
B = np.ones((6, 5), dtype=np.float32)  # (K, N)
BIAS = np.ones(5, dtype=np.float32)  # (N,)

BAD_INPUTS = [  # (a, b, trans_a, trans_b, bias), the error, words the message must contain
    ((A.astype(np.float64), B, False, False, None), TypeError, "a must be float32, got float64"),
    ((A, B.astype(np.int32), False, False, None), TypeError, "b must be float32, got int32"),
    ((A, B, False, False, BIAS.astype(np.float64)), TypeError, "bias must be float32"),
    ((np.ones((4, 12), np.float32)[:, ::2], B, False, False, None), TypeError, "a must be C-contiguous"),
    ((np.ones((6, 4), np.float32).T, B, False, False, None), TypeError, "a must be C-contiguous"),
    ((A, np.ones((5, 6), np.float32).T, False, False, None), TypeError, "b must be C-contiguous"),
    (([[1.0] * 6] * 4, B, False, False, None), TypeError, "incompatible function arguments"),
    ((A[0], B, False, False, None), ValueError, "a must be 2-D"),
    ((A, B[None], False, False, None), ValueError, "b must be 2-D"),
    ((A, B, True, False, None), ValueError, "inner sizes differ"),
    ((A, B, False, True, None), ValueError, "inner sizes differ"),
    ((A, B, False, False, np.ones(4, np.float32)), ValueError, r"bias must have shape \(N,\) = \(5,\)"),
    ((A, B, False, False, BIAS[None]), ValueError, "bias must have shape"),
]


@requires_core
@pytest.mark.parametrize("args, error, message", BAD_INPUTS)
def test_core_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.matmul(*args, backend="cpu")
    # the process survives and the next call works
    np.testing.assert_array_equal(kernels.matmul(A, B, backend="cpu"), np.full((4, 5), 6.0, np.float32))
