# %% [markdown]
# # 04 · The GPT architecture: blocks, weight tying, initialisation, parameter counts
#
# Tutorials 01-03 built the layers. Here they become a model: `minigpt.GPT`, in the two layouts
# of the papers, GPT-1 (Radford et al. 2018, post-LN) and GPT-2 (Radford et al. 2019, pre-LN).
# We check the whole model the way we checked each layer (the loss at initialisation, a
# finite-difference gradient check, overfitting one batch), then count the parameters of GPT-1,
# GPT-2 and GPT-3 by hand and compare with the papers.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/04_gpt_architecture.py

# %%
import inspect
import math

import numpy as np

import minigpt
from minigpt.config import PRESETS, statistics_table
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.model import Block


def tiny_config(arch, **overrides):
    """A GPT small enough to check by finite differences: V=11 tokens, T=6 positions, 2 layers of width 8."""
    fields = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=0.0, arch=arch)
    return minigpt.GPTConfig(**{**fields, **overrides})


# %% [markdown]
# ## Step 1 · A block, post-LN and pre-LN
#
# A block is attention then an MLP, each added back into the "residual stream" `x`. The two papers
# differ only in where the LayerNorm sits. This is `minigpt.model.Block.forward`, printed from the
# library itself:

# %%
print(inspect.getsource(Block.forward))

# %% [markdown]
# Side by side:
#
#     GPT-1, post-LN                        GPT-2, pre-LN
#     h   = ln_1(x + attn(x))               h   = x + attn(ln_1(x))
#     out = ln_2(h + mlp(h))                out = h + mlp(ln_2(h))
#     (no final LayerNorm)                  a final ln_f before the output head
#
# In GPT-2 the stream `x` itself is never normalised inside the stack: each sub-layer reads a
# normalised copy and *adds* its result. So there is a clean identity path from the embeddings to
# the last layer, and gradients flow back along it undamped, which is what lets GPT-2 stack 48
# layers. In GPT-1 every block renormalises the stream.
#
# A check that makes the difference visible: zero the two output projections (`attn.c_proj` and
# `mlp.c_proj`, the layers that write into the stream), so both sub-layers return 0. A pre-LN block
# then is exactly the identity; a post-LN block still normalises, `ln_2(ln_1(x))`.

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 6, 8)) * 3.0 + 1.0  # (B, T, C), far from normalised
for arch in ("gpt1", "gpt2"):
    block = Block(tiny_config(arch), rng, np.float64, backend="numpy")
    for writer in (block.attn.c_proj, block.mlp.c_proj):
        for p in writer.params.values():
            p[...] = 0.0
    y = block.forward(x, rng, train=False)
    print(f"step 1: {arch}: max |out - x| {np.abs(y - x).max():.2f}; "
          f"rows of out have mean {np.abs(y.mean(-1)).max():.1e} and std {y.std(-1).mean():.3f}")
    if arch == "gpt2":
        assert np.array_equal(y, x)
    else:
        assert np.allclose(y.mean(-1), 0.0) and np.allclose(y.std(-1), 1.0, atol=1e-3)
print("        you should see gpt1 change x (every row normalised: mean ~1e-16, std ~1.000),")
print("        and gpt2 give back x exactly (max |out - x| 0.00)")

# %% [markdown]
# ## Step 2 · Parameter names and weight tying
#
# Parameters are named as in the GPT-2 checkpoint (`wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn`, ...),
# so loading released weights is a mapping, not a puzzle, and weights are stored (in, out) as there.
#
# There is no separate output matrix: the logits are `x @ wte^T`, the token embedding read
# backwards (weight tying, used by both papers). `wte` is thus used twice, at the input lookup and at
# the output, and receives two gradient contributions that the backward adds (tutorial 01, step 4).
# A token that never appears in the input still gets a gradient, through the head alone.

# %%
model = minigpt.GPT(tiny_config("gpt2"), seed=0, dtype="float64")
print("step 2: parameters of a 2-layer gpt2 (shapes are (in, out) for Linear weights):")
for name, p in model.params.items():
    if not name.startswith("h.1."):  # layer 1 has the same names as layer 0
        print(f"        {name:<24} {str(p.shape):<8}")
