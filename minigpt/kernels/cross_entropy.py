"""Softmax cross-entropy, fused, per row: loss_r = logsumexp(z_r) - z_r[target_r].

The forward returns each row's loss and its log-sum-exp; the backward rebuilds the softmax
from the logits and lse, so the probabilities (as large as the logits) are never stored:
    dlogits_r = dloss_r * (softmax(z_r) - onehot(target_r))
A negative target marks a padded position: its loss and its gradient are 0.

The compiled kernels check that every target is below V before reading logits[r, target]. On the GPU
that check reads a number back, which waits for all the work queued before it; checked=True (targets
already checked on the host, where they came from, as the layer does) skips it there. The C++ check
is a loop on the host and always runs.
"""
from minigpt.kernels.backend import array_module, check_backend, check_shape, check_targets, core


def cross_entropy_forward(logits, targets, backend="numpy", checked=False):
    """logits: (N, V) float, targets: (N,) int64 -> losses: (N,), lse: (N,)."""
    if check_backend(backend) == "cuda":
        return core(backend).cross_entropy_forward(logits, targets, check_range=not checked)
    if core(backend):
        return core(backend).cross_entropy_forward(logits, targets)
    check_targets("cross_entropy_forward", targets, logits, check_range=not checked)
    xp = array_module(logits)
    m = logits.max(axis=-1, keepdims=True)  # subtracting the max keeps exp from overflowing
    lse = (m + xp.log(xp.exp(logits - m).sum(axis=-1, keepdims=True)))[:, 0]  # (N,)
    counted = targets >= 0
    picked = logits[xp.arange(len(targets)), xp.where(counted, targets, 0)]  # (N,)
    return xp.where(counted, lse - picked, 0.0).astype(logits.dtype), lse


def cross_entropy_backward(logits, lse, targets, dloss, backend="numpy", checked=False):
    """dloss: the gradient of each counted row's loss (a scalar, e.g. 1/count for a mean) -> dlogits (N, V)."""
    if check_backend(backend) == "cuda":
        return core(backend).cross_entropy_backward(logits, lse, targets, dloss, check_range=not checked)
    if core(backend):
        return core(backend).cross_entropy_backward(logits, lse, targets, dloss)
    check_targets("cross_entropy_backward", targets, logits, check_range=not checked)
    check_shape("cross_entropy_backward", "lse", lse, logits.shape[:1])
    xp = array_module(logits)
    counted = targets >= 0
    dlogits = xp.exp(logits - lse[:, None])  # softmax
    dlogits[xp.arange(len(targets)), xp.where(counted, targets, 0)] -= 1.0
    return dlogits * (counted * dloss).astype(logits.dtype)[:, None]
