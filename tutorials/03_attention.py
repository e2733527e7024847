# %% [markdown]
# # 03 · Causal self-attention, forward and backward
#
# Attention is the one place where positions talk to each other. Each position emits a query,
# a key and a value; it compares its query with the keys of all earlier positions, turns the
# scores into weights with a softmax, and takes the weighted average of their values
# (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762, section 3.2). A GPT masks out the future,
# so that position t predicts token t+1 from tokens 0..t only.
#
# This tutorial writes the forward and the backward in NumPy, shows why the T x T weight matrix
# need not be stored (only one log-sum-exp per row), and checks everything against
# `minigpt.kernels` and its C++ kernel.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/03_attention.py

# %%
import math

import numpy as np

from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import merge_heads, split_heads

rng = np.random.default_rng(0)
B, NH, T, hs = 2, 2, 5, 4  # batch, heads, sequence length, head size
C = NH * hs  # the model width: the heads side by side

# %% [markdown]
# ## Step 1 · The forward, one formula at a time
#
# For one head, with q, k, v of shape (T, hs):
#
#     S = q @ k^T / sqrt(hs)          scores (T, T); the 1/sqrt(hs) keeps their variance ~1, so the
#                                     softmax does not saturate as hs grows
#     S[i, j] = -inf  for j > i       the causal mask: position i may not look at later positions
#     P = softmax(S) over each row    weights (T, T), each row sums to 1
#     out = P @ v                     (T, hs): a weighted average of the values
#
# The mask uses a true `-inf`, not a large negative number: `exp(-inf)` is exactly 0, so a masked
# position contributes exactly nothing. The softmax subtracts each row's max before `exp`, which
# never overflows; the diagonal is never masked, so the max is always finite.

# %%
def my_attention_forward(q, k, v):
    """q, k, v: (B, NH, T, hs) -> out (B, NH, T, hs), P (B, NH, T, T)."""
    T, hs = q.shape[-2:]
    S = q @ k.swapaxes(-1, -2) / math.sqrt(hs)  # (B, NH, T, T)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # True above the diagonal
    S = np.where(future, -np.inf, S)
    E = np.exp(S - S.max(axis=-1, keepdims=True))
    P = E / E.sum(axis=-1, keepdims=True)  # (B, NH, T, T)
    return P @ v, P


q, k, v = (rng.standard_normal((B, NH, T, hs)) for _ in range(3))  # float64 for exact checks
out, P = my_attention_forward(q, k, v)
upper = P[..., np.triu(np.ones((T, T), dtype=bool), k=1)]  # every weight above the diagonal
print(f"step 1: out {out.shape}; rows of P sum to 1 within {np.abs(P.sum(-1) - 1).max():.1e}; "
      f"largest weight on a future position {upper.max()}")
print("        you should see (2, 2, 5, 4), about 1e-16, and exactly 0.0")
assert np.allclose(P.sum(-1), 1.0) and upper.max() == 0.0

# %% [markdown]
# ## Step 2 · A future token cannot change the past
#
# Causality is a property we can test: change the keys and values of positions 3 and 4, and the
# outputs at positions 0, 1 and 2 must not move at all, not even in the last bit.

# %%
k2, v2 = k.copy(), v.copy()
k2[:, :, 3:] += 10.0 * rng.standard_normal(k2[:, :, 3:].shape)
v2[:, :, 3:] += 10.0 * rng.standard_normal(v2[:, :, 3:].shape)
out2, _ = my_attention_forward(q, k2, v2)
moved_past = float(np.abs(out2[:, :, :3] - out[:, :, :3]).max())
moved_future = float(np.abs(out2[:, :, 3:] - out[:, :, 3:]).max())
print(f"step 2: max change at positions 0-2: {moved_past}; at positions 3-4: {moved_future:.2f}")
print("        you should see exactly 0.0 for the past and a large change (tens) for the future")
assert moved_past == 0.0 and moved_future > 0.1

