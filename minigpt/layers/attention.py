"""Causal multi-head self-attention (Vaswani et al. 2017; the GPT-1/GPT-2 form).

    qkv = x @ w_attn + b_attn                        one fused projection, (B, T, 3C)
    q, k, v split into NH heads of hs = C / NH        (B, NH, T, hs) each
    y = dropout(softmax(q k^T / sqrt(hs) + mask)) v   mask: -inf above the diagonal (no peeking ahead)
    out = dropout(merge_heads(y) @ w_proj + b_proj)   (B, T, C)

The middle step is `kernels.attention_forward`: the NumPy reference, or the fused C++ or CUDA kernel.
On those two backends the split and the merge are not copies at all: `kernels.attention_forward_fused`
reads each head's q, k, v where they sit in qkv and writes y with the heads side by side.
Attention dropout uses a counter-based mask drawn from one seed per call (see
kernels.dropout_keep_mask), so the weights never need to be stored for the backward.
"""
import numpy as np

from minigpt import kernels
from minigpt.layers.dropout import Dropout
from minigpt.layers.linear import Linear


def split_heads(qkv, n_head):
    """(B, T, 3C) -> q, k, v, each (B, NH, T, hs) and C-contiguous (the kernel needs that)."""
    B, T, C3 = qkv.shape
    hs = C3 // (3 * n_head)
    qkv = qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4)  # (3, B, NH, T, hs)
    xp = kernels.array_module(qkv)
    return tuple(xp.ascontiguousarray(qkv[i]) for i in range(3))


def merge_heads(y):
    """(B, NH, T, hs) -> (B, T, C) with the heads side by side."""
    B, NH, T, hs = y.shape
    return kernels.array_module(y).ascontiguousarray(y.transpose(0, 2, 1, 3)).reshape(B, T, NH * hs)


def self_attention_forward(qkv, n_head, dropout_p=0.0, seed=0, backend="numpy", in_place=None):
    """qkv: (B, T, 3C) -> y: (B, T, C), cache. The part of attention between the two projections.

    in_place: read the heads where they are in qkv; by default wherever the backend has that kernel.
    False splits them into copies and merges the output back, as backend="numpy" must (for comparison).
    """
    if in_place is None:
        in_place = backend in kernels.FUSED_BACKENDS
    if in_place:
        # The C++ and CUDA kernels read the heads' q, k, v in place out of qkv and write y with the heads
        # side by side: the same numbers as the split-attend-merge below, without its copies (a tenth of
        # a CPU training step at the default width). The cache keeps qkv and y, which c_proj keeps anyway.
        y, lse = kernels.attention_forward_fused(qkv, n_head, dropout_p, seed, backend=backend)
        return y, ("fused", qkv, y, lse, n_head, dropout_p, seed, backend)
    q, k, v = split_heads(qkv, n_head)
    y, lse = kernels.attention_forward(q, k, v, dropout_p, seed, backend=backend)  # (B, NH, T, hs), (B, NH, T)
    # q, k, v, y and the per-row log-sum-exp are kept; the (B, NH, T, T) weights are not.
    cache = ("split", q, k, v, y, lse, dropout_p, seed, backend)
    return merge_heads(y), cache


def self_attention_backward(dy, cache):
    """dy: (B, T, C) -> dqkv: (B, T, 3C)."""
    if cache[0] == "fused":
        _, qkv, y, lse, n_head, dropout_p, seed, backend = cache
        return kernels.attention_backward_fused(dy, qkv, y, lse, n_head, dropout_p, seed, backend=backend)
    _, q, k, v, y, lse, dropout_p, seed, backend = cache
    B, NH, T, hs = q.shape
    xp = kernels.array_module(dy)
    dy = xp.ascontiguousarray(dy.reshape(B, T, NH, hs).transpose(0, 2, 1, 3))  # (B, NH, T, hs)
    dq, dk, dv = kernels.attention_backward(dy, q, k, v, y, lse, dropout_p, seed, backend=backend)
    dqkv = xp.stack([dq, dk, dv])  # (3, B, NH, T, hs)
    return xp.ascontiguousarray(dqkv.transpose(1, 3, 0, 2, 4)).reshape(B, T, 3 * NH * hs)


class CausalSelfAttention:
    """c_attn -> self-attention with attention dropout -> c_proj -> residual dropout."""

    def __init__(self, n_embd, n_head, dropout, rng, dtype=np.float32, proj_std=0.02, backend="numpy"):
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head, self.dropout, self.backend = n_head, dropout, backend
        self.c_attn = Linear(n_embd, 3 * n_embd, rng, dtype, backend=backend)
        self.c_proj = Linear(n_embd, n_embd, rng, dtype, std=proj_std, backend=backend)
        self.resid_dropout = Dropout(dropout)
        self.cache = None

    def sublayers(self):
        return {"c_attn": self.c_attn, "c_proj": self.c_proj}

    def forward(self, x, rng, train):
        qkv = self.c_attn.forward(x)
        p = self.dropout if train else 0.0
        seed = int(rng.integers(2**63)) if p > 0.0 else 0  # one draw picks this call's whole mask
        y, self.cache = self_attention_forward(qkv, self.n_head, p, seed, backend=self.backend)
        return self.resid_dropout.forward(self.c_proj.forward(y), rng, train)

    def backward(self, dout):
        dy = self.c_proj.backward(self.resid_dropout.backward(dout))
        return self.c_attn.backward(self_attention_backward(dy, self.cache))

    def forward_cached(self, x, kv_cache, pos):
        """Inference with a KV cache: x holds positions pos .. pos+Tn-1 only.

        kv_cache: (k, v), each (B, NH, block_size, hs), filled up to pos; this call writes the
        new keys and values at pos .. pos+Tn-1 and attends over everything up to there.
        """
        k_cache, v_cache = kv_cache
        y = kernels.attention_cached(self.c_attn.forward(x), k_cache, v_cache, pos, backend=self.backend)  # (B, Tn, C)
        return self.c_proj.forward(y)
