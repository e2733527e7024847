# %% [markdown]
# # 06 · Flash attention on a CPU: the T x T matrix never needs to exist
#
# Tutorial 03 built causal attention from its formula, `out = softmax(mask(q k^T / sqrt(hs))) v`, and
# showed that the backward needs only one number per row from the forward, the log-sum-exp `lse`.
# Its forward still built the (T, T) scores and weights. This tutorial removes them from the forward
# too, the way FlashAttention does (Dao et al. 2022, https://arxiv.org/abs/2205.14135; and
# FlashAttention-2, Dao 2023, https://arxiv.org/abs/2307.08691), and then looks at how
# `csrc/attention.cpp` does the same on a CPU:
#
# 1. how big the T x T matrix gets;
# 2. the online softmax: a softmax computed in one streaming pass, derived and checked on one row;
# 3. tiles: the whole forward, one (query tile, key tile) block at a time, skipping the blocks the
#    causal mask empties;
# 4. the backward from `lse`, tile by tile;
# 5-7. the C++ kernel against NumPy: agreement (step 5), memory (6) and time (7);
# 8. the heads read where the model keeps them, inside the fused (B, T, 3C) projection: no copies.
#
# Why it pays on a CPU: a (T, T) float32 matrix per head is 4 MiB at T = 1024, 48 MiB over 12 heads,
# far more than a core's L2 cache (1-2 MiB), so every pass over it runs at memory speed. A 64 x 64
# tile is 16 KiB and stays in the L1 cache (32-48 KiB) while it is used.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/06_flash_attention_on_cpu.py

# %%
import math
import tracemalloc

import numpy as np

from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error

rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1 · How big the T x T matrix gets
#
# The plain forward materialises the scores S (B, NH, T, T) and the weights P of the same size, and
# the plain backward keeps P and adds dP and dS. In float32, per attention layer:

# %%
for name, (B, NH, T) in {"tutorial 03's timing shape": (8, 6, 256), "GPT-2 small, T=1024, B=8": (8, 12, 1024),
                         "GPT-3-like, T=2048, B=1, NH=96": (1, 96, 2048)}.items():
    tt, lse_size = B * NH * T * T * 4, B * NH * T * 4
    print(f"step 1: {name:32s} one (B, NH, T, T) array {tt / 2**20:8.1f} MiB;  lse {lse_size / 2**10:6.0f} KiB")
print("        you should see 12, 384 and 1536 MiB against 48, 384 and 768 KiB")

# %% [markdown]
# ## Step 2 · The online softmax
#
# For one query, the row of scores s_1 .. s_n is softmaxed and averages the values v_1 .. v_n:
#
#     out = sum_j exp(s_j - m) v_j / l,     m = max_j s_j,     l = sum_j exp(s_j - m)
#
# The textbook way takes two passes over the row: one for the max m, one for l and the sum. The
# online softmax (Milakov & Gimelshein 2018, https://arxiv.org/abs/1805.02867) keeps a running max,
# a running sum and a running output after the first j scores:
#
#     m_j = max(m_{j-1}, s_j)
#     l_j = l_{j-1} * exp(m_{j-1} - m_j) + exp(s_j - m_j)
#     o_j = o_{j-1} * exp(m_{j-1} - m_j) + exp(s_j - m_j) v_j        (m_0 = -inf, l_0 = 0, o_0 = 0)
#
# Why it is exact: suppose l_{j-1} = sum_{t<j} exp(s_t - m_{j-1}). Multiplying by
# exp(m_{j-1} - m_j) moves every term to the new reference point, exp(s_t - m_{j-1}) exp(m_{j-1} - m_j)
# = exp(s_t - m_j), and the new score adds its own term: l_j = sum_{t<=j} exp(s_t - m_j). The same
# holds for o_j, so after the last score o_n / l_n is exactly the softmax average, and
# lse = m_n + log(l_n). Each exp(s - m) is <= 1, so nothing overflows. The factor
# exp(m_{j-1} - m_j) is 1 whenever the max did not move, and the update works just as well a whole
# block of scores at a time: take the block's max, rescale once, add the block's terms.