# %% [markdown]
# ## Step 3 · Many heads: split and merge
#
# A GPT computes q, k and v for all heads with one Linear layer, `qkv = x @ w_attn + b_attn`, of
# shape (B, T, 3C). `minigpt.layers.split_heads` cuts it into q, k, v and each of those into NH
# heads of hs = C / NH features, giving (B, NH, T, hs): the heads become a batch axis, so one
# call attends in all heads at once. `merge_heads` puts the heads' outputs back side by side,
# (B, T, C), ready for the output projection `c_proj`.
#
# The checks: head h of q is the feature slice [h*hs, (h+1)*hs) of the q part of qkv, and
# merge_heads undoes the head split exactly.

# %%
qkv = rng.standard_normal((B, T, 3 * C))  # (B, T, 3C), as c_attn would produce
qh, kh, vh = split_heads(qkv, NH)  # each (B, NH, T, hs)
h = 1
same_slice = np.array_equal(qh[:, h], qkv[:, :, h * hs:(h + 1) * hs])  # q part is columns [0, C)
same_v = np.array_equal(vh[:, h], qkv[:, :, 2 * C + h * hs:2 * C + (h + 1) * hs])
round_trip = np.array_equal(merge_heads(vh), qkv[:, :, 2 * C:])
print(f"step 3: q {qh.shape}; head {h} of q is its column slice: {same_slice}; of v: {same_v}; "
      f"merge_heads(v) == the v columns: {round_trip}")
print("        you should see (2, 2, 5, 4) and True three times")
assert same_slice and same_v and round_trip

# %% [markdown]
# ## Step 4 · The backward
#
# Walk the forward in reverse, one head, with `dout` given:
#
#     out = P @ v          ->  dv = P^T @ dout,   dP = dout @ v^T
#     P = softmax(S)       ->  dS = P * (dP - rowsum(dP * P))
#     S = q @ k^T * scale  ->  dq = dS @ k * scale,   dk = dS^T @ q * scale
#
# The softmax line: for one row `p = softmax(s)`, the Jacobian is `∂p_i/∂s_j = p_i (δ_ij - p_j)`.
# With `g = dL/dp` arriving, the chain rule gives
# `dL/ds_j = sum_i g_i p_i (δ_ij - p_j) = p_j (g_j - sum_i g_i p_i)`, the line above.
# Masked entries have `P = 0`, so they get no gradient, as they should.
#
# One more trick. `rowsum(dP * P)` looks like it needs the whole T x T `dP`, but
#
#     sum_j dP[i, j] P[i, j] = sum_j (dout[i] · v[j]) P[i, j] = dout[i] · (sum_j P[i, j] v[j]) = dout[i] · out[i]
#
# so it is `rowsum(dout * out)`: a (T, hs) product, no T x T work at all.

