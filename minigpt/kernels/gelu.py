"""GELU, the tanh approximation used by GPT-1 and GPT-2 (Hendrycks and Gimpel 2016, arXiv:1606.08415).

gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
"""
import math

from minigpt.kernels.backend import array_module, check_same_shape, core

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# Beyond |x| = 10, tanh(u) is +-1 to float32 and float64 precision (u passes 43): the formulas take x
# clamped to [-10, 10] there, which changes no value, but keeps x^3 from overflowing (past 7e12 in float32),
# which made the backward 0 * inf = NaN. NaN stays NaN through clip and maximum.
EDGE = 10.0


def gelu_forward(x, backend="numpy"):
    """x: any shape -> out: same shape."""
    if core(backend):
        return core(backend).gelu_forward(x)
    xp = array_module(x)
    xc = xp.clip(x, -EDGE, EDGE)
    t = xp.tanh(SQRT_2_OVER_PI * (xc + 0.044715 * (xc * xc * xc)))  # x*x*x: np.power(x, 3) is many times slower
    # below -10, 1 + t is 0: x taken as -10 there makes gelu(-inf) 0, not -inf * 0 = NaN
    return 0.5 * xp.maximum(x, -EDGE) * (1.0 + t)


def gelu_backward(dout, x, backend="numpy"):
    """dout, x: same shape -> dx. Only x is needed: the tanh is cheaper to redo than to store."""
    if core(backend):
        return core(backend).gelu_backward(dout, x)
    check_same_shape("gelu_backward", "dout", dout, "x", x)
    xp = array_module(x)
    xc = xp.clip(x, -EDGE, EDGE)  # beyond the edges 1 - t^2 is 0 and gelu' is 0 or 1
    t = xp.tanh(SQRT_2_OVER_PI * (xc + 0.044715 * (xc * xc * xc)))
    du = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * xc * xc)
    return dout * (0.5 * (1.0 + t) + 0.5 * xc * (1.0 - t * t) * du)
