"""LayerNorm over the last axis (Ba, Kiros and Hinton 2016, arXiv:1607.06450), forward and backward.

out = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps), with the biased variance as in
GPT-1/2 and PyTorch. As in llm.c, the forward returns mean and rstd (one number per row) for
the backward, which recomputes xhat = (x - mean) * rstd from x (the caller keeps x for it): the
forward writes no xhat, and the backward pays one subtraction and one multiplication per element.
"""
import numpy as np

from minigpt.kernels.backend import array_module, check_same_shape, check_shape, core

EPS = 1e-5  # GPT-2 and PyTorch use 1e-5


def layernorm_forward(x, w, b, eps=EPS, backend="numpy"):
    """x: (..., C), w: (C,), b: (C,) -> out: (..., C), mean: (...), rstd: (...)."""
    if core(backend):
        return core(backend).layernorm_forward(x, w, b, eps)
    for name, param in (("w", w), ("b", b)):
        check_shape("layernorm_forward", name, param, x.shape[-1:])
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1); from centred values: no cancellation
    rstd = 1.0 / array_module(x).sqrt(var + eps)  # (..., 1)
    return xc * rstd * w + b, mean[..., 0], rstd[..., 0]


def layernorm_backward(dout, x, mean, rstd, w, backend="numpy"):
    """dout, x: (..., C); mean, rstd: (...); w: (C,) -> dx: (..., C), dw: (C,), db: (C,).

    With g = dout * w (the gradient reaching xhat), the normalisation's Jacobian gives
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    The two means remove the components along the directions the normalisation fixes (the
    mean of x and its scale).
    """
    if core(backend):
        return core(backend).layernorm_backward(dout, x, mean, rstd, w)
    check_same_shape("layernorm_backward", "dout", dout, "x", x)
    check_shape("layernorm_backward", "w", w, x.shape[-1:])
    rows = x.shape[:-1]
    if np.size(mean) != np.prod(rows, dtype=int) or np.size(rstd) != np.prod(rows, dtype=int):
        raise ValueError(f"layernorm_backward: mean and rstd must hold one value per row of x {x.shape}, got "
                         f"{np.shape(mean)} and {np.shape(rstd)}")
    mean, rstd = mean.reshape(rows), rstd.reshape(rows)  # any shape of as many values, as the compiled kernels
    rstd = rstd[..., None]
    xhat = (x - mean[..., None]) * rstd
    lead = tuple(range(dout.ndim - 1))
    g = dout * w
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dout * xhat).sum(axis=lead), dout.sum(axis=lead)
