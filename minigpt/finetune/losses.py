"""The fine-tuning losses (Radford et al. 2018, eq. 3-5): L = L_task + λ·L_LM.

    L_task   classification, entailment, similarity: cross-entropy of the class logits;
             multiple choice: cross-entropy of the softmax over the candidates' scores (the -inf cells
             of absent candidates get probability 0); regression (STS-B): mean squared error.
    L_LM     the auxiliary language-modelling loss: next-token cross-entropy over the task's own
             input tokens, through the tied output head (logits = h @ wte^T, as in GPT.forward), with
             padding masked out by the ignore index. λ = 0.5 in the paper.
Each is a forward/backward function pair, means over the counted rows.
"""
from minigpt import kernels
from minigpt.layers import cross_entropy_backward, cross_entropy_forward


def classification_loss_forward(logits, labels):
    """logits: (N, K) class logits or candidate scores, labels: (N,) int -> loss (float), cache.
    The grids are a few numbers per example, so the NumPy reference computes them on any backend."""
    loss, cache = cross_entropy_forward(logits, labels, backend="numpy")
    return float(loss), cache


def classification_loss_backward(dloss, cache):
    """-> dlogits (N, K) = dloss * (softmax - onehot) / N; zero at -inf (absent) candidates."""
    return cross_entropy_backward(dloss, cache)


def mse_forward(predictions, targets):
    """predictions: (N,), targets: (N,) -> mean((predictions - targets)^2), cache."""
    diff = predictions - kernels.array_module(predictions).asarray(targets, dtype=predictions.dtype)  # (N,)
    return float((diff * diff).mean()), diff


def mse_backward(dloss, cache):
    """-> dpredictions (N,) = dloss * 2 (predictions - targets) / N."""
    diff = cache
    return diff * (2.0 * dloss / diff.size)


def lm_loss_forward(h, wte, targets, backend="numpy"):
    """h: (S, T, C) final hidden states, wte: (V, C) the tied head, targets: (S, T) next tokens or -1
    -> the mean next-token cross-entropy over the counted positions (float), cache.

    One mean over every counted token of the batch, so a longer sequence weighs more; GPT-1's released code
    averages within each sequence first (the paper does not say)."""
    S, T, C = h.shape
    h2 = kernels.array_module(h).ascontiguousarray(h).reshape(S * T, C)  # (S*T, C)
    logits = kernels.matmul(h2, wte, trans_b=True, backend=backend)  # (S*T, V)
    loss, ce_cache = cross_entropy_forward(logits, targets.reshape(-1), backend=backend)
    return float(loss), (h2, wte, ce_cache, backend, h.shape)


def lm_loss_backward(dloss, cache):
    """-> dh: (S, T, C), dwte: (V, C), the head's share of the tied embedding's gradient."""
    h2, wte, ce_cache, backend, shape = cache
    dlogits = cross_entropy_backward(dloss, ce_cache)  # (S*T, V)
    dwte = kernels.matmul(dlogits, h2, trans_a=True, backend=backend)  # (V, C)
    dh = kernels.matmul(dlogits, wte, backend=backend)  # (S*T, C)
    return dh.reshape(shape), dwte