gpt1_names = set(minigpt.GPT(tiny_config("gpt1")).params)
print(f"        gpt1 has the same names minus {sorted(set(model.params) - gpt1_names)}")

idx = np.array([[1, 2, 3, 1, 2, 3]])  # tokens 0 and 4..10 never appear in the input
model.zero_grad()
model.forward(idx, np.array([[2, 3, 1, 2, 3, 1]]))
model.backward()
unseen_rows = model.grads["wte.weight"][[0, 4, 5, 6, 7, 8, 9, 10]]
print(f"        no separate head: {'lm_head.weight' not in model.params}; "
      f"wte gradient on tokens absent from the input, largest |entry| {np.abs(unseen_rows).max():.1e}")
print("        you should see h.0.ln_1 ... ln_f with shapes like (8, 24) for c_attn, ['ln_f.bias', 'ln_f.weight'],")
print("        True, and a nonzero gradient (about 0.1) that came through the tied head alone")
assert set(model.params) - gpt1_names == {"ln_f.weight", "ln_f.bias"}
assert model.params["h.0.attn.c_attn.weight"].shape == (8, 24) and np.abs(unseen_rows).max() > 0

# %% [markdown]
# ## Step 3 · The GPT-2 initialisation
#
# Weights start as N(0, 0.02²), biases at 0, LayerNorm gains at 1. GPT-2 adds one rule (section 2.3
# of its paper): the weights of the residual layers are scaled by 1/sqrt(N) at initialisation, N the
# number of residual layers. Each block has two, `attn.c_proj` and `mlp.c_proj`, the layers that write
# into the residual stream, so N = 2L (nanoGPT reads it so too). Each block adds two terms to the stream, so after L blocks it is a
# sum of 2L terms and its variance grows like 2L times theirs; shrinking each term by 1/sqrt(2L)
# keeps the total independent of depth.
#
# The check: the measured standard deviations, and the growth of the residual stream through an
# 8-layer stack with the rule and with it undone.

# %%
cfg8 = minigpt.GPTConfig(vocab_size=64, block_size=32, n_layer=8, n_head=4, n_embd=256, dropout=0.0)
model8 = minigpt.GPT(cfg8, seed=0)
stds = {name: float(model8.params[name].std()) for name in
        ["wte.weight", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight", "h.0.attn.c_proj.weight",
         "h.0.mlp.c_proj.weight"]}
print("step 3: init std", {n: round(s, 4) for n, s in stds.items()})
print(f"        0.02 / sqrt(2 L) = {0.02 / math.sqrt(2 * cfg8.n_layer):.4f}")


def residual_std(model, idx):
    """Std of the residual stream after the embeddings and after the last block (dropout off)."""
    x = model.wte.forward(idx) + model.wpe.forward(np.arange(idx.shape[1]))
    start = x.std()
    for block in model.h:
        x = block.forward(x, np.random.default_rng(0), train=False)  # the rng would only feed dropout
    return start, x.std()


idx8 = np.random.default_rng(1).integers(0, 64, (4, 32))
start, scaled = residual_std(model8, idx8)
for block in model8.h:  # undo the rule: residual projections back to std 0.02
    for writer in (block.attn.c_proj, block.mlp.c_proj):
        writer.params["weight"] *= math.sqrt(2 * cfg8.n_layer)
_, unscaled = residual_std(model8, idx8)
print(f"        residual stream std: embeddings {start:.3f}; after 8 blocks {scaled:.3f} with the rule, "
      f"{unscaled:.3f} without")
print("        you should see 0.02 for the first three, 0.005 for the c_proj weights, and the stream growing")
print("        about sqrt(2 L) = 4 times more without the rule than with it (0.1 vs 0.4)")
assert all(abs(stds[n] - 0.02) < 1e-3 for n in list(stds)[:3])
assert all(abs(stds[n] - 0.005) < 5e-4 for n in list(stds)[3:])
assert unscaled > 1.5 * scaled

