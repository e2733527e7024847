"""GELU, the tanh approximation used by GPT-1 and GPT-2 (Hendrycks and Gimpel 2016, arXiv:1606.08415).

gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
"""
import math

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_forward(x):
    """x: any shape -> out: same shape, cache (x itself: the tanh is cheaper to redo than to store)."""
    u = SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))  # x*x*x: np.power(x, 3) is many times slower
    return 0.5 * x * (1.0 + np.tanh(u)), x


def gelu_backward(dout, cache):
    """d gelu / dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx, du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    x = cache
    t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x)))
    du = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


class GELU:
    """No parameters; kept as a class so a Block reads as a list of layers."""

    def __init__(self):
        self.params, self.grads, self.cache = {}, {}, None

    def forward(self, x):
        out, self.cache = gelu_forward(x)
        return out

    def backward(self, dout):
        return gelu_backward(dout, self.cache)
