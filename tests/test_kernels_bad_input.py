"""Bad input to the C++ kernels that no other test pins: cross_entropy_backward (untested), and the dtype,
shape and layout checks of LayerNorm, GELU and AdamW beyond the one or two cases their tests try.

Each case must raise TypeError/ValueError with a message naming the argument, before anything is written,
and the process must survive: the next valid call gives the right numbers (checked against a formula
written here, not against the kernel's own earlier output).
"""
import math

import numpy as np
import pytest

from conftest import requires_core
from minigpt import kernels

pytestmark = requires_core

F = np.float32
X = np.arange(8, dtype=F).reshape(2, 4) / 4  # (rows, C)
W = np.ones(4, F)
STRIDED = np.ones((2, 8), F)[:, ::2]  # (2, 4), not C-contiguous
STRIDED_1D = np.ones(8, F)[::2]  # (4,), not C-contiguous
Z = np.array([[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]], F)  # logits (N=2, V=3)
T = np.array([2, -1])  # the second row is padding
LSE = np.log(np.exp(Z.astype(np.float64)).sum(axis=1)).astype(F)


def cross_entropy_backward_truth(dloss):
    """dlogits = dloss * (softmax - onehot) on counted rows, 0 on padded ones: the formula, in float64."""
    p = np.exp(Z.astype(np.float64) - LSE.astype(np.float64)[:, None])
    p[0, 2] -= 1.0
    p[1] = 0.0
    return p * dloss


CE_BACKWARD = [  # (logits, lse, targets), the error, words the message must contain
    ((Z.astype(np.float64), LSE, T), TypeError, "cross_entropy_backward: logits must be float32, got float64"),
    ((np.ones((2, 6), F)[:, ::2], LSE, T), TypeError, "logits must be C-contiguous"),
    ((Z[0].copy(), LSE, T), ValueError, r"logits must be 2-D \(N, V\)"),
    ((Z, LSE.astype(np.float64), T), TypeError, "lse must be float32, got float64"),
    ((Z, LSE[:1].copy(), T), ValueError, r"lse must have shape \(2,\), got \(1,\)"),
    ((Z, LSE, np.array([2, 1], np.int32)), TypeError, "targets must be int64, got int32"),
    ((Z, LSE, np.array([0, 1, 2])), ValueError, r"targets must be a contiguous \(2,\) array, one per row"),
    ((Z, LSE, np.array([0, 3])), ValueError, "target 3 at row 1 is out of range for 3 classes"),
]


@pytest.mark.parametrize("args, error, message", CE_BACKWARD)
def test_cross_entropy_backward_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.cross_entropy_backward(*args, 0.5, backend="cpu")
    got = kernels.cross_entropy_backward(Z, LSE, T, 0.5, backend="cpu")  # the process survives
    np.testing.assert_allclose(got, cross_entropy_backward_truth(0.5), rtol=1e-6, atol=1e-7)


def test_cross_entropy_forward_rejects_strided_logits():
    with pytest.raises(TypeError, match="cross_entropy_forward: logits must be C-contiguous"):
        kernels.cross_entropy_forward(np.ones((2, 6), F)[:, ::2], T, backend="cpu")
    losses, lse = kernels.cross_entropy_forward(Z, T, backend="cpu")
    np.testing.assert_allclose(lse, LSE, rtol=1e-6)
    np.testing.assert_allclose(losses, [LSE[0] - 2.0, 0.0], rtol=1e-6)


def layernorm_truth(x, w, b):
    x = x.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * w + b


LN_FORWARD = [  # (x, w, b), the error, words the message must contain
    ((X, W, np.ones(3, F)), ValueError, r"layernorm_forward: b must have shape \(4,\), got \(3,\)"),
    ((X, W, W.astype(np.float64)), TypeError, "b must be float32, got float64"),
    ((X, W.astype(np.float16), W), TypeError, "w must be float32, got float16"),
    ((X, STRIDED_1D, W), TypeError, "w must be C-contiguous"),
    ((np.array(1.0, F), W[:1].copy(), W[:1].copy()), ValueError, "x must have at least 1 dimension"),
]


