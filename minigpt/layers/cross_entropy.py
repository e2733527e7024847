"""Softmax cross-entropy, fused: loss = mean over positions of -log softmax(logits)[target].

Fusing the softmax into the loss gives a simple, stable gradient, dlogits = softmax - onehot,
and log-softmax is computed as z - logsumexp(z) with the max subtracted first, which never
overflows (minigpt/kernels/cross_entropy.py). Positions whose target equals ignore_index
(padding) add nothing to the loss or the gradient.
"""
import numpy as np

from minigpt import kernels

IGNORE_INDEX = -1


def cross_entropy_forward(logits, targets, ignore_index=IGNORE_INDEX, backend="numpy"):
    """logits: (..., V) float, targets: (...) int -> loss (a 0-d array), cache.

    The mean is over the counted positions; with none counted the loss is 0 and so is the gradient.
    """
    V = logits.shape[-1]
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets {targets.shape} must match logits {logits.shape} "
                         "without the last axis")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers, got {targets.dtype}")
    xp = kernels.array_module(logits)  # NumPy, or CuPy for GPU arrays
    counted = targets != ignore_index
    if xp.any((targets[counted] < 0) | (targets[counted] >= V)):
        raise ValueError(f"cross_entropy: targets must lie in [0, {V}) or equal ignore_index={ignore_index}")
    z = xp.ascontiguousarray(logits).reshape(-1, V)  # (N, V)
    rows = xp.where(counted, targets, -1).reshape(-1).astype(np.int64)  # (N,), -1 = not counted
    losses, lse = kernels.cross_entropy_forward(z, rows, backend=backend)  # (N,), (N,)
    count = max(int(counted.sum()), 1)
    # The logits and each row's log-sum-exp are kept: softmax = exp(z - lse) rebuilds the gradient.
    cache = (z, lse, rows, count, logits.shape, backend)
    return xp.asarray(losses.sum(dtype=np.float64) / count, dtype=logits.dtype), cache


def cross_entropy_backward(dloss, cache):
    """dloss: scalar -> dlogits: (..., V) = dloss * (softmax - onehot(target)) / count on counted rows."""
    z, lse, rows, count, shape, backend = cache
    return kernels.cross_entropy_backward(z, lse, rows, float(dloss) / count, backend=backend).reshape(shape)