# %%
def softmax_average_two_pass(s, v):
    """s: (n,) scores, v: (n, hs) values -> (out (hs,), lse): max first, then the sums."""
    m = s.max()
    e = np.exp(s - m)
    return e @ v / e.sum(), m + math.log(e.sum())


def softmax_average_online(s, v, block=1):
    """The same in one pass over `block` scores at a time: running max m, sum l, output o."""
    m, ell, o = -np.inf, 0.0, np.zeros(v.shape[1])  # ell: the running sum l
    for j in range(0, len(s), block):
        s_blk, v_blk = s[j:j + block], v[j:j + block]
        m_new = max(m, s_blk.max())
        alpha = math.exp(m - m_new)  # rescales what was summed with the old max; exp(-inf) = 0 at the start
        p = np.exp(s_blk - m_new)
        ell = ell * alpha + p.sum()
        o = o * alpha + p @ v_blk
        m = m_new
    return o / ell, m + math.log(ell)


s = rng.standard_normal(100) * 5  # one row of 100 scores
s[60] = 40.0  # a late, large score: the running max jumps, and everything before must be rescaled
v = rng.standard_normal((100, 8))
out_ref, lse_ref = softmax_average_two_pass(s, v)
for block in (1, 16, 64):
    out_on, lse_on = softmax_average_online(s, v, block)
    print(f"step 2: blocks of {block:2d}: max |online - two-pass| out {np.abs(out_on - out_ref).max():.1e}, "
          f"lse {abs(lse_on - lse_ref):.1e}")
    assert np.allclose(out_on, out_ref, rtol=1e-12, atol=1e-14) and abs(lse_on - lse_ref) < 1e-12
print("        you should see about 1e-16 (float64 rounding) for every block size")

# %% [markdown]
# ## Step 3 · Tiles
#
# Now for a whole head: cut the queries into tiles of Br rows and the keys into tiles of Bc rows.
# A query tile keeps its own running max, sum and output (Br of each) and walks the key tiles left
# to right, doing step 2's block update with a (Br, Bc) tile of scores. Causality makes three kinds
# of key tile: those wholly at or below the diagonal need no mask at all; those wholly above it
# (every key later than every query of the tile) would contribute exactly zero, so they are never
# visited; only the tiles that cross the diagonal need the -inf mask. About half the T x T work
# disappears, and nothing larger than a (Br, Bc) tile is ever held.

# %%
def flash_forward(q, k, v, Br=16, Bc=16):
    """One head: q, k, v (T, hs) -> out (T, hs), lse (T,); causal, tiles of Br queries x Bc keys."""
    T, hs = q.shape
    scale = 1.0 / math.sqrt(hs)
    out, lse, visited = np.zeros_like(q), np.zeros(T), 0
    for i0 in range(0, T, Br):
        qi = q[i0:i0 + Br]  # (br, hs)
        rows = np.arange(i0, i0 + len(qi))[:, None]  # the query positions of the tile
        m, ell, o = np.full(len(qi), -np.inf), np.zeros(len(qi)), np.zeros_like(qi)  # running max, sum, output
        for j0 in range(0, i0 + len(qi), Bc):  # key tiles after the tile's last query: never visited
            visited += 1
            s = qi @ k[j0:j0 + Bc].T * scale  # (br, bc): the only scores that ever exist
            if j0 + Bc - 1 > i0:  # the tile crosses the diagonal: mask keys after their query
                s = np.where(np.arange(j0, j0 + s.shape[1])[None, :] > rows, -np.inf, s)
            m_new = np.maximum(m, s.max(axis=1))
            alpha = np.exp(m - m_new)  # (br,)
            p = np.exp(s - m_new[:, None])  # (br, bc)
            ell = ell * alpha + p.sum(axis=1)
            o = o * alpha[:, None] + p @ v[j0:j0 + Bc]
            m = m_new
        out[i0:i0 + Br] = o / ell[:, None]
        lse[i0:i0 + Br] = m + np.log(ell)
    return out, lse, visited


