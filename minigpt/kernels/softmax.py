"""Softmax over the last axis, forward and backward."""
from minigpt.kernels.backend import array_module, check_same_shape, core


def softmax_forward(x, backend="numpy"):
    """y = softmax(x) over the last axis, stable: exp(x - max) never overflows.

    x: (..., N) -> y: (..., N). Rows that are all -inf are not allowed (they have no softmax).
    """
    if core(backend):
        return core(backend).softmax_forward(x)
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y, backend="numpy"):
    """dx = y * (dy - sum(dy * y)) over the last axis: the Jacobian of softmax applied to dy.

    Only y (the output) is needed, so the forward keeps y rather than x.
    """
    if core(backend):
        return core(backend).softmax_backward(dy, y)
    check_same_shape("softmax_backward", "dy", dy, "y", y)
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
