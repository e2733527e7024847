"""Softmax cross-entropy, fused: loss = mean over positions of -log softmax(logits)[target].

Fusing the softmax into the loss gives a simple, stable gradient, dlogits = softmax - onehot,
and log-softmax is computed as (z - max) - log(sum(exp(z - max))), which never overflows.
Positions whose target equals ignore_index (padding) add nothing to the loss or the gradient.
"""
import numpy as np

IGNORE_INDEX = -1


def cross_entropy_forward(logits, targets, ignore_index=IGNORE_INDEX):
    """logits: (..., V) float, targets: (...) int -> loss (a 0-d array), cache.

    The mean is over the counted positions; with none counted the loss is 0 and so is the gradient.
    """
    V = logits.shape[-1]
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets {targets.shape} must match logits {logits.shape} "
                         "without the last axis")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers, got {targets.dtype}")
    valid = targets != ignore_index
    if np.any((targets[valid] < 0) | (targets[valid] >= V)):
        raise ValueError(f"cross_entropy: targets must lie in [0, {V}) or equal ignore_index={ignore_index}")
    z = logits.reshape(-1, V)  # (N, V)
    valid = valid.reshape(-1)  # (N,)
    safe_targets = np.where(valid, targets.reshape(-1), 0)
    shifted = z - z.max(axis=-1, keepdims=True)
    logsumexp = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (N, 1)
    logprobs = shifted - logsumexp  # (N, V)
    count = max(int(valid.sum()), 1)
    picked = logprobs[np.arange(z.shape[0]), safe_targets]  # (N,)
    loss = -(picked * valid).sum() / count
    # The log-probabilities are kept: softmax = exp(logprobs) is all the backward needs.
    cache = (logprobs, safe_targets, valid, count, logits.shape)
    return np.asarray(loss, dtype=logits.dtype), cache


def cross_entropy_backward(dloss, cache):
    """dloss: scalar -> dlogits: (..., V) = dloss * (softmax - onehot(target)) / count on counted rows."""
    logprobs, targets, valid, count, shape = cache
    dlogits = np.exp(logprobs)
    dlogits[np.arange(dlogits.shape[0]), targets] -= 1.0
    dlogits *= (valid * (dloss / count)).astype(dlogits.dtype)[:, None]
    return dlogits.reshape(shape)
