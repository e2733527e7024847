"""GELU, the tanh approximation used by GPT-1 and GPT-2 (Hendrycks and Gimpel 2016, arXiv:1606.08415).

gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))). The math, forward and
backward, is in minigpt/kernels/gelu.py.
"""

from minigpt import kernels


def gelu_forward(x, backend="numpy"):
    """x: any shape -> out: same shape, cache (x itself: the tanh is cheaper to redo than to store)."""
    return kernels.gelu_forward(x, backend=backend), (x, backend)


def gelu_backward(dout, cache):
    x, backend = cache
    return kernels.gelu_backward(kernels.array_module(dout).ascontiguousarray(dout), x, backend=backend)


class GELU:
    """No parameters; kept as a class so a Block reads as a list of layers."""

    def __init__(self, backend="numpy"):
        self.params, self.grads, self.cache = {}, {}, None
        self.backend = backend

    def forward(self, x):
        out, self.cache = gelu_forward(x, self.backend)
        return out

    def backward(self, dout):
        return gelu_backward(dout, self.cache)
