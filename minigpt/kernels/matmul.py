"""matmul: out = op(a) @ op(b) (+ bias), the three shapes a Linear layer needs, no transposed copies."""
from minigpt.kernels.backend import check_shape, core


def matmul(a, b, trans_a=False, trans_b=False, bias=None, backend="numpy"):
    """out = op(a) @ op(b) (+ bias), op(x) = x.T when asked, for 2-D arrays.

    a: (M, K), or (K, M) with trans_a;  b: (K, N), or (N, K) with trans_b;  bias: (N,) or None
    returns out: (M, N)
    Linear forward is x @ w + b; its backward needs dout @ w.T and x.T @ dout, which the
    flags express without materialising a transposed copy.
    """
    if core(backend):
        return core(backend).matmul(a, b, trans_a, trans_b, bias)
    # as the compiled kernels check: NumPy's @ would take a 1-D or 3-D operand and broadcast it
    for name, x, layout in (("a", a, "(K, M) with trans_a" if trans_a else "(M, K)"),
                            ("b", b, "(N, K) with trans_b" if trans_b else "(K, N)")):
        if x.ndim != 2:
            raise ValueError(f"matmul: {name} must be 2-D {layout}, got shape {tuple(x.shape)}")
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    if op_a.shape[1] != op_b.shape[0]:
        raise ValueError(f"matmul: inner sizes differ: op(a) is {tuple(op_a.shape)} from a {tuple(a.shape)}, "
                         f"op(b) is {tuple(op_b.shape)} from b {tuple(b.shape)}")
    out = op_a @ op_b
    if bias is not None:
        check_shape("matmul", "bias", bias, out.shape[-1:], "(N,)")
        out += bias
    return out
