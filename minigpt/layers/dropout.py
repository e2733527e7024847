"""Inverted dropout (Srivastava et al. 2014): zero each element with probability p, scale the rest by 1/(1-p).

The scaling keeps the expected activation unchanged, so evaluation (train=False) is the identity.
The random generator and the train flag are explicit arguments: no hidden global state.
On GPU arrays the mask is made on the GPU, from one seed drawn from the generator, by the same
counter-based hash as attention dropout (kernels.dropout_keep_mask): no mask crosses to the device.
"""
import numpy as np

from minigpt.kernels import array_module, dropout_keep_mask


def dropout_forward(x, p, rng, train):
    """x: any shape; p in [0, 1); rng: numpy Generator -> out, cache (the scaled mask, or None)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not train or p == 0.0:
        return x, None
    xp = array_module(x)
    if xp is np:
        keep = rng.random(x.shape) >= p
    else:
        keep = dropout_keep_mask(int(rng.integers(2**63)), x.shape, p, xp)
    scaled_mask = keep.astype(x.dtype) / (1.0 - p)
    return x * scaled_mask, scaled_mask


def dropout_backward(dout, cache):
    return dout if cache is None else dout * cache


class Dropout:
    def __init__(self, p):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.params, self.grads, self.cache = {}, {}, None

    def forward(self, x, rng, train):
        out, self.cache = dropout_forward(x, self.p, rng, train)
        return out

    def backward(self, dout):
        return dropout_backward(dout, self.cache)
