# %% [markdown]
# # 02 · LayerNorm and GELU
#
# The two elementwise-ish layers of a GPT block. LayerNorm (Ba, Kiros and Hinton 2016,
# https://arxiv.org/abs/1607.06450) rescales each position's feature vector to mean 0 and
# variance 1, then applies a learned gain and bias; GPT-1 puts it after each residual sum, GPT-2
# before each sub-layer. GELU (Hendrycks and Gimpel 2016, https://arxiv.org/abs/1606.08415) is the
# non-linearity inside the MLP.
#
# LayerNorm's backward is the instructive one: every output depends on every input of its row
# through the mean and the variance, and the derivation collapses to one short line.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/02_layernorm_and_gelu.py

# %%
import math

import numpy as np

from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.kernels.layernorm import EPS
from minigpt.layers import gelu_backward, gelu_forward, layernorm_backward, layernorm_forward

rng = np.random.default_rng(0)
B, T, C = 2, 3, 8

# %% [markdown]
# ## Step 1 · LayerNorm forward
#
# For each position (each row of C features):
#
#     mean = sum(x) / C
#     var  = sum((x - mean)^2) / C          the biased variance, as GPT-2 and PyTorch use
#     rstd = 1 / sqrt(var + eps)            eps = 1e-5 keeps a constant row from dividing by 0
#     xhat = (x - mean) * rstd              mean 0, variance ~1
#     out  = xhat * w + b                   w, b: (C,), learned per feature
#
# The check: every row of `xhat` has mean 0 and variance var / (var + eps), just under 1.

# %%
def my_layernorm_forward(x, w, b, eps=EPS):
    mean = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (B, T, 1)
    rstd = 1.0 / np.sqrt(var + eps)  # (B, T, 1)
    xhat = (x - mean) * rstd  # (B, T, C)
    out = xhat * w + b  # (B, T, C)
    cache = (xhat, rstd, w)  # why these three: step 3
    return out, cache


x = rng.standard_normal((B, T, C)) * 3.0 + 1.0  # (B, T, C), off-centre and wide on purpose
w = 1.0 + 0.5 * rng.standard_normal(C)  # (C,) not the init (ones), so the check sees w at work
b = 0.5 * rng.standard_normal(C)  # (C,)
out, cache = my_layernorm_forward(x, w, b)
xhat = cache[0]
print(f"step 1: rows of xhat: largest |mean| {np.abs(xhat.mean(-1)).max():.1e}, "
      f"variances between {xhat.var(-1).min():.6f} and {xhat.var(-1).max():.6f}")
print("        you should see a mean around 1e-16 and variances just below 1 (about 0.99999)")
assert np.abs(xhat.mean(-1)).max() < 1e-12 and np.allclose(xhat.var(-1), 1.0, atol=1e-4)

# %% [markdown]
# ## Step 2 · Derive the backward
#
# The gain and bias are easy, as in a Linear layer: `db = sum(dout)` and `dw = sum(dout * xhat)`,
# summed over all positions. The gradient that reaches `xhat` is `g = dout * w`.
#
# For `dx`, work on one row. `xhat_i = (x_i - mean) * rstd` depends on every `x_j` of the row,
# through three paths: directly, through `mean`, and through `rstd`:
#
#     d mean / d x_j = 1/C
#     d var  / d x_j = 2 (x_j - mean) / C      (the path through mean drops out: sum(x - mean) = 0)
#     d rstd / d x_j = -1/2 rstd^3 * d var / d x_j = -rstd^3 (x_j - mean) / C = -rstd^2 xhat_j / C
#
#     d xhat_i / d x_j = rstd (delta_ij - 1/C) + (x_i - mean) * (-rstd^2 xhat_j / C)
#                      = rstd (delta_ij - 1/C - xhat_i xhat_j / C)
#
# The chain rule sums over i: `dx_j = sum_i g_i * d xhat_i / d x_j`, which is
#
#     dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
#
# Read it as: take the incoming gradient, and remove its two components that the normalisation
# makes pointless, a shift of the whole row (`mean(g)`) and a stretch along `xhat`
# (`xhat * mean(g * xhat)`). So every row of `dx` sums to 0 and is orthogonal to `xhat`; the
# second holds exactly when eps = 0 (then `mean(xhat^2) = 1`), and eps leaves a remainder of its size.

