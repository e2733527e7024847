"""Causal scaled-dot-product attention with attention dropout, forward and backward, and the
cached variant used for generation.

Only the log-sum-exp of each row is saved by the forward, never the T x T weights: the backward
rebuilds them from q, k and lse (the flash-attention idea; the C++ kernel works tile by tile).
Shape letters: B batch, NH heads, T sequence length, hs head size.
"""
import math
import numbers

import numpy as np

from minigpt.kernels.backend import array_module, check_backend, check_dropout_p, check_same_shape, check_shape, core

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def dropout_keep_mask(seed, shape, p, xp=np):
    """The attention-dropout mask as a pure function of (seed, position), like FlashAttention.

    shape: (B, NH, T, T). Element (b, h, i, j) is kept iff
        splitmix64(seed + (((b*NH + h)*T + i)*T + j + 1) * golden) >> 40  >=  p * 2**24
    Because it is a counter-based hash rather than a stream of draws, the C++ and CUDA kernels
    can regenerate any tile of the mask in their backward pass without storing T x T bits, and
    all backends drop exactly the same weights. xp: the array module to build it in (CuPy builds
    it on the GPU).
    """
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2**64 on purpose
        idx = xp.arange(1, math.prod(shape) + 1, dtype=np.uint64).reshape(shape)
        z = np.uint64(seed) + idx * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    threshold = np.uint64(min(int(p * (1 << 24)), 1 << 24))
    return (z >> np.uint64(40)) >= threshold


def attention_forward(q, k, v, dropout_p=0.0, seed=0, backend="numpy"):
    """Causal attention: out = dropout(softmax(mask(q @ k^T / sqrt(hs)))) @ v.

    q, k, v: (B, NH, T, hs); dropout_p in [0, 1); seed picks the dropout mask.
    returns out: (B, NH, T, hs) and lse: (B, NH, T), the log-sum-exp of each row of scaled,
    masked scores. lse is all the backward needs to rebuild the attention weights exactly,
    so the T x T matrix never has to be stored (the flash-attention idea).
    """
    if core(backend):
        return core(backend).attention_forward(q, k, v, float(dropout_p), int(seed))
    check_attention_inputs("attention_forward", q, dropout_p, k=k, v=v)
    xp = array_module(q)
    B, NH, T, hs = q.shape
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(hs))  # (B, NH, T, T)
    future = xp.triu(xp.ones((T, T), dtype=bool), k=1)
    scores = xp.where(future, -np.inf, scores)  # a true -inf: exp gives exactly 0, no leak
    m = scores.max(axis=-1, keepdims=True)  # finite: the diagonal is never masked
    lse = m + xp.log(xp.exp(scores - m).sum(axis=-1, keepdims=True))  # (B, NH, T, 1)
    att = xp.exp(scores - lse)
    if dropout_p > 0.0:
        att = att * dropout_keep_mask(seed, att.shape, dropout_p, xp) / (1.0 - dropout_p)
    return att @ v, lse[..., 0]


def attention_backward(dout, q, k, v, out, lse, dropout_p=0.0, seed=0, backend="numpy"):
    """Gradients of attention_forward. dout, q, k, v, out: (B, NH, T, hs); lse: (B, NH, T).

    returns dq, dk, dv: (B, NH, T, hs).
    The weights P are rebuilt from q, k and lse. The softmax backward needs rowsum(dP * P),
    which equals rowsum(dout * out), a (B, NH, T) vector that costs no T x T work.
    """
    if core(backend):
        return core(backend).attention_backward(dout, q, k, v, out, lse, float(dropout_p), int(seed))
    check_attention_inputs("attention_backward", q, dropout_p, dout=dout, k=k, v=v, out=out)
    check_shape("attention_backward", "lse", lse, q.shape[:-1], "(B, NH, T)")
    xp = array_module(q)
    B, NH, T, hs = q.shape
    scale = 1.0 / math.sqrt(hs)
    scores = (q @ k.swapaxes(-1, -2)) * scale
    future = xp.triu(xp.ones((T, T), dtype=bool), k=1)
    # masked entries are set to 0 before exp so they cannot overflow, then zeroed after
    att = xp.where(future, 0.0, xp.exp(xp.where(future, 0.0, scores) - lse[..., None]))  # (B, NH, T, T)
    dropped = att
    if dropout_p > 0.0:
        keep = dropout_keep_mask(seed, att.shape, dropout_p, xp).astype(q.dtype) / (1.0 - dropout_p)
        dropped = att * keep
    dv = dropped.swapaxes(-1, -2) @ dout
    datt = dout @ v.swapaxes(-1, -2)  # gradient w.r.t. the dropped weights
    if dropout_p > 0.0:
        datt = datt * keep
    row = (dout * out).sum(axis=-1, keepdims=True)  # == rowsum(datt * att)
    dscores = att * (datt - row) * scale
    dq = dscores @ k
    dk = dscores.swapaxes(-1, -2) @ q
    return dq.astype(q.dtype, copy=False), dk.astype(q.dtype, copy=False), dv.astype(q.dtype, copy=False)