@pytest.mark.parametrize("args, error, message", LN_FORWARD)
def test_layernorm_forward_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.layernorm_forward(*args, backend="cpu")
    out, _, _ = kernels.layernorm_forward(X, W, 0.5 * W, backend="cpu")
    np.testing.assert_allclose(out, layernorm_truth(X, W, 0.5 * W), rtol=1e-5, atol=1e-6)


_, MEAN, RSTD = kernels.layernorm_forward(X, W, W, backend="cpu") if kernels._core is not None else (None,) * 3
RSTD_1 = None if RSTD is None else RSTD[:1].copy()

LN_BACKWARD = [  # (dout, x, mean, rstd, w), the error, words the message must contain
    ((np.ones((3, 4), F), X, MEAN, RSTD, W), ValueError, r"layernorm_backward: dout must have the shape of x \(2, 4\)"),
    ((X.astype(np.float64), X, MEAN, RSTD, W), TypeError, "dout must be float32, got float64"),
    ((X, STRIDED, MEAN, RSTD, W), TypeError, "x must be C-contiguous"),
    ((X, X, MEAN, RSTD_1, W), ValueError, "mean and rstd must hold one value per row"),
    ((X, X, MEAN, RSTD, np.ones(3, F)), ValueError, r"w must have shape \(4,\), got \(3,\)"),
]


@pytest.mark.parametrize("args, error, message", LN_BACKWARD)
def test_layernorm_backward_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.layernorm_backward(*args, backend="cpu")
    dout = np.array([[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, 0.0, -1.0]], F)
    dx, dw, db = kernels.layernorm_backward(dout, X, MEAN, RSTD, W, backend="cpu")
    np.testing.assert_allclose(db, dout.sum(0), rtol=1e-6)  # out = xhat * w + b: db sums dout over rows
    xhat = layernorm_truth(X, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(dw, (dout * xhat).sum(0), rtol=1e-5, atol=1e-6)
    # dx by central differences of the float64 formula
    h, numeric = 1e-6, np.zeros((2, 4))
    for i, j in np.ndindex(2, 4):
        plus, minus = X.astype(np.float64), X.astype(np.float64)
        plus[i, j] += h
        minus[i, j] -= h
        numeric[i, j] = ((layernorm_truth(plus, W, 0) - layernorm_truth(minus, W, 0)) * dout).sum() / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-4, atol=1e-4)


def gelu_truth(x):
    return np.array([0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))) for v in x.ravel()])


GELU = [  # (function, args), the error, words the message must contain
    ("forward", (STRIDED,), TypeError, "gelu_forward: x must be C-contiguous"),
    ("forward", (np.ones(3, np.int32),), TypeError, "gelu_forward: x must be float32, got int32"),
    ("backward", (X.astype(np.float64), X), TypeError, "gelu_backward: dout must be float32, got float64"),
    ("backward", (X, STRIDED), TypeError, "gelu_backward: x must be C-contiguous"),
    ("backward", (STRIDED, X), TypeError, "gelu_backward: dout must be C-contiguous"),
]


@pytest.mark.parametrize("which, args, error, message", GELU)
def test_gelu_rejects_bad_input(which, args, error, message):
    fn = kernels.gelu_forward if which == "forward" else kernels.gelu_backward
    with pytest.raises(error, match=message):
        fn(*args, backend="cpu")
    np.testing.assert_allclose(kernels.gelu_forward(X, backend="cpu").ravel(), gelu_truth(X), rtol=1e-5, atol=1e-7)


ARGS = (0.1, 0.9, 0.99, 1e-8, 0.0, 1 - 0.9, 1 - 0.99)  # lr, betas, eps, weight decay, bias1, bias2 at step 1


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


ADAMW = [  # (p, m, v, g), the error, words the message must contain
    ((STRIDED_1D, W * 0, W * 0, W), TypeError, "adamw_update: p must be C-contiguous"),
    ((W.copy(), W * 0, W * 0, STRIDED_1D), TypeError, "g must be C-contiguous"),
    ((W.copy(), readonly(W * 0), W * 0, W), ValueError, "m must be writeable"),
    ((W.copy(), W * 0, readonly(W * 0), W), ValueError, "v must be writeable"),
    ((W.copy(), W * 0, W * 0, W.astype(np.float64)), TypeError, "g must be float32, got float64"),
    ((W.copy(), np.zeros(5, F), W * 0, W), ValueError, r"m must have the shape of g \(4,\), got \(5,\)"),
    ((W.copy(), np.zeros((2, 2), F), W * 0, W), ValueError, r"m must have the shape of g \(4,\), got \(2, 2\)"),
]