T, hs = 100, 16  # 100 is not a multiple of the tile: the last tiles are ragged
q, k, v = (rng.standard_normal((1, 1, T, hs)) for _ in range(3))  # float64, one head
out_f, lse_f, visited = flash_forward(q[0, 0], k[0, 0], v[0, 0])
out_r, lse_r = kernels.attention_forward(q, k, v, backend="numpy")  # the library's (T, T) reference
n_tiles = math.ceil(T / 16)
print(f"step 3: max |tiled - reference| out {np.abs(out_f - out_r[0, 0]).max():.1e}, "
      f"lse {np.abs(lse_f - lse_r[0, 0]).max():.1e}; visited {visited} of {n_tiles ** 2} tile pairs")
print("        you should see about 1e-15 twice, and 28 of 49 tile pairs")
assert np.abs(out_f - out_r[0, 0]).max() < 1e-12 and np.abs(lse_f - lse_r[0, 0]).max() < 1e-12

# %% [markdown]
# ## Step 4 · The backward from lse, tile by tile
#
# Tutorial 03 derived the backward of one head:
#
#     dv = P^T dout,    dP = dout v^T,    dS = P * (dP - D),    dq = dS k * scale,    dk = dS^T q * scale
#
# with D = rowsum(dP * P) = rowsum(dout * out), a vector of T numbers. Every line is a sum over
# tiles, and a tile of P is rebuilt from its scores and the saved lse: P = exp(S - lse), no
# running max needed, because lse already is the final normaliser. FlashAttention-2's order: the
# outer loop over key tiles j holds dk_j and dv_j, the inner loop over the query tiles i at or below
# the diagonal adds into them, and each (i, j) pair adds its share into dq_i. The C++ kernel gives
# every (batch, head) to one thread, so these sums never race.

