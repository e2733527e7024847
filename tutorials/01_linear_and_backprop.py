# %% [markdown]
# # 01 · The chain rule on a Linear layer
#
# A GPT is mostly matrix multiplies: of a GPT-2 block's 12C² + 13C parameters, 12C² sit in four
# Linear layers. So backpropagation through `out = x @ w + b` is the first thing to get right.
# This tutorial writes a Linear layer's forward and backward passes by hand, proves the backward
# with finite differences, and then calls minigpt's own version and its C++ kernel.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/01_linear_and_backprop.py
#
# Every step ends with a printed check and a line saying what you should see. The `assert`s are
# there so that CI notices if the library and this text ever disagree.

# %%

import numpy as np

from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import linear_backward, linear_forward

rng = np.random.default_rng(0)

# %% [markdown]
# ## Step 1 · The math
#
# A Linear layer maps each row of `x` (C_in features) to C_out features:
#
#     out[n, j] = sum_i x[n, i] * w[i, j] + b[j]        x: (N, C_in), w: (C_in, C_out), b: (C_out,)
#
# The weight is stored `(C_in, C_out)`, the way GPT-2's checkpoint stores it, so the forward is
# `x @ w` with no transpose. A GPT feeds it `(B, T, C)` activations; the B·T positions are simply
# N = B·T independent rows.
#
# Write it on toy sizes in NumPy, and check one entry against the sum written out by hand.

# %%
B, T, C_in, C_out = 2, 3, 4, 5
x = rng.standard_normal((B, T, C_in))  # (B, T, C_in), float64: exact enough for gradient checks
w = rng.standard_normal((C_in, C_out))  # (C_in, C_out)
b = rng.standard_normal(C_out)  # (C_out,)


def my_linear_forward(x, w, b):
    out = x @ w + b  # (B, T, C_out): @ treats the leading axes as a batch of rows
    cache = (x, w)  # what the backward will need; see step 5
    return out, cache


out, cache = my_linear_forward(x, w, b)
by_hand = sum(x[1, 2, i] * w[i, 3] for i in range(C_in)) + b[3]
print(f"step 1: out shape {out.shape}, out[1, 2, 3] = {out[1, 2, 3]:.6f}, by hand = {by_hand:.6f}")
print("        you should see the shape (2, 3, 5) and the same number twice")
assert out.shape == (B, T, C_out) and np.isclose(out[1, 2, 3], by_hand)

# %% [markdown]
# ## Step 2 · Derive the backward
#
# Backpropagation hands the layer `dout = dL/dout`, the gradient of the final scalar loss L with
# respect to the layer's output, and asks for the gradients with respect to its inputs. The chain
# rule sums over every path from an input to L. Each `x[n, i]` reaches L through `out[n, j]`
# for every j, with `d out[n, j] / d x[n, i] = w[i, j]`, so
#
#     dx[n, i] = sum_j dout[n, j] * w[i, j]        ->  dx = dout @ w^T     (N, C_in)
#
# Each `w[i, j]` reaches L through `out[n, j]` for every row n, with slope `x[n, i]`:
#
#     dw[i, j] = sum_n x[n, i] * dout[n, j]        ->  dw = x^T @ dout     (C_in, C_out)
#
# and each `b[j]` is added to every row with slope 1:
#
#     db[j] = sum_n dout[n, j]                     ->  db = dout.sum(rows) (C_out,)
#
# A quick sanity rule: every gradient has the shape of the thing it is the gradient of, and there
# is only one way to multiply the available arrays into that shape.

# %%
def my_linear_backward(dout, cache):
    x, w = cache
    C_in, C_out = w.shape
    x2 = x.reshape(-1, C_in)  # (N, C_in): all positions are rows
    dout2 = dout.reshape(-1, C_out)  # (N, C_out)
    dx = (dout2 @ w.T).reshape(x.shape)  # (B, T, C_in)
    dw = x2.T @ dout2  # (C_in, C_out): sums over all N rows
    db = dout2.sum(axis=0)  # (C_out,)
    return dx, dw, db


dout = rng.standard_normal(out.shape)  # a random upstream gradient: tests every entry, not just ones
dx, dw, db = my_linear_backward(dout, cache)
print(f"step 2: dx {dx.shape}, dw {dw.shape}, db {db.shape}")
print("        you should see (2, 3, 4), (4, 5) and (5,): the shapes of x, w and b")
assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape

