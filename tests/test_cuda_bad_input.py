"""Bad input to the CUDA kernels that test_cuda_kernels.py leaves out: AdamW (no bad-input test at all),
softmax forward and backward, cross_entropy_backward, LayerNorm forward, GELU forward, the embedding's
table, dtypes and dout, attention without heads or with an empty head, and inputs past a launch's grid
limit. Each must raise TypeError/ValueError naming the argument, and the process must go on: the next
valid call gives the numbers of a formula written here.

Skipped where backend="cuda" cannot run; on the CUDA emulator:
    python tests/cuda_emulator/run.py tests/test_cuda_bad_input.py -q
"""
import numpy as np
import pytest
from conftest import cupy_or_skip_module

from minigpt import kernels

cupy = cupy_or_skip_module()


def dev(x, dtype=np.float32):
    return cupy.asarray(np.asarray(x, dtype=dtype))


def host(x):
    return cupy.asnumpy(x).astype(np.float64)


ARGS = (0.1, 0.9, 0.99, 1e-8, 0.0, 1 - 0.9, 1 - 0.99)  # lr, betas, eps, weight decay, bias1, bias2 at step 1
G = np.array([1.0, -2.0, 0.5, 0.0])


def adamw_bad_cases():
    ok = lambda: dev(np.ones(4))  # noqa: E731
    return [  # (p, m, v, g), the error, words the message must contain
        ((np.ones(4, np.float32), ok(), ok(), ok()), TypeError, "adamw_update: p must be a CuPy array"),
        ((ok(), ok(), ok(), dev(G, np.float64)), TypeError, "g must be float32, got float64"),
        ((dev(np.ones(8))[::2], ok(), ok(), ok()), TypeError, "p must be C-contiguous"),
        ((ok(), dev(np.ones(5)), ok(), ok()), ValueError, r"m must have the shape of g \(4,\)"),
        ((ok(), ok(), dev(np.ones((2, 2))), ok()), ValueError, r"v must have the shape of g \(4,\)"),
    ]


def test_adamw_rejects_bad_input():
    for args, error, message in adamw_bad_cases():
        with pytest.raises(error, match=message):
            kernels.adamw_update(*args, *ARGS, backend="cuda")
    p, m, v, g = dev(np.ones(4)), dev(np.zeros(4)), dev(np.zeros(4)), dev(G)
    kernels.adamw_update(p, m, v, g, *ARGS, backend="cuda")
    # step 1: m_hat = g and v_hat = g^2, so each weight moves by lr * sign(g)
    np.testing.assert_allclose(host(p), 1 - 0.1 * np.sign(G), rtol=1e-6)
    np.testing.assert_allclose(host(m), 0.1 * G, rtol=1e-6)
    np.testing.assert_allclose(host(v), 0.01 * G * G, rtol=1e-5)