# %% [markdown]
# ## Step 4 · The loss at initialisation
#
# With weights of size 0.02 the logits are all close to 0, so the model's first prediction is
# close to uniform over the V tokens, and the cross-entropy is `-log(1/V) = ln V`. A loss far from
# ln V at step 0 means a bug, or an initialisation too large (confidently wrong predictions).

# %%
V = 64
for arch in ("gpt1", "gpt2"):
    m = minigpt.GPT(tiny_config(arch, vocab_size=V, block_size=16, n_embd=32), seed=0)
    batch = np.random.default_rng(2).integers(0, V, (4, 17))
    _, loss = m.forward(batch[:, :-1], batch[:, 1:], train=False)  # targets: the next token
    print(f"step 4: {arch}: loss at init {loss:.4f}, ln V = ln {V} = {math.log(V):.4f}")
    assert abs(loss - math.log(V)) < 0.05
print("        you should see both losses within about 0.03 of 4.1589")

# %% [markdown]
# ## Step 5 · A whole-model gradient check
#
# `GPT.backward` calls every layer's backward in reverse order: the loss, the tied head, the final
# LayerNorm, the blocks from last to first, the embeddings. If any one of them were wrong, the gradient of some parameter would be.
# Check a few parameters of both layouts against central differences of the loss, in float64.
# The weights are first enlarged from 0.02 to 0.3: at the initial scale attention is nearly
# uniform and some paths carry almost no gradient, which would make the check weak.

# %%
names = ["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.1.attn.c_attn.weight", "h.0.mlp.c_proj.bias",
         "h.1.ln_2.bias"]
for arch in ("gpt1", "gpt2"):
    m = minigpt.GPT(tiny_config(arch), seed=0, dtype="float64")
    wrng = np.random.default_rng(3)
    for name, p in m.params.items():
        if p.ndim == 2:
            p[...] = wrng.standard_normal(p.shape) * 0.3
    batch = wrng.integers(0, 11, (2, 7))
    idx, targets = batch[:, :-1], batch[:, 1:]
    m.zero_grad()
    m.forward(idx, targets)
    m.backward()  # before the numerical gradient: it reruns forward and would overwrite the cache
    checked = names + (["ln_f.weight"] if arch == "gpt2" else [])
    errors = {name: rel_error(m.grads[name], numerical_gradient(lambda: m.forward(idx, targets)[1],
                                                                m.params[name], 1.0)) for name in checked}
    print(f"step 5: {arch}: largest rel error over {len(checked)} parameters {max(errors.values()):.1e} "
          f"({max(errors, key=errors.get)})")
    assert max(errors.values()) < 1e-6
print("        you should see about 1e-8 or smaller for both")

# %% [markdown]
# ## Step 6 · Overfit one batch
#
# The last sanity check before real training: a model that can learn anything must be able to
# memorise one small batch. Train a small float32 GPT on 4 sequences of 16 random tokens with
# `minigpt.AdamW` (no weight decay: memorising is the point) until the loss is below 0.05. Random
# tokens have no pattern, so the loss can only go down by memorising, not by learning language.

# %%
for arch in ("gpt1", "gpt2"):
    m = minigpt.GPT(tiny_config(arch, vocab_size=64, block_size=16, n_embd=32), seed=0)
    batch = np.random.default_rng(4).integers(0, 64, (4, 17))
    opt = minigpt.AdamW(m, lr=1e-2, weight_decay=0.0)
    losses = []
    for step in range(200):
        m.zero_grad()
        _, loss = m.forward(batch[:, :-1], batch[:, 1:])
        m.backward()
        opt.step()
        losses.append(loss)
        if loss < 0.05:
            break
    print(f"step 6: {arch}: loss {losses[0]:.3f} at step 0, {losses[len(losses) // 2]:.3f} at step "
          f"{len(losses) // 2}, {losses[-1]:.3f} at step {len(losses) - 1}")
    assert losses[-1] < 0.05
print("        you should see each start near 4.16 (ln 64) and fall below 0.05 within about 50 steps")