# %%
def my_layernorm_backward(dout, cache):
    xhat, rstd, w = cache
    dw = (dout * xhat).sum(axis=(0, 1))  # (C,)
    db = dout.sum(axis=(0, 1))  # (C,)
    g = dout * w  # (B, T, C): the gradient reaching xhat
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, dw, db


dout = rng.standard_normal(out.shape)  # (B, T, C) random upstream gradient
dx, dw, db = my_layernorm_backward(dout, cache)
shift = np.abs(dx.sum(-1)).max()
stretch = np.abs((dx * xhat).sum(-1)).max()
_, cache0 = my_layernorm_forward(x, w, b, eps=0.0)
stretch0 = np.abs((my_layernorm_backward(dout, cache0)[0] * cache0[0]).sum(-1)).max()
print(f"step 2: largest |row sum of dx| {shift:.1e}; largest |row sum of dx * xhat| {stretch:.1e}, "
      f"and with eps = 0: {stretch0:.1e}")
print("        you should see about 1e-16, then about 1e-5 (the size of eps), then about 1e-16")
assert shift < 1e-12 and stretch < 1e-4 and stretch0 < 1e-12

# %% [markdown]
# ## Step 3 · Finite differences, and what the cache keeps
#
# Central differences in float64 (see tutorial 01) against all three gradients.
#
# Then the cache. The backward formula reads `xhat` and `rstd`, plus `w`; not `mean`, not `var`.
# Our version keeps exactly those: `xhat`, a new activation-sized array, and one `rstd` per row,
# so the backward never has to redo any part of the normalisation. Step 4 shows the other choice.

# %%
fwd = lambda: my_layernorm_forward(x, w, b)[0]
errors = {name: rel_error(analytic, numerical_gradient(fwd, param, dout))
          for name, analytic, param in [("dx", dx, x), ("dw", dw, w), ("db", db, b)]}
print("step 3: relative errors", {k: f"{v:.1e}" for k, v in errors.items()})
xhat_c, rstd_c, _ = cache
print(f"        cached: xhat {xhat_c.shape} and rstd {rstd_c.shape}: {xhat_c.size + rstd_c.size} new numbers "
      f"for {x.size} inputs")
print("        you should see errors around 1e-10 or smaller, and 54 new numbers cached for 48 inputs")
assert max(errors.values()) < 1e-8

# %% [markdown]
# ## Step 4 · Compare with the library's LayerNorm, which caches differently
#
# `minigpt.layers.layernorm_forward` / `layernorm_backward` compute the same function and the
# same gradients (the math is in `minigpt/kernels/layernorm.py`); the class `LayerNorm` wraps them
# and adds `dw`, `db` into its `grads`.
#
# Its cache makes the other choice, the one llm.c makes: it keeps a reference to the input `x`
# and two numbers per row, `mean` and `rstd`, and rebuilds `xhat = (x - mean) * rstd` in the
# backward, one subtraction and one multiplication per element. The layer allocates only those
# 2 numbers per row; but holding on to `x` is free only if something else keeps `x` alive. In
# llm.c, whose activations all live in one buffer kept for the backward, something does. In
# minigpt's blocks each residual sum `x + ...` is a new array, so the `x` that `ln_1` receives
# is kept by this cache alone: either choice holds one activation-sized array per LayerNorm
# until the backward. What the library's choice saves is writing `xhat` in the forward (one
# array of output fewer, and memory traffic, not arithmetic, is what a LayerNorm spends its
# time on), for a little arithmetic in the backward.

