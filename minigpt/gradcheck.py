"""Numerical gradient checking, CS231n style: the tool that proves a hand-written backward pass.

numerical_gradient(f, x, df) estimates d/dx sum(f(x) * df) by central differences,
    (g(x + h) - g(x - h)) / 2h, error O(h^2),
one element of x at a time. Run it in float64 on tiny shapes: in float32 the rounding error
of g would swamp the difference. rel_error compares an analytic gradient with the estimate.
"""
import numpy as np


def rel_error(x, y):
    """Largest elementwise relative error, max |x - y| / max(1e-8, |x| + |y|)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)), initial=0.0))


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