# %%
def my_attention_backward(dout, q, k, v, P):
    """dout, q, k, v: (B, NH, T, hs), P: (B, NH, T, T) -> dq, dk, dv."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = P.swapaxes(-1, -2) @ dout  # (B, NH, T, hs)
    dP = dout @ v.swapaxes(-1, -2)  # (B, NH, T, T)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # softmax backward
    dq = dS @ k * scale
    dk = dS.swapaxes(-1, -2) @ q * scale
    return dq, dk, dv


dout = rng.standard_normal(out.shape)  # (B, NH, T, hs) random upstream gradient
dq, dk, dv = my_attention_backward(dout, q, k, v, P)
dP = dout @ v.swapaxes(-1, -2)
trick = float(np.abs((dP * P).sum(-1) - (dout * out).sum(-1)).max())
fwd = lambda: my_attention_forward(q, k, v)[0]
errors = {name: rel_error(analytic, numerical_gradient(fwd, x, dout))
          for name, analytic, x in [("dq", dq, q), ("dk", dk, k), ("dv", dv, v)]}
print(f"step 4: max |rowsum(dP * P) - rowsum(dout * out)| {trick:.1e}")
print("        rel errors against finite differences", {n: f"{e:.1e}" for n, e in errors.items()})
print("        you should see about 1e-16 for the identity, and errors around 1e-10 or smaller")
assert trick < 1e-12 and max(errors.values()) < 1e-8

# %% [markdown]
# ## Step 5 · Save one number per row, not a T x T matrix
#
# Our backward took `P` from the forward: B·NH·T·T numbers. The softmax can instead be rebuilt from
# the scores and one number per row, the log-sum-exp `lse_i = log sum_j exp(S[i, j])`:
#
#     P[i, j] = exp(S[i, j] - lse_i)
#
# Recomputing `S = q @ k^T * scale` in the backward costs one matmul, and saves storing the largest
# tensor in the layer. This is the idea of FlashAttention (Dao et al. 2022,
# https://arxiv.org/abs/2205.14135), and `kernels.attention_forward` returns exactly `out` and `lse`.
# Computed stably, `lse = m + log(sum(exp(S - m)))` with m the row max.

# %%
S = np.where(np.triu(np.ones((T, T), dtype=bool), 1), -np.inf, q @ k.swapaxes(-1, -2) / math.sqrt(hs))
m = S.max(axis=-1, keepdims=True)
lse = m + np.log(np.exp(S - m).sum(axis=-1, keepdims=True))  # (B, NH, T, 1)
P_rebuilt = np.exp(S - lse)
print(f"step 5: max |P rebuilt from lse - P| {np.abs(P_rebuilt - P).max():.1e}")
for name, (b_, nh_, t_) in {"the timing shape below": (8, 6, 256), "GPT-2 small, T=1024": (8, 12, 1024)}.items():
    p_mib, lse_kib = b_ * nh_ * t_ * t_ * 4 / 2**20, b_ * nh_ * t_ * 4 / 2**10  # float32 bytes
    print(f"        {name}: P per layer {p_mib:7.1f} MiB, lse {lse_kib:5.0f} KiB (float32)")
print("        you should see about 1e-16, then 12 MiB vs 48 KiB and 384 MiB vs 384 KiB")
assert np.abs(P_rebuilt - P).max() < 1e-12

# %% [markdown]
# ## Step 6 · Compare with the library
#
# `kernels.attention_forward(q, k, v)` returns `(out, lse)`; `kernels.attention_backward(dout, q,
# k, v, out, lse)` rebuilds P from `lse` and uses the `rowsum(dout * out)` trick. With
# `backend="numpy"` it runs the NumPy reference. We compare it with our version, then check the
# library's backward against finite differences of the library's forward.

# %%
lib_out, lib_lse = kernels.attention_forward(q, k, v, backend="numpy")
lib_dq, lib_dk, lib_dv = kernels.attention_backward(dout, q, k, v, lib_out, lib_lse, backend="numpy")
diffs = {name: float(np.abs(a - b_).max()) for name, a, b_ in
         [("out", out, lib_out), ("lse", lse[..., 0], lib_lse), ("dq", dq, lib_dq), ("dk", dk, lib_dk),
          ("dv", dv, lib_dv)]}
lib_fwd = lambda: kernels.attention_forward(q, k, v, backend="numpy")[0]
lib_errors = {name: rel_error(g, numerical_gradient(lib_fwd, x, dout))
              for name, g, x in [("dq", lib_dq, q), ("dk", lib_dk, k), ("dv", lib_dv, v)]}
print("step 6: max |ours - library|", {n: f"{d:.1e}" for n, d in diffs.items()})
print("        library vs finite differences", {n: f"{e:.1e}" for n, e in lib_errors.items()})
print("        you should see about 1e-16 or smaller for the first five, around 1e-10 or smaller for the rest")
assert max(diffs.values()) < 1e-12 and max(lib_errors.values()) < 1e-8

# %% [markdown]
# ## Step 7 · Attention dropout without storing a mask
#
# GPT-1 trains with dropout on the attention weights (0.1; GPT-2's paper says nothing of it; Hugging
# Face's models keep GPT-1's 0.1, and nanoGPT keeps the layer with a rate it sets per run, 0 by default
# and 0.2 for its Shakespeare model): each `P[i, j]` is zeroed with
# probability p and the survivors scaled by 1/(1-p). Storing that T x T mask would undo step 5.
# `kernels.dropout_keep_mask(seed, shape, p)` instead makes the mask a pure function of the seed
# and the element's position (a counter-based hash, as FlashAttention does), so the backward
# regenerates it, and the NumPy and C++ backends drop exactly the same weights. One integer seed
# per call is all that is stored. The backward with dropout passes the same finite-difference check.

# %%
p_drop, seed = 0.25, 1234
keep = kernels.dropout_keep_mask(seed, (B, NH, T, T), p_drop)
same = np.array_equal(keep, kernels.dropout_keep_mask(seed, (B, NH, T, T), p_drop))
big = kernels.dropout_keep_mask(seed, (4, 4, 64, 64), p_drop)
out_d, lse_d = kernels.attention_forward(q, k, v, p_drop, seed, backend="numpy")
grads_d = kernels.attention_backward(dout, q, k, v, out_d, lse_d, p_drop, seed, backend="numpy")
fwd_d = lambda: kernels.attention_forward(q, k, v, p_drop, seed, backend="numpy")[0]
err_d = max(rel_error(g, numerical_gradient(fwd_d, x, dout)) for g, x in zip(grads_d, (q, k, v)))
print(f"step 7: same seed, same mask: {same}; fraction kept of 65,536 weights {big.mean():.3f}; "
      f"largest rel error with dropout {err_d:.1e}")
print("        you should see True, about 0.750, and about 1e-10 or smaller")
assert same and abs(big.mean() - (1 - p_drop)) < 0.01 and err_d < 1e-8

# %% [markdown]
# ## Step 8 · The C++ kernel against NumPy
#
# `backend="cpu"` runs `minigpt._core`'s attention (float32). It saves only `lse` too, and
# regenerates the dropout mask from the seed, so it never stores the T x T weights; the header
# comment of `csrc/attention.cpp` explains how it walks the matrix. First the agreement with NumPy
# in float32, on a shape that divides no tile size, with and without dropout; then the time of
# forward and forward + backward at B=8, NH=6, T=256, hs=64 (the attention of nanoGPT's 6-layer,
# 384-wide shakespeare_char model). Speeds vary between machines and runs: compare the two numbers
# printed side by side, on a quiet machine, not with numbers from elsewhere.

# %%
from minigpt.timing import best_times  # each function's best of 3 rounds, taking turns


def fwd_bwd(q, k, v, dout, backend):
    o, l_ = kernels.attention_forward(q, k, v, backend=backend)
    return kernels.attention_backward(dout, q, k, v, o, l_, backend=backend)


try:
    kernels.check_backend("cpu")  # raises, saying why and how to build, if minigpt._core is missing
    HAVE_CORE = True
except RuntimeError as e:
    HAVE_CORE = False
    print(f"step 8: skipping the C++ steps: {e}")
if HAVE_CORE:
    print(f"step 8: minigpt._core {kernels.core_info()}")
    f32 = lambda shape: rng.standard_normal(shape).astype(np.float32)
    for p_ in (0.0, 0.1):
        qs, ks, vs, ds = (f32((2, 3, 37, 24)) for _ in range(4))  # 37 and 24: not multiples of any tile
        results = {}
        for backend in ("numpy", "cpu"):
            o, l_ = kernels.attention_forward(qs, ks, vs, p_, 7, backend=backend)
            results[backend] = (o, l_, *kernels.attention_backward(ds, qs, ks, vs, o, l_, p_, 7, backend=backend))
        worst = max(float(np.abs(a - b_).max() / np.abs(a).max()) for a, b_ in zip(results["numpy"], results["cpu"]))
        print(f"        dropout {p_}: largest max|C++ - NumPy| / max|NumPy| over out, lse, dq, dk, dv: {worst:.1e}")
        assert worst < 1e-4

    qs, ks, vs, ds = (f32((8, 6, 256, 64)) for _ in range(4))
    t_np, t_cpp = best_times(lambda: kernels.attention_forward(qs, ks, vs, backend="numpy"),
                             lambda: kernels.attention_forward(qs, ks, vs, backend="cpu"), repeat=3)
    print(f"        forward:            NumPy {t_np * 1e3:6.1f} ms, C++ {t_cpp * 1e3:6.1f} ms, "
          f"C++/NumPy speed ratio {t_np / t_cpp:.2f}")
    t_np, t_cpp = best_times(lambda: fwd_bwd(qs, ks, vs, ds, "numpy"), lambda: fwd_bwd(qs, ks, vs, ds, "cpu"),
                             repeat=3)
    print(f"        forward + backward: NumPy {t_np * 1e3:6.1f} ms, C++ {t_cpp * 1e3:6.1f} ms, "
          f"C++/NumPy speed ratio {t_np / t_cpp:.2f}")
    print("        you should see relative differences around 1e-7 to 1e-6 (float32 rounding), and the")
    print("        two times side by side: a ratio above 1 means the C++ kernel is the faster one")