# %%
lib_out, lib_cache = layernorm_forward(x, w, b)
lib_dx, lib_dw, lib_db = layernorm_backward(dout, lib_cache)
diffs = {name: float(np.max(np.abs(mine - lib))) for name, mine, lib in
         [("out", out, lib_out), ("dx", dx, lib_dx), ("dw", dw, lib_dw), ("db", db, lib_db)]}
cached_x, cached_mean, cached_rstd = lib_cache[:3]
print("step 4: max |ours - library|", {k: f"{v:.1e}" for k, v in diffs.items()})
print(f"        the library caches x itself: {cached_x is x}, plus mean {cached_mean.shape} and rstd "
      f"{cached_rstd.shape}: {cached_mean.size + cached_rstd.size} new numbers for {x.size} inputs")
print("        you should see 0 or about 1e-16 for all four, True, and 12 new numbers for 48 inputs")
assert max(diffs.values()) < 1e-12 and cached_x is x

# %% [markdown]
# ## Step 5 · GELU: the exact form and the tanh form
#
# GELU weights its input by the probability that a standard normal variable is below it:
#
#     gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))                       exact
#             ≈ 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))                 GPT-1, GPT-2
#
# GPT-1 and GPT-2 use the tanh approximation (it was cheaper on the hardware of the day), and so
# does minigpt, to match their checkpoints. How far apart are the two?

# %%
erf = np.vectorize(math.erf)  # NumPy has no erf; math.erf one element at a time is fine here
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_exact(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def my_gelu_forward(x):
    u = SQRT_2_OVER_PI * (x + 0.044715 * x**3)
    return 0.5 * x * (1.0 + np.tanh(u)), x  # the cache is x itself: see step 6


grid = np.linspace(-8.0, 8.0, 16001)
gap = np.abs(gelu_exact(grid) - my_gelu_forward(grid)[0])
print(f"step 5: max |exact - tanh form| on [-8, 8]: {gap.max():.1e}, at x = {grid[gap.argmax()]:.2f}")
print("        you should see about 4.7e-4, near x = -2.7: far below what training notices, but not zero,")
print("        which is why weights trained with one form should be run with the same form")
assert 1e-4 < gap.max() < 1e-3

# %% [markdown]
# ## Step 6 · GELU backward
#
# With `t = tanh(u)`, `u = sqrt(2/pi) (x + 0.044715 x^3)` and `tanh' = 1 - tanh^2`, the product
# rule gives
#
#     d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) * sqrt(2/pi) (1 + 3 * 0.044715 x^2)
#
# and `dx = dout * d gelu / dx`, element by element. The backward needs `t`, which comes from `x`:
# minigpt caches `x` and recomputes the tanh, rather than keeping a second activation-sized array
# (the MLP's hidden layer is 4C wide, the largest activation in a block).
#
# For comparison, the exact form's derivative is `Phi(x) + x * phi(x)`, with `phi` the normal
# density.

# %%
def my_gelu_backward(dout, cache):
    x = cache
    t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    du = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x**2)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


xg = rng.standard_normal((B, T, 4 * C)) * 2.0  # (B, T, 4C), the MLP's hidden width
dg = rng.standard_normal(xg.shape)
out_g, cache_g = my_gelu_forward(xg)
dxg = my_gelu_backward(dg, cache_g)
err_g = rel_error(dxg, numerical_gradient(lambda: my_gelu_forward(xg)[0], xg, dg))

exact_slope = 0.5 * (1.0 + erf(grid / math.sqrt(2.0))) + grid * np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
slope_gap = np.abs(exact_slope - my_gelu_backward(np.ones_like(grid), grid)).max()
print(f"step 6: rel error against finite differences {err_g:.1e}; "
      f"max |exact slope - tanh-form slope| {slope_gap:.1e}")
print("        you should see about 1e-10 or smaller, and a slope gap of about 1e-3")
assert err_g < 1e-8 and slope_gap < 1e-2

# %% [markdown]
# ## Step 7 · Compare with the library's GELU