# %% [markdown]
# ## Step 3 · Check it with finite differences
#
# A derivative is a slope, and a slope can be measured. The central difference
#
#     f'(x) ≈ (f(x + h) - f(x - h)) / 2h
#
# has an error of order h²: in f(x + h) - f(x - h) the even powers of h of the Taylor series (f''·h²/2
# first) cancel. Three lines on a function whose derivative we know, f(x) = x³ at x = 2, where f'(2) = 12:

# %%
f, x0, h = (lambda z: z**3), 2.0, 1e-5
slope = (f(x0 + h) - f(x0 - h)) / (2 * h)
print(f"step 3a: central difference {slope:.10f}, exact 12, error {abs(slope - 12):.1e}")
print("         you should see an error around 1e-10 or smaller")
assert abs(slope - 12) < 1e-8

# %% [markdown]
# For an array input, perturb one element at a time. `minigpt.gradcheck.numerical_gradient(f, x, df)`
# does exactly that for the scalar `sum(f() * df)`: with `df = dout`, its gradient with respect to
# `x` is what our backward should return for `dx`. `rel_error` compares whole arrays:
# `||a - b|| / (||a|| + ||b||)`. In float64 a correct backward gives about 1e-10; a wrong one,
# something near 1.

# %%
fwd = lambda: my_linear_forward(x, w, b)[0]  # reads x, w, b, which numerical_gradient perturbs in place
errors = {name: rel_error(analytic, numerical_gradient(fwd, param, dout))
          for name, analytic, param in [("dx", dx, x), ("dw", dw, w), ("db", db, b)]}
print("step 3b: relative errors", {k: f"{v:.1e}" for k, v in errors.items()})
print("         you should see all three around 1e-10 or smaller")
assert max(errors.values()) < 1e-8

# %% [markdown]
# ## Step 4 · Why backward *adds* into gradients
#
# When a weight is used twice, the loss depends on it along two paths, and the chain rule sums
# them. A GPT does this with its token embedding `wte`: it is read at the input (a lookup) and again
# at the output (the tied head). Here, the smallest case: the same square weight applied twice,
# `y = (x @ w2) @ w2`. Each use has its own cache and gives its own `dw`; the true gradient is
# their sum. That is why minigpt's layers do `grads["weight"] += dw`, and why a training step
# starts with `model.zero_grad()`.

# %%
w2 = rng.standard_normal((C_in, C_in))  # (C_in, C_in), square so it can be applied twice
x_in = rng.standard_normal((B, T, C_in))
zero_b = np.zeros(C_in)


def twice():
    h1, c1 = my_linear_forward(x_in, w2, zero_b)  # first use of w2
    y, c2 = my_linear_forward(h1, w2, zero_b)  # second use of w2
    return y, c1, c2


y, c1, c2 = twice()
dy = rng.standard_normal(y.shape)
dh1, dw_second, _ = my_linear_backward(dy, c2)  # backward runs in reverse order of the forward
_, dw_first, _ = my_linear_backward(dh1, c1)

grad_w2 = np.zeros_like(w2)
grad_w2 += dw_second  # accumulate, like Linear.backward does
grad_w2 += dw_first
numeric = numerical_gradient(lambda: twice()[0], w2, dy)
print(f"step 4: rel error, sum of both uses {rel_error(grad_w2, numeric):.1e}, "
      f"the last backward alone (= instead of +=) {rel_error(dw_first, numeric):.1e}")
print("        you should see about 1e-10 for the sum and something of order 0.1-1 for one use alone")
assert rel_error(grad_w2, numeric) < 1e-8 and rel_error(dw_first, numeric) > 1e-2

# %% [markdown]
# ## Step 5 · What to cache, and why
#
# The backward formulas name exactly what must survive from the forward:
#
# - `dw = x^T @ dout` needs the **input x**;
# - `dx = dout @ w^T` needs the **weight w** (a reference, not a copy: it does not change before
#   the backward runs);
# - `db` needs nothing but `dout`.
#
# The output `out` is *not* needed, so it is not kept. Caching costs memory: in GPT-2 small
# (B=8, T=1024, C=768) the input of one `c_fc` layer is 8·1024·768 float32 numbers, 24 MiB, and a
# 12-layer model keeps dozens of such activations alive until the backward. Recomputing them
# instead ("activation checkpointing") trades that memory for a second forward pass.
#
# minigpt's `linear_forward` keeps `(x, w, has_bias, backend)`; its `x` is the caller's array, not a
# copy.