# %% [markdown]
# ## Step 7 · Counting parameters
#
# Every parameter of a block, with C = n_embd (weights (in, out) plus a bias):
#
#     ln_1          C + C                  =  2C
#     attn.c_attn   C * 3C + 3C            =  3C² +  3C      (q, k and v in one matrix)
#     attn.c_proj   C * C  + C             =   C² +   C
#     ln_2          C + C                  =  2C
#     mlp.c_fc      C * 4C + 4C            =  4C² +  4C
#     mlp.c_proj    4C * C + C             =  4C² +   C
#                                     total   12C² + 13C
#
# The model adds the token table `wte` (V·C, shared with the head), the position table `wpe`
# (P·C, P the context length) and, for GPT-2 and GPT-3, the final LayerNorm (2C):
#
#     N = V·C + P·C + L·(12C² + 13C) [+ 2C]
#
# Check the block formula against a real block, then the whole formula against the library's
# presets, which count from the shapes without allocating anything.

# %%
C = 32
m = minigpt.GPT(tiny_config("gpt2", n_embd=C, n_head=4), seed=0)
block0 = sum(p.size for name, p in m.params.items() if name.startswith("h.0."))
print(f"step 7: parameters in one block of width {C}: {block0:,}; 12C² + 13C = {12 * C * C + 13 * C:,}; "
      f"whole model {m.num_params():,} = config count {m.config.num_params():,}")
assert block0 == 12 * C * C + 13 * C and m.num_params() == m.config.num_params()


def count_by_hand(cfg):
    C, L = cfg.n_embd, cfg.n_layer
    final_ln = 2 * C if cfg.arch == "gpt2" else 0  # GPT-1 has no final LayerNorm
    return cfg.vocab_size * C + cfg.block_size * C + L * (12 * C * C + 13 * C) + final_ln


for name in PRESETS:
    assert count_by_hand(minigpt.GPTConfig.preset(name)) == minigpt.GPTConfig.preset(name).num_params()
print("        the formula matches num_params() for all", len(PRESETS), "presets")
print("        you should see 12,704 twice and the two whole-model counts equal")

# %% [markdown]
# ## Step 8 · GPT-1, GPT-2 and GPT-3 by the numbers
#
# The same table that `minigpt params` prints. Three rows to compare with the papers:
#
# - **GPT-1**: 12 layers of 768, a 40,478-token BPE vocabulary, 512 positions, no final LayerNorm:
#   116,534,784 parameters, the "117M" that the GPT-2 paper quotes for it.
# - **GPT-2 XL**: 48 layers of 1600: 1,557,611,200, where the GPT-2 paper's table says 1542M. The
#   paper's counts were off: OpenAI's gpt-2 repository notes that "our original parameter counts
#   were wrong due to an error", and names the released models 124M, 355M, 774M and 1558M, which is
#   what the shapes give.
# - **GPT-3 175B**: 96 layers of 12,288 with 2048 positions: about 174.6 billion, which the paper
#   rounds to 175.0B. At this size the embeddings are under 0.4% of the total; almost everything
#   is the 12C² per block.

# %%
print(statistics_table())
counts = {name: minigpt.GPTConfig.preset(name).num_params() for name in ("gpt1", "gpt2-xl", "gpt3-175b")}
big = minigpt.GPTConfig.preset("gpt3-175b")
embed_share = (big.vocab_size + big.block_size) * big.n_embd / counts["gpt3-175b"]
print(f"\nstep 8: GPT-1 {counts['gpt1']:,}; GPT-2 XL {counts['gpt2-xl']:,} (paper: 1542M); "
      f"GPT-3 175B {counts['gpt3-175b'] / 1e9:.1f} billion, {embed_share:.2%} of it in wte + wpe")
print("        you should see 116,534,784, 1,557,611,200, 174.6 billion, and about 0.37%")
assert counts["gpt1"] == 116_534_784 and counts["gpt2-xl"] == 1_557_611_200
assert round(counts["gpt3-175b"] / 1e9, 1) == 174.6
