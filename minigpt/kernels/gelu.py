"""GELU, the tanh approximation used by GPT-1 and GPT-2 (Hendrycks and Gimpel 2016, arXiv:1606.08415).

gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
"""
import math

from minigpt.kernels.backend import array_module, check_same_shape, core

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_forward(x, backend="numpy"):
    """x: any shape -> out: same shape."""
    if core(backend):
        return core(backend).gelu_forward(x)
    u = SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))  # x*x*x: np.power(x, 3) is many times slower
    return 0.5 * x * (1.0 + array_module(x).tanh(u))


def gelu_backward(dout, x, backend="numpy"):
    """dout, x: same shape -> dx. Only x is needed: the tanh is cheaper to redo than to store."""
    if core(backend):
        return core(backend).gelu_backward(dout, x)
    check_same_shape("gelu_backward", "dout", dout, "x", x)
    t = array_module(x).tanh(SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x)))
    du = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