@pytest.mark.parametrize("args, error, message", ADAMW)
def test_adamw_rejects_bad_input_and_writes_nothing(args, error, message):
    before = [a.copy() for a in args]
    with pytest.raises(error, match=message):
        kernels.adamw_update(*args, *ARGS, backend="cpu")
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)  # checked before anything is written
    p, m, v, g = np.ones(4, F), np.zeros(4, F), np.zeros(4, F), np.array([1.0, -2.0, 0.5, 0.0], F)
    kernels.adamw_update(p, m, v, g, *ARGS, backend="cpu")
    # step 1: m_hat = g, v_hat = g^2, so p moves by lr * g / (|g| + eps): lr * sign(g), and 0 where g = 0
    np.testing.assert_allclose(p, 1 - 0.1 * np.sign(g), rtol=1e-6)
    np.testing.assert_allclose(m, 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(v, 0.01 * g * g, rtol=1e-5)


@pytest.mark.parametrize("index, value", [(0, -0.1), (1, 1.0), (1, -0.1), (2, 1.0), (2, -0.1), (3, -1e-8), (4, -0.01),
                                          (4, math.nan), (4, math.inf), (0, math.inf), (5, 0.0), (5, 1.5), (6, 0.0),
                                          (6, 1.5)])
def test_adamw_rejects_hyperparameters_out_of_range(index, value):
    # lr, betas, eps, weight_decay, bias1, bias2 (ARGS' order): finite, lr, eps, weight_decay >= 0, the betas in
    # [0, 1), bias1 and bias2 (1 - beta^t) in (0, 1]. beta2 = 1 would freeze v; bias1 = 1.5 would scale the step.
    args = list(ARGS)
    args[index] = value
    p, m, v, g = np.ones(4, F), np.zeros(4, F), np.zeros(4, F), np.array([1.0, -2.0, 0.5, 0.0], F)
    with pytest.raises(ValueError, match="adamw_update: lr, betas, eps, weight_decay, bias1, bias2 must be finite"):
        kernels._core.adamw_update(p, m, v, g, *args)
    np.testing.assert_array_equal(p, np.ones(4, F))  # nothing was written
    np.testing.assert_array_equal(m, np.zeros(4, F))


# The NumPy references (backend="numpy") refuse what the compiled kernels refuse, in the bindings' words, where
# NumPy itself would broadcast or wrap the bad argument into a silently wrong answer.
A, B1 = np.ones((3, 4), F), np.ones((4, 5), F)
Q, LSE_Q = np.ones((1, 2, 3, 4), F), np.zeros((1, 2, 3), F)
IDS, TABLE = np.array([[0, 2], [1, -1]]), np.ones((3, 4), F)
SHAPE_24 = r"\(2, 4\)"
NUMPY_BAD = [
    (lambda be: kernels.matmul(A, B1, bias=np.ones(1, F), backend=be),
     r"matmul: bias must have shape \(N,\) = \(5,\), got \(1,\)"),
    (lambda be: kernels.softmax_backward(np.ones((2, 1), F), X, backend=be),
     r"softmax_backward: dy must have the shape of y " + SHAPE_24 + r", got \(2, 1\)"),
    (lambda be: kernels.gelu_backward(np.ones(4, F), X, backend=be),
     r"gelu_backward: dout must have the shape of x " + SHAPE_24),
    (lambda be: kernels.layernorm_forward(X, np.ones(1, F), W, backend=be),
     r"layernorm_forward: w must have shape \(4,\), got \(1,\)"),
    (lambda be: kernels.layernorm_backward(np.ones((2, 3), F), X, np.zeros(2, F), np.ones(2, F), W, backend=be),
     r"layernorm_backward: dout must have the shape of x " + SHAPE_24),
    (lambda be: kernels.layernorm_backward(X, X, np.zeros(1, F), np.ones(2, F), W, backend=be),
     r"layernorm_backward: mean and rstd must hold one value per row of x " + SHAPE_24 + r", got \(1,\) and \(2,\)"),
    (lambda be: kernels.adamw_update(W.copy(), W.copy(), W.copy(), np.ones(1, F), 0.1, 0.9, 0.99, 1e-8, 0.0, 0.1, 0.01,
                                     backend=be), r"adamw_update: p must have the shape of g \(1,\), got \(4,\)"),
    (lambda be: kernels.attention_forward(Q, Q, Q, dropout_p=1.0, backend=be),
     r"attention_forward: dropout_p must be in \[0, 1\), got 1.0"),
    (lambda be: kernels.attention_forward(Q, Q, Q, dropout_p=-0.5, backend=be), r"dropout_p must be in \[0, 1\)"),
    (lambda be: kernels.attention_forward(Q, Q, Q, dropout_p=float("nan"), backend=be), r"dropout_p must be in"),
    (lambda be: kernels.attention_forward(Q, Q[:, :1], Q, backend=be),
     r"attention_forward: k must have the shape of q \(1, 2, 3, 4\), got \(1, 1, 3, 4\)"),
    (lambda be: kernels.attention_backward(Q[:, :1], Q, Q, Q, Q, LSE_Q, backend=be),
     r"attention_backward: dout must have the shape of q"),
    (lambda be: kernels.attention_backward(Q, Q, Q, Q, np.ones((1, 2, 3, 2), F), LSE_Q, backend=be),
     r"attention_backward: out must have the shape of q"),
    (lambda be: kernels.attention_backward(Q, Q, Q, Q, Q, LSE_Q[:, :1], backend=be),
     r"attention_backward: lse must have shape \(B, NH, T\) = \(1, 2, 3\)"),
    (lambda be: kernels.attention_forward(Q[..., :0], Q[..., :0], Q[..., :0], backend=be),  # 1/sqrt(hs) = inf
     r"attention_forward: the head size hs \(last axis of q\) must be at least 1, got q \(1, 2, 3, 0\)"),
    (lambda be: kernels.attention_backward(*[Q[..., :0]] * 5, LSE_Q, backend=be),
     r"attention_backward: the head size hs \(last axis of q\) must be at least 1"),
    (lambda be: kernels.embedding_forward(IDS, TABLE, backend=be),
     r"embedding_forward: index -1 out of range for a table of 3 rows"),
    (lambda be: kernels.embedding_backward(np.zeros((3, 4), F), np.ones((2, 2, 4), F), IDS + 1, backend=be),
     r"embedding_backward: index 3 out of range for a table of 3 rows"),
    (lambda be: kernels.embedding_backward(np.zeros((3, 4), F), np.ones((2, 4), F), IDS + 1, backend=be),
     r"embedding_backward: dout must have shape \(2, 2, 4\), got \(2, 4\)"),
    (lambda be: kernels.cross_entropy_forward(Z, np.array([0, 3]), backend=be),
     r"cross_entropy_forward: target 3 at row 1 is out of range for 3 classes"),
    (lambda be: kernels.cross_entropy_forward(Z, np.array([5, 7]), backend=be), r"target 5 at row 0"),  # the first
    (lambda be: kernels.cross_entropy_forward(Z, np.array([0, 1, 2]), backend=be),
     r"targets must be a contiguous \(2,\) array, one per row of logits, got \(3,\)"),
    (lambda be: kernels.cross_entropy_backward(Z, LSE[:1].copy(), T, 1.0, backend=be),
     r"cross_entropy_backward: lse must have shape \(2,\), got \(1,\)"),
    (lambda be: kernels.matmul(np.ones(4, F), B1, backend=be), r"matmul: a must be 2-D \(M, K\), got shape \(4,\)"),
    (lambda be: kernels.matmul(A, np.ones((2, 4, 5), F), backend=be), r"matmul: b must be 2-D \(K, N\)"),
    (lambda be: kernels.matmul(A, B1, trans_b=True, backend=be),
     r"matmul: inner sizes differ: op\(a\) is \(3, 4\) from a \(3, 4\)"),
    (lambda be: kernels.bias_grad(A, np.zeros((2, 4), F), backend=be),
     r"bias_grad: db must have shape \(C,\) = \(4,\) from dout \(3, 4\), got \(2, 4\)"),
]


@pytest.mark.parametrize("call, message", NUMPY_BAD)
def test_the_numpy_references_refuse_what_the_compiled_kernels_refuse(call, message):
    for backend in ("numpy", "cpu"):  # (the embedding has no C++ kernel: its cpu path is the NumPy one)
        with pytest.raises(ValueError, match=message):
            call(backend)


def test_ids_and_positions_must_be_integers():
    # NumPy reads a boolean array as a mask: [True, False, True] would pick rows 0 and 2, silently
    for backend in ("numpy", "cpu"):
        with pytest.raises(TypeError, match="embedding_forward: ids must be an integer array, got bool"):
            kernels.embedding_forward(np.array([True, False, True]), TABLE, backend=backend)
        with pytest.raises(TypeError, match="embedding_backward: ids must be an integer array, got float64"):
            kernels.embedding_backward(np.zeros((3, 4), F), np.ones((2, 4), F), np.array([0.0, 1.0]), backend=backend)
        qkv, cache = np.ones((1, 1, 6), F), np.zeros((1, 1, 4, 2), F)
        with pytest.raises(TypeError, match="attention_cached: pos must be an integer, got 1.5"):  # not int(1.5)
            kernels.attention_cached(qkv, cache, cache.copy(), 1.5, backend=backend)
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        kernels.attention_cached(qkv, cache, cache.copy(), 0, backend="bogus")


def test_layernorm_backward_takes_one_value_per_row_in_any_shape():
    # as the compiled kernels do: mean and rstd of a (2, 3, C) input may come flat, (6,)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(F)
    out, mean, rstd = kernels.layernorm_forward(x, W, W, backend="numpy")
    for backend in ("numpy", "cpu"):
        flat = kernels.layernorm_backward(x, x, mean.reshape(-1), rstd.reshape(-1), W, backend=backend)
        for got, ref in zip(flat, kernels.layernorm_backward(x, x, mean, rstd, W, backend=backend)):
            np.testing.assert_array_equal(got, ref)


EMPTY_BUT_HUGE = """
import numpy as np
from minigpt import _core
F, T = np.float32, 2**40  # an empty batch of 2^40 positions: zero bytes, but a T that must size nothing
q, lse = np.ones((0, 1, T, 4), F), np.ones((0, 1, T), F)
shapes = [a.shape for a in _core.attention_backward(q, q, q, q, q, lse)]
shapes += [a.shape for a in _core.attention_forward_naive(q, q, q)]
shapes += [a.shape for a in _core.attention_backward_naive(q, q, q, q, q, lse)]
qkv = np.ones((0, T, 6), F)
y, lse_fused = _core.attention_forward_fused(qkv, 1)
shapes.append(_core.attention_backward_fused(y, qkv, y, lse_fused, 1).shape)
cache = np.zeros((0, 1, T, 2), F)
shapes.append(_core.attention_cached_forward(np.ones((0, 1, 6), F), cache, cache.copy(), T - 1).shape)
shapes.append(_core.softmax_forward(np.ones((T, 0), F)).shape)  # 2^40 rows of nothing: no walk over them
shapes.append(_core.softmax_backward(np.ones((T, 0), F), np.ones((T, 0), F)).shape)
print(shapes)
"""


def test_empty_inputs_with_a_huge_dimension_return_empty_results(tmp_path):
    # The attention kernels once sized their per-thread scratch by T inside the parallel region, where a
    # failed allocation ends the process (std::terminate), and softmax walked 2^40 empty rows. In a child
    # process, so that a regression fails this test rather than ending the test run.
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", EMPTY_BUT_HUGE], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    T = 2**40
    assert result.stdout.strip() == str([(0, 1, T, 4)] * 3 + [(0, 1, T, 4), (0, 1, T)] + [(0, 1, T, 4)] * 3
                                        + [(0, T, 6), (0, 1, 2), (T, 0), (T, 0)])
