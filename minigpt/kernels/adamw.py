"""The AdamW update of one parameter array, in place (Loshchilov and Hutter 2019, as torch.optim.AdamW):

    p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - (lr / bias1) m / (sqrt(v / bias2) + eps),  bias1 = 1 - b1^t, bias2 = 1 - b2^t
"""
from minigpt.kernels.backend import array_module, check_same_shape, core


def adamw_update(p, m, v, g, lr, beta1, beta2, eps, weight_decay, bias1, bias2, backend="numpy"):
    """Update p, m and v in place from the gradient g (all the same shape)."""
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