# %%
def flash_backward(dout, q, k, v, out, lse, Br=16, Bc=16):
    """One head: dout, q, k, v, out (T, hs), lse (T,) -> dq, dk, dv (T, hs), tile by tile."""
    T, hs = q.shape
    scale = 1.0 / math.sqrt(hs)
    D = (dout * out).sum(axis=1)  # (T,): rowsum(dP * P) without any T x T work
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for j0 in range(0, T, Bc):
        kj, vj = k[j0:j0 + Bc], v[j0:j0 + Bc]  # (bc, hs)
        for i0 in range(j0 // Br * Br, T, Br):  # query tiles that see at least one key of tile j
            sl = slice(i0, i0 + Br)
            s = q[sl] @ kj.T * scale  # (br, bc)
            future = np.arange(j0, j0 + len(kj))[None, :] > np.arange(i0, i0 + s.shape[0])[:, None]
            p = np.where(future, 0.0, np.exp(np.where(future, 0.0, s) - lse[sl, None]))  # P, rebuilt
            dv[j0:j0 + Bc] += p.T @ dout[sl]
            dp = dout[sl] @ vj.T
            ds = p * (dp - D[sl, None]) * scale
            dq[sl] += ds @ kj
            dk[j0:j0 + Bc] += ds.T @ q[sl]
    return dq, dk, dv


dout = rng.standard_normal((1, 1, T, hs))
grads_f = flash_backward(dout[0, 0], q[0, 0], k[0, 0], v[0, 0], out_f, lse_f)
grads_r = kernels.attention_backward(dout, q, k, v, out_r, lse_r, backend="numpy")
diff = max(float(np.abs(a - b[0, 0]).max()) for a, b in zip(grads_f, grads_r))
# and finite differences of the tiled forward itself, on a smaller head
qs, ks, vs, ds_ = (x[:, :, :20].copy() for x in (q, k, v, dout))
fwd = lambda: flash_forward(qs[0, 0], ks[0, 0], vs[0, 0], 8, 8)[0]
o_s, l_s, _ = flash_forward(qs[0, 0], ks[0, 0], vs[0, 0], 8, 8)
analytic = flash_backward(ds_[0, 0], qs[0, 0], ks[0, 0], vs[0, 0], o_s, l_s, 8, 8)
fd_error = max(rel_error(g, numerical_gradient(fwd, x[0, 0], ds_[0, 0])) for g, x in zip(analytic, (qs, ks, vs)))
print(f"step 4: max |tiled backward - reference| {diff:.1e}; tiled backward vs finite differences {fd_error:.1e}")
print("        you should see about 1e-14 and about 1e-10 or smaller")
assert diff < 1e-10 and fd_error < 1e-8

# %% [markdown]
# ## Step 5 · The C++ kernel
#
# `kernels.attention_forward(..., backend="cpu")` runs `csrc/attention.cpp`, which is steps 3 and 4
# in float32 with tiles of 64 queries x 64 keys, and three changes for speed:
#
# - It computes the transposed tile S^T = K_j Q_i^T (keys down, queries across), so each query's
#   running max and sum sit in a SIMD lane: the max and the sum over keys are vertical vector ops.
# - The tile products run in a register-tiled micro-kernel (a 6 x 64 block of C held in 24 AVX-512
#   registers), chosen at run time from AVX-512, AVX2 or portable C++ (the environment variable
#   MINIGPT_SIMD picks a lower one).
# - exp is a polynomial evaluated in SIMD registers (2^f by a degree-6 polynomial, about 1e-7
#   relative error, the size of float32 rounding), written as 2^x so the 1/sqrt(hs) scale and log2(e)
#   fold into one multiply-add.
#
# Forward work items are (batch, head, query tile), handed out costliest first, because tile i
# visits i + 1 key tiles; the backward gives each thread whole heads. Dropout regenerates the
# counter-based mask of `kernels.dropout_keep_mask` tile by tile.
#
# First, agreement with the NumPy reference (float64) on shapes that divide no tile or vector size.

# %%
try:
    kernels.check_backend("cpu")  # raises, saying why and how to build, if minigpt._core is missing
    HAVE_CORE = True
except RuntimeError as e:
    HAVE_CORE = False
    print(f"step 5: skipping the C++ steps: minigpt._core is not built ({e})")

if HAVE_CORE:
    info = kernels.core_info()
    print(f"step 5: minigpt._core: {info['num_threads']} threads, attention SIMD path {info['attention_simd']}")
    for shape, p_drop in (((2, 3, 130, 24), 0.0), ((1, 2, 200, 80), 0.1), ((3, 1, 65, 64), 0.0)):
        x32 = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]  # q, k, v, dout
        o, l_ = kernels.attention_forward(*x32[:3], p_drop, 7, backend="cpu")
        cpu = (o, l_) + kernels.attention_backward(x32[3], *x32[:3], o, l_, p_drop, 7, backend="cpu")
        x64 = [x.astype(np.float64) for x in x32]
        o, l_ = kernels.attention_forward(*x64[:3], p_drop, 7, backend="numpy")
        ref = (o, l_) + kernels.attention_backward(x64[3], *x64[:3], o, l_, p_drop, 7, backend="numpy")
        worst = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(cpu, ref))
        print(f"        {str(shape):16s} dropout {p_drop}: largest max|C++ - NumPy| / max|NumPy| "
              f"over out, lse, dq, dk, dv: {worst:.1e}")
        assert worst < 1e-4
    print("        you should see about 1e-7 to 1e-6: float32 rounding")

# %% [markdown]
# ## Step 6 · Memory, measured
#
# `tracemalloc` sees every array NumPy allocates. The NumPy reference's peak during forward +
# backward is dominated by its (B, NH, T, T) temporaries. The C++ kernel's arrays are only its
# results (out, lse, dq, dk, dv); its own scratch is small and is counted by hand: per thread, a
# few 64 x 64 tiles and, in the backward, q^T and dout^T of one head (2 x hs x T floats).