def check_attention_inputs(op, q, dropout_p, **same_as_q):
    if q.ndim != 4:
        raise ValueError(f"{op}: q must be 4-D (B, NH, T, hs), got shape {tuple(q.shape)}")
    for name, array in same_as_q.items():
        check_same_shape(op, name, array, "q", q)
    if q.shape[3] == 0:  # the scale 1/sqrt(hs) would be infinite
        raise ValueError(f"{op}: the head size hs (last axis of q) must be at least 1, got q {tuple(q.shape)}")
    check_dropout_p(op, dropout_p)


FUSED_BACKENDS = ("cpu", "cuda")  # the backends whose attention reads the heads in place from a fused qkv


def attention_forward_fused(qkv, n_head, dropout_p=0.0, seed=0, backend="cpu"):
    """attention_forward on the heads where the model has them, without copying them out.

    qkv: (B, T, 3C), the fused projection (q, k, v side by side in each row, C = n_head * hs).
    returns y: (B, T, C) with the heads side by side (what merge_heads gives), and lse: (B, n_head, T).
    The C++ and CUDA kernels read each head's q, k, v in place (rows 3C floats apart) and write its
    output in place (rows C apart): the same numbers, bit for bit, as splitting the heads into
    (B, NH, T, hs) copies, attention_forward and merging them back, minus the copies. The NumPy
    reference has no such version (backend="numpy" splits the heads).
    """
    if check_backend(backend) not in FUSED_BACKENDS:
        raise ValueError(f"attention_forward_fused runs on the backends {FUSED_BACKENDS}, not {backend!r}: split the "
                         "heads and call attention_forward there")
    return core(backend).attention_forward_fused(qkv, int(n_head), float(dropout_p), int(seed))


def attention_backward_fused(dy, qkv, y, lse, n_head, dropout_p=0.0, seed=0, backend="cpu"):
    """Gradients of attention_forward_fused: dy, y (B, T, C), qkv (B, T, 3C), lse (B, n_head, T) -> dqkv (B, T, 3C)."""
    if check_backend(backend) not in FUSED_BACKENDS:
        raise ValueError(f"attention_backward_fused runs on the backends {FUSED_BACKENDS}, not {backend!r}")
    return core(backend).attention_backward_fused(dy, qkv, y, lse, int(n_head), float(dropout_p), int(seed))


def attention_with_cache(q, k, v, pos):
    """Causal attention of new queries over cached keys, for generation (no backward needed).

    q: (B, NH, Tn, hs), the queries of positions pos .. pos+Tn-1;
    k, v: (B, NH, pos+Tn, hs), the keys and values of every position so far (the KV cache).
    Query i may see keys 0 .. pos+i. returns: (B, NH, Tn, hs).
    The reference behind attention_cached (backend="cpu" has a fused C++ kernel for both): with
    Tn = 1 it is two small matrix-vector products per head.
    """
    xp = array_module(q)
    Tn, L, hs = q.shape[2], k.shape[2], q.shape[3]
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(hs))  # (B, NH, Tn, L)
    if Tn > 1:
        future = xp.arange(L)[None, :] > (pos + xp.arange(Tn))[:, None]  # (Tn, L)
        scores = xp.where(future, -np.inf, scores)
    att = xp.exp(scores - scores.max(axis=-1, keepdims=True))
    att /= att.sum(axis=-1, keepdims=True)
    return att @ v


def attention_cached(qkv, k_cache, v_cache, pos, backend="numpy"):
    """One generation step of attention, from c_attn's output to c_proj's input, over a KV cache.

    qkv: (B, Tn, 3C), the fused q, k, v of positions pos .. pos+Tn-1 (as c_attn makes them);
    k_cache, v_cache: (B, NH, Tmax, hs), holding positions 0 .. pos-1; the new keys and values are
    written into them, in place, at pos .. pos+Tn-1. returns y: (B, Tn, C), heads side by side.
    Below: split the heads, extend the cache, attention_with_cache, merge the heads. backend="cpu"
    does all of it in one C++ call (in a one-token step the copies around the attention cost more
    than the attention). The CUDA build has no kernel of its own for this: on CuPy arrays the code
    below runs on the GPU.
    """
    if isinstance(pos, bool) or not isinstance(pos, numbers.Integral):  # int(1.5) would quietly be 1
        raise TypeError(f"attention_cached: pos must be an integer, got {pos!r}")
    if check_backend(backend) == "cpu":
        return core(backend).attention_cached_forward(qkv, k_cache, v_cache, int(pos))
    xp = array_module(qkv)
    B, Tn, C3 = qkv.shape
    NH, Tmax, hs = k_cache.shape[1], k_cache.shape[2], k_cache.shape[3]
    if not 0 <= pos <= Tmax - Tn:  # a negative pos would slice from the end of the cache, silently
        raise ValueError(f"attention_cached: positions pos .. pos+Tn-1 (pos = {pos}, Tn = {Tn}) must lie inside "
                         f"the cache's {Tmax} positions")
    q, k, v = qkv.reshape(B, Tn, 3, NH, hs).transpose(2, 0, 3, 1, 4)  # each (B, NH, Tn, hs)
    k_cache[:, :, pos:pos + Tn] = k
    v_cache[:, :, pos:pos + Tn] = v
    y = attention_with_cache(q, k_cache[:, :, :pos + Tn], v_cache[:, :, :pos + Tn], pos)  # (B, NH, Tn, hs)
    return xp.ascontiguousarray(y.transpose(0, 2, 1, 3)).reshape(B, Tn, C3 // 3)
