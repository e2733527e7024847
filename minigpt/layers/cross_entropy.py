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
    # The targets are checked and counted where they are: on the host, where a batch comes from, that
    # costs nothing; on the GPU each of the three reads waits for all the work queued there.
    tp = kernels.array_module(targets)
    counted = targets != ignore_index
    if tp.any((targets[counted] < 0) | (targets[counted] >= V)):
        raise ValueError(f"cross_entropy: targets must lie in [0, {V}) or equal ignore_index={ignore_index}")
    count = max(int(counted.sum()), 1)
    rows = tp.where(counted, targets, -1).reshape(-1).astype(np.int64)  # (N,), -1 = not counted
    rows = xp.asarray(rows)  # where the logits are: one copy to the GPU for host targets
    z = xp.ascontiguousarray(logits).reshape(-1, V)  # (N, V)
    losses, lse = kernels.cross_entropy_forward(z, rows, backend=backend, checked=True)  # (N,), (N,)
    # The logits and each row's log-sum-exp are kept: softmax = exp(z - lse) rebuilds the gradient.
    cache = (z, lse, rows, count, logits.shape, backend)
    return xp.asarray(losses.sum(dtype=np.float64) / count, dtype=logits.dtype), cache


def cross_entropy_backward(dloss, cache):
    """dloss: scalar -> dlogits: (..., V) = dloss * (softmax - onehot(target)) / count on counted rows."""
    z, lse, rows, count, shape, backend = cache
    return kernels.cross_entropy_backward(z, lse, rows, float(dloss) / count, backend=backend,
                                          checked=True).reshape(shape)
