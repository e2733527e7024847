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
    out = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if bias is not None:
        check_shape("matmul", "bias", bias, out.shape[-1:], "(N,)")
        out += bias
    return out