# %%
lib_out_g, lib_cache_g = gelu_forward(xg)
lib_dxg = gelu_backward(dg, lib_cache_g)
diff_out, diff_dx = float(np.max(np.abs(out_g - lib_out_g))), float(np.max(np.abs(dxg - lib_dxg)))
print(f"step 7: max |ours - library|: out {diff_out:.1e}, dx {diff_dx:.1e}")
print("        you should see 0 or about 1e-16 for both")
assert max(diff_out, diff_dx) < 1e-12

# %% [markdown]
# ## Step 8 · The C++ kernels against NumPy
#
# `minigpt.kernels.layernorm_forward` / `_backward` and `gelu_forward` / `_backward` take
# `backend="cpu"` for the C++/OpenMP versions in `minigpt._core` (float32; `csrc/layernorm.cpp`
# and `csrc/gelu.cpp`). The LayerNorm kernel follows the NumPy reference line for line. The GELU
# kernel computes the same tanh form written as x times a sigmoid, 0.5 (1 + tanh(u)) =
# 1 / (1 + exp(-2u)), with an exp that vectorises: fewer operations, and no `1 + tanh(u)` to cancel
# where tanh(u) is near -1. Expect float32-sized differences, not identical bits.
#
# Then the time of forward + backward at the size of GPT-2 small's layers over 2048 positions
# (C = 768 for LayerNorm, 4C = 3072 for GELU). Both ops read and write each element only a few
# times, so memory bandwidth, not arithmetic, sets their speed; what a compiled kernel can win is
# NumPy's temporaries (every NumPy expression writes a whole new array). Compare the two numbers
# printed side by side, on a quiet machine.

# %%
from minigpt.timing import best_times  # each function's best of 5 rounds, taking turns


def layernorm_step(x, w, b, dout, backend):
    out, mean, rstd = kernels.layernorm_forward(x, w, b, backend=backend)
    return (out, *kernels.layernorm_backward(dout, x, mean, rstd, w, backend=backend))  # out, dx, dw, db


def gelu_step(x, dout, backend):
    return kernels.gelu_forward(x, backend=backend), kernels.gelu_backward(dout, x, backend=backend)


try:
    kernels.check_backend("cpu")  # raises, saying why and how to build, if minigpt._core is missing
    HAVE_CORE = True
except RuntimeError as e:
    HAVE_CORE = False
    print(f"step 8: skipping the C++ steps: {e}")
if HAVE_CORE:
    print(f"step 8: minigpt._core {kernels.core_info()}")
    f32 = lambda shape, scale=1.0: (rng.standard_normal(shape) * scale).astype(np.float32)
    N, C8 = 2048, 768
    xl, dl, xg, dg = f32((N, C8), 2.0), f32((N, C8)), f32((N, 4 * C8), 2.0), f32((N, 4 * C8))
    wl, bl = 1.0 + f32(C8, 0.1), f32(C8, 0.1)
    cases = {"layernorm": (lambda be: layernorm_step(xl, wl, bl, dl, be), ("out", "dx", "dw", "db")),
             "gelu": (lambda be: gelu_step(xg, dg, be), ("out", "dx"))}
    for name, (step, outputs) in cases.items():
        errs = [float(np.abs(a - c).max() / np.abs(a).max()) for a, c in zip(step("numpy"), step("cpu"))]
        t_np, t_cpp = best_times(lambda: step("numpy"), lambda: step("cpu"))
        print(f"        {name:<9}: max|C++ - NumPy| / max|NumPy| "
              + ", ".join(f"{o} {e:.0e}" for o, e in zip(outputs, errs))
              + f";  forward + backward NumPy {t_np * 1e3:5.1f} ms, C++ {t_cpp * 1e3:5.1f} ms, "
              f"C++/NumPy speed ratio {t_np / t_cpp:.2f}")
        assert max(errs) < 1e-4
    print("        you should see differences around 1e-7 to 1e-6 (float32 rounding), and the two times side")
    print("        by side: a ratio above 1 means the C++ kernel is the faster one")
