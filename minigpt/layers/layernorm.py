"""Layer normalisation over the last axis (Ba, Kiros and Hinton 2016, arXiv:1607.06450).

out = (x - mean) / sqrt(var + eps) * w + b, with the biased variance, as GPT-1/2 and PyTorch do.
"""
import numpy as np

EPS = 1e-5  # GPT-2 and PyTorch use 1e-5


def layernorm_forward(x, w, b, eps=EPS):
    """x: (..., C), w: (C,), b: (C,) -> out: (..., C), cache."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    xhat = xc * rstd  # (..., C)
    # xhat and rstd are kept: the backward needs both, and recomputing them costs a full pass over x.
    cache = (xhat, rstd, w)
    return xhat * w + b, cache


def layernorm_backward(dout, cache):
    """dout: (..., C) -> dx: (..., C), dw: (C,), db: (C,).

    With g = dout * w (the gradient reaching xhat), the normalisation's Jacobian gives
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    The two means remove the components along the directions that the normalisation fixes
    (the mean of x and its scale).
    """
    xhat, rstd, w = cache
    lead = tuple(range(dout.ndim - 1))
    dw = (dout * xhat).sum(axis=lead)
    db = dout.sum(axis=lead)
    g = dout * w
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db


class LayerNorm:
    def __init__(self, n_embd, dtype=np.float32):
        self.params = {"weight": np.ones(n_embd, dtype=dtype), "bias": np.zeros(n_embd, dtype=dtype)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.cache = None

    def forward(self, x):
        out, self.cache = layernorm_forward(x, self.params["weight"], self.params["bias"])
        return out

    def backward(self, dout):
        dx, dw, db = layernorm_backward(dout, self.cache)
        self.grads["weight"] += dw
        self.grads["bias"] += db
        return dx
