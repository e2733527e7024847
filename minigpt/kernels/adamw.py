"""The AdamW update of one parameter array, in place (Loshchilov and Hutter 2019, as torch.optim.AdamW):

    p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - (lr / bias1) m / (sqrt(v / bias2) + eps),  bias1 = 1 - b1^t, bias2 = 1 - b2^t
"""
import math

from minigpt.kernels.backend import array_module, check_same_shape, core


def check_step_numbers(lr, beta1, beta2, eps, weight_decay, bias1, bias2):
    """Numbers a step can use (every backend): all finite, lr, eps, weight_decay >= 0, the betas in [0, 1) and
    the bias corrections 1 - beta^t in (0, 1]. bias1 = 0 (t = 0, a step before the first) divides by zero."""
    numbers = (lr, beta1, beta2, eps, weight_decay, bias1, bias2)
    if not (all(math.isfinite(x) for x in numbers) and lr >= 0 and eps >= 0 and weight_decay >= 0
            and 0 <= beta1 < 1 and 0 <= beta2 < 1 and 0 < bias1 <= 1 and 0 < bias2 <= 1):
        raise ValueError(f"adamw_update: lr={lr}, beta1={beta1}, beta2={beta2}, eps={eps}, "
                         f"weight_decay={weight_decay}, bias1={bias1}, bias2={bias2}: each must be finite, lr, eps "
                         "and weight_decay >= 0, the betas in [0, 1) and bias1, bias2 (1 - beta^t) in (0, 1]")


def adamw_update(p, m, v, g, lr, beta1, beta2, eps, weight_decay, bias1, bias2, backend="numpy"):
    """Update p, m and v in place from the gradient g (all the same shape)."""
    check_step_numbers(lr, beta1, beta2, eps, weight_decay, bias1, bias2)
    if core(backend):
        return core(backend).adamw_update(p, m, v, g, lr, beta1, beta2, eps, weight_decay, bias1, bias2)
    for name, array in (("p", p), ("m", m), ("v", v)):
        check_same_shape("adamw_update", name, array, "g", g)
    if weight_decay:
        p *= 1.0 - lr * weight_decay
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * g * g
    p -= (lr / bias1) * m / (array_module(p).sqrt(v / bias2) + eps)
