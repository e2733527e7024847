"""Layer normalisation over the last axis (Ba, Kiros and Hinton 2016, arXiv:1607.06450).

out = (x - mean) / sqrt(var + eps) * w + b. The math, forward and backward, is in
minigpt/kernels/layernorm.py (the NumPy reference; the C++ kernel mirrors it).
"""
import numpy as np

from minigpt import kernels


def layernorm_forward(x, w, b, backend="numpy"):
    """x: (..., C), w: (C,), b: (C,) -> out: (..., C), cache."""
    out, mean, rstd = kernels.layernorm_forward(x, w, b, backend=backend)
    # x, mean and rstd are kept, not xhat: either way one array of x's size stays alive until the backward
    # (nothing else holds this x: the block's residual sums make new arrays), but the forward then writes
    # only out, and two numbers per row rebuild xhat in the backward.
    return out, (x, mean, rstd, w, backend)


def layernorm_backward(dout, cache):
    """dout: (..., C) -> dx: (..., C), dw: (C,), db: (C,)."""
    x, mean, rstd, w, backend = cache
    dout = kernels.array_module(dout).ascontiguousarray(dout)
    return kernels.layernorm_backward(dout, x, mean, rstd, w, backend=backend)


class LayerNorm:
    def __init__(self, n_embd, dtype=np.float32, backend="numpy"):
        self.params = {"weight": kernels.to_backend(np.ones(n_embd, dtype=dtype), backend),
                       "bias": kernels.to_backend(np.zeros(n_embd, dtype=dtype), backend)}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.backend = backend
        self.cache = None

    def forward(self, x):
        out, self.cache = layernorm_forward(x, self.params["weight"], self.params["bias"], self.backend)
        return out

    def backward(self, dout):
        dx, dw, db = layernorm_backward(dout, self.cache)
        self.grads["weight"] += dw
        self.grads["bias"] += db
        return dx