def test_softmax_rejects_bad_input():
    x = dev([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    with pytest.raises(TypeError, match="softmax_forward: x must be float32, got float64"):
        kernels.softmax_forward(x.astype(cupy.float64), backend="cuda")
    with pytest.raises(TypeError, match="softmax_forward: x must be C-contiguous"):
        kernels.softmax_forward(x.T, backend="cuda")
    with pytest.raises(TypeError, match="softmax_forward: x must be a CuPy array"):
        kernels.softmax_forward(np.ones((2, 3), np.float32), backend="cuda")
    y = kernels.softmax_forward(x, backend="cuda")
    with pytest.raises(ValueError, match=r"softmax_backward: dy must have the shape of y \(2, 3\)"):
        kernels.softmax_backward(x[:, :2].copy(), y, backend="cuda")
    with pytest.raises(TypeError, match="softmax_backward: dy must be float32"):
        kernels.softmax_backward(x.astype(cupy.float64), y, backend="cuda")
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(host(y), [e / e.sum(), [1 / 3] * 3], rtol=1e-6)


def test_cross_entropy_backward_rejects_bad_input():
    z = dev([[0.0, 1.0, 2.0], [2.0, 0.0, -1.0]])
    t = cupy.asarray([2, -1])
    _, lse = kernels.cross_entropy_forward(z, t, backend="cuda")
    with pytest.raises(ValueError, match=r"cross_entropy_backward: lse must have shape \(2,\), got \(1,\)"):
        kernels.cross_entropy_backward(z, lse[:1].copy(), t, 1.0, backend="cuda")
    with pytest.raises(ValueError, match="cross_entropy_backward: target 3 is out of range for 3 classes"):
        kernels.cross_entropy_backward(z, lse, cupy.asarray([0, 3]), 1.0, backend="cuda")
    with pytest.raises(TypeError, match="cross_entropy_backward: targets must be int64"):
        kernels.cross_entropy_backward(z, lse, t.astype(cupy.int32), 1.0, backend="cuda")
    with pytest.raises(TypeError, match="cross_entropy_backward: logits must be float32"):
        kernels.cross_entropy_backward(z.astype(cupy.float64), lse, t, 1.0, backend="cuda")
    dz = host(kernels.cross_entropy_backward(z, lse, t, 0.5, backend="cuda"))
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    np.testing.assert_allclose(dz, 0.5 * np.array([p - [0, 0, 1], [0, 0, 0]]), rtol=1e-5, atol=1e-7)


def test_layernorm_and_gelu_forward_reject_bad_input():
    x, w = dev([[1.0, 2.0, 3.0, 6.0]]), dev(np.ones(4))
    with pytest.raises(ValueError, match=r"layernorm_forward: w must have shape \(4,\), got \(3,\)"):
        kernels.layernorm_forward(x, dev(np.ones(3)), w, backend="cuda")
    with pytest.raises(TypeError, match="layernorm_forward: b must be float32"):
        kernels.layernorm_forward(x, w, w.astype(cupy.float64), backend="cuda")
    with pytest.raises(TypeError, match="gelu_forward: x must be float32, got float64"):
        kernels.gelu_forward(x.astype(cupy.float64), backend="cuda")
    with pytest.raises(TypeError, match="gelu_forward: x must be C-contiguous"):
        kernels.gelu_forward(dev(np.ones((4, 2))).T, backend="cuda")
    out, mean, rstd = kernels.layernorm_forward(x, w, w * 0, backend="cuda")
    xs = np.array([1.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(host(out)[0], (xs - 3.0) / np.sqrt(3.5 + 1e-5), rtol=1e-5)  # mean 3, variance 3.5
    np.testing.assert_allclose(host(mean), [3.0], rtol=1e-6)


def test_embedding_rejects_bad_tables_ids_and_gradients():
    w = dev(np.arange(10.0).reshape(5, 2))
    with pytest.raises(TypeError, match="embedding_forward: w must be float32, got float64"):
        kernels.embedding_forward(cupy.asarray([1, 2]), w.astype(cupy.float64), backend="cuda")
    with pytest.raises(TypeError, match="embedding_forward: idx must be int64"):
        kernels.embedding_forward(cupy.asarray([1, 2], dtype=cupy.int32), w, backend="cuda")
    with pytest.raises(ValueError, match=r"embedding_forward: w must be 2-D \(V, C\)"):
        kernels.embedding_forward(cupy.asarray([1, 2]), w.reshape(-1), backend="cuda")
    dw = dev(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"embedding_backward: dout must have shape idx.shape \+ \(C,\) = \(2, 2\)"):
        kernels.embedding_backward(dw, dev(np.ones((2, 3))), cupy.asarray([1, 2]), backend="cuda")
    assert not cupy.any(dw)  # nothing written by the refused call
    np.testing.assert_array_equal(host(kernels.embedding_forward(cupy.asarray([[4, 0]]), w, backend="cuda")),
                                  [[[8.0, 9.0], [0.0, 1.0]]])
    kernels.embedding_backward(dw, dev([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), cupy.asarray([1, 3, 1]), backend="cuda")
    np.testing.assert_allclose(host(dw), [[0, 0], [6, 8], [0, 0], [3, 4], [0, 0]])  # id 1 twice: the rows add


def test_embedding_ids_that_skip_the_range_check_stay_inside_the_table():
    # checked=True (the ids were checked on the host) skips the binding's range check: an id outside [0, V)
    # that gets through anyway must still read and write nothing outside the table, as the kernels promise:
    # its forward row is zeros and its backward adds nothing. The tables are views of buffers one row longer,
    # whose extra row shows a read past the end (a 7 in the output) or a write (a change).
    V, C = 4, 3
    table = dev(np.full((V + 1, C), 7.0))
    table[:V] = dev(np.arange(V * C).reshape(V, C))
    w = table[:V]
    assert w.flags.c_contiguous
    out = kernels.embedding_forward(cupy.asarray([1, V, -1]), w, backend="cuda", checked=True)
    np.testing.assert_array_equal(host(out), [[3.0, 4.0, 5.0], [0.0] * C, [0.0] * C])
    grads = dev(np.zeros((V + 1, C)))
    kernels.embedding_backward(grads[:V], dev(np.ones((3, C))), cupy.asarray([V, 2, -1]), backend="cuda",
                               checked=True)
    expected = np.zeros((V + 1, C))
    expected[2] = 1.0
    np.testing.assert_array_equal(host(grads), expected)  # the row past the table untouched


def test_fused_attention_rejects_no_heads_empty_rows_and_a_wrong_dy():
    # n_head = 0 would divide by zero in the binding's shape check (the process dies of SIGFPE); an empty last
    # axis would pass "3 * n_head * hs" with hs = 0 and hand back an lse nobody wrote
    qkv = dev(np.ones((2, 5, 24)))
    with pytest.raises(ValueError, match="for n_head = 0"):
        kernels.attention_forward_fused(qkv, 0, backend="cuda")
    with pytest.raises(ValueError, match="for n_head = 0"):
        kernels.attention_backward_fused(dev(np.ones((2, 5, 8))), qkv, dev(np.ones((2, 5, 8))),
                                         dev(np.zeros((2, 1, 5))), 0, backend="cuda")
    with pytest.raises(ValueError, match="hs >= 1"):
        kernels.attention_forward_fused(dev(np.ones((2, 5, 0))), 1, backend="cuda")
    y, lse = kernels.attention_forward_fused(qkv, 2, backend="cuda")
    with pytest.raises(ValueError, match=r"dy must have the shape of y \(2, 5, 8\), got \(2, 4, 8\)"):
        kernels.attention_backward_fused(y[:, :4].copy(), qkv, y, lse, 2, backend="cuda")
    np.testing.assert_allclose(host(y), np.ones((2, 5, 8)))  # all ones: every weight averages equal value rows


def test_shape_checks_the_other_tests_leave_out():
    # each would otherwise let a kernel read past an array (or take the wrong numbers) without a word
    x, w = dev(np.ones((4, 3))), dev(np.ones(3))
    _, mean, rstd = kernels.layernorm_forward(x, w, w, backend="cuda")
    with pytest.raises(ValueError, match="mean and rstd must hold one value per row"):
        kernels.layernorm_backward(x, x, mean, rstd[:3].copy(), w, backend="cuda")
    with pytest.raises(ValueError, match=r"layernorm_forward: b must have shape \(3,\), got \(2,\)"):
        kernels.layernorm_forward(x, w, dev(np.ones(2)), backend="cuda")
    with pytest.raises(ValueError, match=r"bias must have shape \(N,\) = \(4,\), got \(4, 1\)"):
        kernels.matmul(dev(np.ones((2, 3))), dev(np.ones((3, 4))), bias=dev(np.ones((4, 1))), backend="cuda")
    with pytest.raises(ValueError, match=r"cross_entropy_forward: logits must be 2-D \(N, V\)"):
        kernels.cross_entropy_forward(dev(np.ones((2, 3, 4))), cupy.asarray([0, 1]), backend="cuda")
    with pytest.raises(ValueError, match=r"adamw_update: p must have the shape of g \(4,\), got \(5,\)"):
        kernels.adamw_update(dev(np.ones(5)), dev(np.zeros(4)), dev(np.zeros(4)), dev(G), *ARGS, backend="cuda")
    with pytest.raises(ValueError, match="softmax_forward: x must have at least 1 dimension"):
        kernels.softmax_forward(dev(np.float32(1.0)), backend="cuda")
    q = dev(np.ones((1, 1, 4, 8)))
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\), got nan"):
        kernels.attention_forward(q, q, q, float("nan"), 0, backend="cuda")
    np.testing.assert_allclose(host(kernels.matmul(x, w.reshape(3, 1).copy(), backend="cuda")), np.full((4, 1), 3.0))


def test_attention_refuses_an_empty_head():
    # hs = 0 would make the scale 1/sqrt(hs) infinite, and the kernels return before writing lse: refused in the
    # CPU kernels' words by every version, tuned, tensor-core and teaching, rather than handing back an unwritten lse
    from minigpt import _cuda
    q, lse = dev(np.ones((1, 2, 4, 0))), dev(np.zeros((1, 2, 4)))
    empty_head = r"the head size hs \(last axis of q\) must be at least 1, got hs = 0"
    for forward in (_cuda.attention_forward, _cuda.attention_forward_mma, _cuda.attention_forward_naive):
        with pytest.raises(ValueError, match=empty_head):
            forward(q, q, q)
    for backward in (_cuda.attention_backward, _cuda.attention_backward_naive):
        with pytest.raises(ValueError, match=empty_head):
            backward(q, q, q, q, q, lse)
    out, lse = kernels.attention_forward(dev(np.ones((1, 2, 4, 1))), dev(np.ones((1, 2, 4, 1))),
                                         dev(np.full((1, 2, 4, 1), 3.0)), backend="cuda")
    np.testing.assert_allclose(host(out), 3.0)  # and the next call works: every weight on the same value


def test_launches_past_the_grid_limit_are_refused():
    # A grid's y (and z) holds at most 65535 blocks. Each kernel that puts rows there refuses, before launching
    # anything, the smallest input that would need one block more: the launch would fail, or, with the count cut
    # to 16 bits, silently leave rows out. (Inputs of one column keep the arrays a few tens of MB.)
    rows = 65535 * 64 + 1  # LayerNorm's dw/db chunks and attention's query tiles are 64 rows each
    x = dev(np.ones((rows, 1)))
    with pytest.raises(ValueError, match="layernorm_backward: more than 4,194,240 rows in one call"):
        kernels.layernorm_backward(x, x, dev(np.zeros(rows)), dev(np.ones(rows)), dev(np.ones(1)), backend="cuda")
    q = x.reshape(1, 1, rows, 1)
    with pytest.raises(ValueError, match="attention: T is too long for one launch"):
        kernels.attention_forward(q, q, q, backend="cuda")
    with pytest.raises(ValueError, match=r"matmul: M is too large for one launch \(65536 row blocks, at most 65535\)"):
        kernels.matmul(dev(np.ones((65535 * 128 + 1, 1))), dev(np.ones((1, 1))), backend="cuda")
    np.testing.assert_allclose(host(kernels.matmul(x[:5], dev([[2.0]]), backend="cuda")), 2.0)  # the next call works
