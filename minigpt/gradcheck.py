"""Numerical gradient checking, CS231n style: the tool that proves a hand-written backward pass.

numerical_gradient(f, x, df) estimates d/dx sum(f(x) * df) by central differences,
    (g(x + h) - g(x - h)) / 2h, error O(h^2),
one element of x at a time. Run it in float64 on tiny shapes: in float32 the rounding error
of g would swamp the difference. rel_error compares an analytic gradient with the estimate.
"""
import numpy as np


def rel_error(x, y):
    """Relative error of two arrays as wholes: ||x - y|| / (||x|| + ||y||), 0 when both are 0.

    Whole-array norms rather than per element: a gradient entry that is exactly 0 in theory
    (a key bias under softmax's shift invariance, say) comes out of finite differences as
    round-off noise, about 1e-11, which per element would look like a 100% error.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    denom = np.linalg.norm(x) + np.linalg.norm(y)
    return 0.0 if denom == 0 else float(np.linalg.norm(x - y) / denom)


def numerical_gradient(f, x, df, h=1e-5):
    """Central-difference gradient of sum(f() * df) with respect to the array x.

    f: a function of no arguments that reads x (x is perturbed in place and restored);
    df: the upstream gradient, same shape as f()'s output (a scalar 1.0 for a loss).
    returns: an array shaped like x.
    """
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient: x must be C-contiguous, so that it can be perturbed in place")
    grad = np.zeros_like(x, dtype=np.float64)
    flat_x = x.reshape(-1)  # a view: writing it perturbs x itself
    flat_grad = grad.reshape(-1)
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + h
        plus = np.sum(f() * df)
        flat_x[i] = saved - h
        minus = np.sum(f() * df)
        flat_x[i] = saved
        flat_grad[i] = (plus - minus) / (2 * h)
    return grad