# %%
lib_out, lib_cache = linear_forward(x, w, b)
cached_x, cached_w = lib_cache[0], lib_cache[1]
print(f"step 5: the library's cache holds x itself: {cached_x is x}, and w itself: {cached_w is w} (no copies)")
print(f"        GPT-2 small, one c_fc input: {8 * 1024 * 768 * 4 / 2**20:.0f} MiB of float32")
print("        you should see True, True and 24 MiB")
assert cached_x is x and cached_w is w

# %% [markdown]
# ## Step 6 · Compare with the library
#
# `minigpt.layers.linear_forward` / `linear_backward` are the same function pair, written on
# `kernels.matmul`, which expresses `dout @ w^T` and `x^T @ dout` with `trans_a` / `trans_b` flags
# instead of transposed copies. With `backend="numpy"` the arithmetic is the same as ours.

# %%
lib_dx, lib_dw, lib_db = linear_backward(dout, lib_cache)
diffs = {name: float(np.max(np.abs(mine - lib))) for name, mine, lib in
         [("out", out, lib_out), ("dx", dx, lib_dx), ("dw", dw, lib_dw), ("db", db, lib_db)]}
print("step 6: max |ours - library|", {k: f"{v:.1e}" for k, v in diffs.items()})
print("        you should see 0 or about 1e-16 (float64 rounding) for all four")
assert max(diffs.values()) < 1e-12

# %% [markdown]
# ## Step 7 · The C++ kernel against NumPy
#
# `kernels.matmul(..., backend="cpu")` runs the C++/OpenMP matmul in `minigpt._core` (float32,
# C-contiguous inputs). First check it agrees with NumPy, then time both on a Linear layer's
# three products at a size from GPT-2 small: 512 rows, 768 → 768 features.
#
# A matmul of (M, K) by (K, N) costs 2·M·N·K floating-point operations (a multiply and an add per
# term), so GFLOP/s = 2·M·N·K / seconds / 1e9. NumPy calls OpenBLAS, a library tuned over many
# years. The C++ kernel is minigpt's own (`csrc/matmul.cpp`, whose header comment walks through
# it): the same sums, reorganised so that data is reused from registers and caches, with a
# micro-kernel chosen at run time for the CPU (`kernels.core_info()` prints which). Whether it
# beats OpenBLAS on your machine is for the measurement to say, not for this text. Compare only
# numbers taken side by side in one run, on a quiet machine: absolute speeds vary between
# machines, and other processes competing for the cores can slow either side several times over.

# %%
from minigpt.timing import best_times  # each function's best of 5 rounds, taking turns


try:
    kernels.check_backend("cpu")  # raises, saying why and how to build, if minigpt._core is missing
    HAVE_CORE = True
except RuntimeError as e:
    HAVE_CORE = False
    print(f"step 7: skipping the C++ steps: {e}")
if HAVE_CORE:
    print(f"step 7: minigpt._core {kernels.core_info()}")
    M, K, N = 512, 768, 768
    xf = rng.standard_normal((M, K)).astype(np.float32)  # (M, K) activations
    wf = (rng.standard_normal((K, N)) * 0.02).astype(np.float32)  # (K, N) weight
    bf = rng.standard_normal(N).astype(np.float32)  # (N,)
    doutf = rng.standard_normal((M, N)).astype(np.float32)  # (M, N)
    # the three products of a Linear layer: forward, dx and dw
    cases = {
        "out = x @ w + b": dict(a=xf, b=wf, bias=bf),
        "dx  = dout @ w^T": dict(a=doutf, b=wf, trans_b=True),
        "dw  = x^T @ dout": dict(a=xf, b=doutf, trans_a=True),
    }
    flops = 2 * M * N * K
    for name, args in cases.items():
        ref = kernels.matmul(**args, backend="numpy")
        got = kernels.matmul(**args, backend="cpu")
        err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
        t_np, t_cpp = best_times(lambda: kernels.matmul(**args, backend="numpy"),
                                 lambda: kernels.matmul(**args, backend="cpu"))
        print(f"        {name}: max diff / max |ref| {err:.1e};  NumPy {flops / t_np / 1e9:6.1f} GFLOP/s, "
              f"C++ {flops / t_cpp / 1e9:6.1f} GFLOP/s, C++/NumPy speed ratio {t_np / t_cpp:.2f}")
        assert err < 1e-5  # float32 sums of 768 terms in a different order agree to about 1e-6
    print("        you should see differences of 0 to about 1e-6: float32 sums taken in another order round")
    print("        differently, and give identical bits when both kernels happen to add in the same order;")
    print("        and the two speeds side by side: a ratio above 1 means the C++ kernel is the faster one")