# %%
def traced_peak(fn):
    """Peak bytes NumPy allocated while fn ran."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def fwd_bwd(q, k, v, dout, backend):
    o, l_ = kernels.attention_forward(q, k, v, backend=backend)
    return kernels.attention_backward(dout, q, k, v, o, l_, backend=backend)


if HAVE_CORE:
    for B, NH, T, hs in ((8, 6, 256, 64), (1, 12, 1024, 64)):
        x32 = [rng.standard_normal((B, NH, T, hs)).astype(np.float32) for _ in range(4)]
        results = 4 * x32[0].nbytes + B * NH * T * 4  # out, dq, dk, dv and lse: what every version returns
        numpy_peak = traced_peak(lambda: fwd_bwd(*x32, "numpy"))
        cpu_peak = traced_peak(lambda: fwd_bwd(*x32, "cpu"))
        Tp = -(-T // 64) * 64  # T in whole tiles
        scratch = info["num_threads"] * 4 * (2 * hs * (Tp + 16) + 2 * Tp + 4 * 64 * 64)  # attention.cpp's backward
        print(f"step 6: B={B} NH={NH} T={T}: results {results / 2**20:5.1f} MiB; NumPy peak {numpy_peak / 2**20:6.1f} MiB; "
              f"C++ peak {cpu_peak / 2**20:5.1f} MiB + scratch {scratch / 2**20:4.2f} MiB")
        assert cpu_peak + scratch < numpy_peak / 2
    print("        you should see NumPy at several times one (B, NH, T, T) array (about 66 and 250 MiB), and")
    print("        the C++ kernel at exactly its results (12 MiB) plus about 0.4 and 1.2 MiB of scratch")

# %% [markdown]
# ## Step 7 · Time against NumPy
#
# Forward + backward, float32, both implementations taking turns in each round so they see the same
# machine load; best of two rounds after a warm-up. The NumPy reference runs its matmuls in OpenBLAS on all cores;
# the C++ kernel uses OpenMP on all cores. Times vary between machines and runs: compare the numbers
# printed side by side, and see `benchmarks/bench_attention.py` for the comparison with PyTorch.

# %%
from minigpt.timing import best_times  # each function's best of 2 rounds, taking turns


if HAVE_CORE:
    for B, NH, T, hs in ((8, 6, 256, 64), (1, 12, 1024, 64)):
        x32 = [rng.standard_normal((B, NH, T, hs)).astype(np.float32) for _ in range(4)]
        t_np, t_cpp = best_times(lambda: fwd_bwd(*x32, "numpy"), lambda: fwd_bwd(*x32, "cpu"), repeat=2)
        print(f"step 7: B={B} NH={NH} T={T}: NumPy {t_np * 1e3:7.1f} ms, C++ {t_cpp * 1e3:6.1f} ms, "
              f"C++ is {t_np / t_cpp:.1f}x faster")
    print("        you should see the C++ kernel several times faster than NumPy at both sizes (4-20x measured on")
    print("        2-core AVX-512 machines: how much depends on the machine and on what else runs there)")

# %% [markdown]
# ## Step 8 · The heads where the model keeps them
#
# A model does not hold q, k, v as (B, NH, T, hs) arrays: `c_attn` gives one (B, T, 3C) array with q, k
# and v side by side in each row, each of them NH heads of hs floats side by side. Tutorial 03's
# `split_heads` copies them out into three (B, NH, T, hs) arrays, and `merge_heads` copies the output
# back into (B, T, C) for `c_proj`; the backward copies again. The kernel never needed whole arrays,
# only rows of hs floats a fixed stride apart: in (B, NH, T, hs) the rows of one head are hs floats
# apart, inside qkv they are 3C apart, inside the (B, T, C) output C apart. So
# `kernels.attention_forward_fused(qkv, NH)` reads each head in place and writes y in place. The tile
# arithmetic is exactly the same, so the results are the same bits; only the copies are gone (a tenth
# of a training step at the default model's width).

# %%
from minigpt.layers import merge_heads, split_heads

if HAVE_CORE:
    B, NH, T, hs = 16, 4, 256, 32  # the default `minigpt pretrain` model: C = 128
    qkv = rng.standard_normal((B, T, 3 * NH * hs)).astype(np.float32)

    def split_attend_merge():
        out, lse = kernels.attention_forward(*split_heads(qkv, NH), backend="cpu")
        return merge_heads(out), lse

    def in_place():
        return kernels.attention_forward_fused(qkv, NH)

    (y_split, lse_split), (y_fused, lse_fused) = split_attend_merge(), in_place()
    same = np.array_equal(y_split, y_fused) and np.array_equal(lse_split, lse_fused)
    print(f"step 8: split-attend-merge and in-place give the same bits: {same}")
    assert same
    t_split, t_fused = best_times(split_attend_merge, in_place, repeat=5)
    print(f"        forward at B={B} NH={NH} T={T} hs={hs}: split-attend-merge {t_split * 1e3:5.2f} ms, "
          f"in place {t_fused * 1e3:5.2f} ms")
    print("        you should see True, and the in-place call faster by about the three copies and the merge")
