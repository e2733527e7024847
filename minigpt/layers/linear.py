"""Linear (fully connected) layer: out = x @ w + b.

The weight is stored (in_features, out_features), as in GPT-2's checkpoint (its Conv1D), so
importing weights is a copy, not a transpose. Leading axes of x are flattened into rows:
x (..., C_in) is viewed as (N, C_in) with N the product of the leading sizes.
"""
import numpy as np

from minigpt import kernels


def linear_forward(x, w, b, backend="numpy"):
    """x: (..., C_in), w: (C_in, C_out), b: (C_out,) or None -> out: (..., C_out), cache."""
    C_in, C_out = w.shape
    if x.shape[-1] != C_in:
        raise ValueError(f"linear: x has {x.shape[-1]} features, the weight expects {C_in}")
    x2 = x.reshape(-1, C_in)  # (N, C_in), a view for contiguous x
    out = kernels.matmul(x2, w, bias=b, backend=backend)  # (N, C_out)
    # x is kept for dw = x^T @ dout; w for dx = dout @ w^T. Both are needed as they are.
    cache = (x, w, b is not None, backend)
    return out.reshape(*x.shape[:-1], C_out), cache


def linear_backward(dout, cache, db=None):
    """dout: (..., C_out) -> dx: (..., C_in), dw: (C_in, C_out), db: (C_out,) or None.

    With db given (a layer with a bias), the bias gradient is added into it in place and it is the db
    returned: the layer passes its grads["bias"], which saves a temporary and a second add per call.
    """
    x, w, has_bias, backend = cache
    C_in, C_out = w.shape
    dout2 = kernels.array_module(dout).ascontiguousarray(dout).reshape(-1, C_out)  # (N, C_out)
    x2 = x.reshape(-1, C_in)  # (N, C_in)
    dx = kernels.matmul(dout2, w, trans_b=True, backend=backend)  # (N, C_in)
    dw = kernels.matmul(x2, dout2, trans_a=True, backend=backend)  # (C_in, C_out)
    db = kernels.bias_grad(dout2, db, backend=backend) if has_bias else None  # (C_out,), sum over the N rows
    return dx.reshape(x.shape), dw, db


class Linear:
    """A thin shell over linear_forward/backward that owns the weight, the bias and their grads."""

    def __init__(self, in_features, out_features, rng, dtype=np.float32, bias=True, std=0.02, backend="numpy"):
        # made on the host from rng, so every backend starts from the same weights, then moved once
        self.params = {"weight": (rng.standard_normal((in_features, out_features)) * std).astype(dtype)}
        if bias:
            self.params["bias"] = np.zeros(out_features, dtype=dtype)
        self.params = {name: kernels.to_backend(p, backend) for name, p in self.params.items()}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}  # *_like: where p lives
        self.backend = backend
        self.cache = None

    def forward(self, x):
        out, self.cache = linear_forward(x, self.params["weight"], self.params.get("bias"), self.backend)
        return out

    def backward(self, dout):
        # backward adds: a shared weight collects every contribution (the bias's is added in place)
        dx, dw, _ = linear_backward(dout, self.cache, db=self.grads.get("bias"))
        self.grads["weight"] += dw
        return dx
