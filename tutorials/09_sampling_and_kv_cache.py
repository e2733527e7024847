# %% [markdown]
# # 09 · Sampling and the KV cache
#
# A trained GPT gives, at every step, a distribution over the next token. Generating text is a loop:
# run the model, turn the last position's logits into one token, append it, repeat. Two questions
# decide how that loop behaves:
#
# 1. **Which token?** Always the likeliest (greedy), or a random draw, and from which distribution:
#    sharpened or flattened by a temperature, cut to the k likeliest tokens (top-k) or to the smallest
#    set holding probability p (top-p, "nucleus" sampling, Holtzman et al. 2019, arXiv:1904.09751).
# 2. **How fast?** Run naively, step t re-processes all t tokens of the context, so n new tokens cost
#    O(n²) token-passes through the model. A **KV cache** keeps every layer's keys and values of the
#    tokens already seen, so each step processes only the newest token.
#
# This tutorial does both: the sampling rules on a toy distribution with
# `minigpt.generate.filter_logits`, then the KV cache of `GPT.forward_cached`: what it stores, that it
# gives the same logits and the same greedy text as the plain forward, and how much faster it is.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/09_sampling_and_kv_cache.py

# %%
import math
import time

import numpy as np

from minigpt import kernels
from minigpt.config import GPTConfig
from minigpt.generate import choose_token, filter_logits, generate
from minigpt.model import GPT

try:
    BACKEND = kernels.check_backend("cpu")  # the C++ kernels; raises, saying how to build them, if missing
except RuntimeError as e:
    BACKEND = "numpy"
    print(f"skipping the C++ steps: minigpt._core is not built ({e}); the model steps use the NumPy backend")

# %% [markdown]
# ## Step 1 · A toy next-token distribution
#
# Suppose the model, after "Long live the", gives these logits over a six-word vocabulary. Softmax
# turns logits into probabilities: p_i = exp(z_i) / sum_j exp(z_j). **Greedy** decoding takes the
# argmax, "king", every time.

# %%
words = ["king", "queen", "duke", "day", "sword", "zebra"]
logits = np.array([3.0, 2.2, 1.5, 0.8, 0.0, -3.0])


def probs(logprobs):
    return np.exp(logprobs)  # filter_logits returns log-probabilities; excluded tokens have -inf


def show(p):
    return "  ".join(f"{w} {q:.2f}" for w, q in zip(words, p))


p = probs(filter_logits(logits))
print(f"step 1: softmax  {show(p)}")
print(f"        greedy picks {words[int(np.argmax(logits))]!r}")
print("        you should see king 0.54, queen 0.24, ... zebra 0.00, and 'king'")
assert math.isclose(p.sum(), 1.0) and words[int(np.argmax(logits))] == "king"

# %% [markdown]
# ## Step 2 · Temperature
#
# Divide the logits by T before the softmax. T < 1 stretches the gaps between logits, so the
# distribution sharpens towards greedy (T → 0 *is* greedy); T > 1 shrinks them and flattens it
# towards uniform. Temperature never changes the *order* of the tokens, only how much mass the
# unlikely ones get. A handy summary is the entropy H = -sum p log p, in nats: 0 for a certain
# choice, ln 6 = 1.79 for uniform over six words.

# %%
def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


print("step 2:")
entropies = []
for T in (0.5, 1.0, 2.0):
    p = probs(filter_logits(logits, temperature=T))
    entropies.append(entropy(p))
    print(f"        T={T}:  {show(p)}   entropy {entropies[-1]:.2f}")
print("        you should see king's share go from 0.79 (T=0.5) to 0.54 to 0.36 (T=2), entropy rising")
assert entropies[0] < entropies[1] < entropies[2] < math.log(len(words))

# %% [markdown]
# ## Step 3 · Top-k and top-p
#
# Even a good model gives a small probability to thousands of bad tokens, and over hundreds of
# draws some of them get picked. Truncation removes the tail before sampling:
#
# - **top-k** keeps the k largest logits (here k = 3) and renormalises;
# - **top-p** keeps the smallest set of likeliest tokens whose probabilities add up to at least p.
#   Unlike top-k, the number kept adapts: one or two tokens when the model is sure, many when it is not.
#
# `filter_logits` applies temperature, then top-k, then top-p, and returns log-probabilities with
# `-inf` for the excluded tokens.

# %%
p_k = probs(filter_logits(logits, top_k=3))
p_p = probs(filter_logits(logits, top_p=0.95))
kept = {T: int((probs(filter_logits(logits, temperature=T, top_p=0.95)) > 0).sum()) for T in (0.5, 1.0, 2.0)}
print(f"step 3: top-k 3     {show(p_k)}")
print(f"        top-p 0.95  {show(p_p)}")
print(f"        tokens top-p 0.95 keeps at temperature 0.5, 1, 2: {list(kept.values())}")
print("        you should see three words kept by top-k (0.60, 0.27, 0.13); four by top-p, because")
print("        0.545 + 0.245 + 0.122 = 0.912 is short of 0.95, so 'day' joins; both renormalised to sum to 1;")
print("        and top-p keeping fewer tokens when the distribution is sharp, more when it is flat: 3, 4, 5")
assert (p_k > 0).sum() == 3 and (p_p > 0).sum() == 4 and kept[0.5] < kept[1.0] < kept[2.0]
assert math.isclose(p_k.sum(), 1.0) and math.isclose(p_p.sum(), 1.0)

# %% [markdown]
# Sampling draws from that distribution with an explicit, seeded generator (`choose_token`), so a
# seed reproduces a generation exactly. Over many draws the frequencies match the probabilities:

# %%
rng = np.random.default_rng(0)
draws = [choose_token(logits, rng, top_p=0.95) for _ in range(20_000)]
freq = np.bincount(draws, minlength=len(words)) / len(draws)
print(f"step 3b: observed   {show(freq)}")
print(f"         expected   {show(p_p)}")
print(f"         max difference {np.abs(freq - p_p).max():.3f}")
print("         you should see the two rows agree to about 0.01, and 0.00 for 'sword' and 'zebra'")
assert np.abs(freq - p_p).max() < 0.02 and freq[4] == freq[5] == 0

# %% [markdown]
# ## Step 4 · A model to generate with
#
# For the KV cache we need a model, but not a trained one: the cache is about *how* the logits are
# computed, not what they say. We use random weights in a small GPT with a long context
# (block_size 256), where the cache matters.
#
# One adjustment. At GPT-2's initialisation (weights of std 0.02) the blocks add only a little to
# the residual stream, so the last hidden state is mostly the current token's own embedding, and the
# tied output head (logits = x @ wte^T) scores that same token highest: greedy decoding repeats the
# last token of the prompt forever, whatever came before it. A cache that mixed up positions or
# dropped keys would still pass a test on such a model. So we multiply every weight matrix by 8
# (std 0.16; 0.057 for the two residual projections of each block, which GPT-2 starts at
# 0.02 / sqrt(2 n_layer)): attention weights become peaked, the blocks dominate the residual stream,
# and the next token depends on the whole context. The model is still untrained, so the prompt's
# last token still comes back often; it is no longer the only answer.

# %%
cfg = GPTConfig(vocab_size=65, block_size=256, n_layer=4, n_head=4, n_embd=128)
model = GPT(cfg, seed=0, backend=BACKEND)
prompt = [1, 2, 3]
at_init = list(generate(model, prompt, 20, greedy=True))
for name, p in model.params.items():
    if p.ndim == 2:  # wte, wpe and the Linear weights; LayerNorm gains and biases stay as they are
        p *= 8.0  # in place: the layers hold these very arrays
spread = list(generate(model, prompt, 20, greedy=True))
print(f"step 4: {model.num_params():,} parameters, backend {BACKEND}")
print(f"        greedy after {prompt} at initialisation: {at_init}")
print(f"        greedy after {prompt} with spread-out weights: {spread}")
print("        you should see the prompt's last token, 3, repeated twenty times, then a sequence of more than")
print("        five different tokens (3 still among them, often)")
assert set(at_init) == {3} and len(set(spread)) > 5

# %% [markdown]
# ## Step 5 · What the KV cache stores
#
# In attention, position t's query is compared with the keys of positions 0..t and mixes their
# values. The keys and values of earlier positions never change (causal attention: a position does
# not see later ones), so instead of recomputing them at every step we keep them: per layer, a key
# tensor and a value tensor of shape (B, NH, block_size, hs), filled as positions arrive.
# `model.new_kv_cache(B)` preallocates them.
#
# Its size is 2 (k and v) x layers x block_size x C floats per sequence: small for our model, 75 MB
# for GPT-2 small at its full context of 1024 (and at GPT-3's size, gigabytes: the cache, not the
# weights, is what limits batch sizes when serving large models).

# %%
cache = model.new_kv_cache(1)
k0, v0 = cache[0]
cache_mb = sum(k.nbytes + v.nbytes for k, v in cache) / 1e6
gpt2_mb = 2 * 12 * 1024 * 768 * 4 / 1e6  # 2 (k, v) x 12 layers x 1024 positions x 768 wide x 4 bytes
print(f"step 5: {len(cache)} layers of (k, v); k {k0.shape} {k0.dtype}; {cache_mb:.2f} MB in all")
print(f"        GPT-2 small, batch 1, context 1024: {gpt2_mb:.0f} MB")
print("        you should see 4 layers of (1, 4, 256, 32) float32, 1.05 MB, and 75 MB")
assert k0.shape == (1, cfg.n_head, cfg.block_size, cfg.head_size) and len(cache) == cfg.n_layer

# %% [markdown]
# ## Step 6 · Cached and uncached logits agree
#
# `model.forward_cached(idx, cache, pos)` runs only the new tokens `idx` (at positions pos, pos+1,
# ...), writes their keys and values into the cache, and attends over everything the cache holds.
# Feed a 100-token sequence one token at a time through the cache, and compare each step's logits with
# one plain forward over the whole sequence, which computes every position from scratch:

# %%
rng = np.random.default_rng(1)
seq = rng.integers(0, cfg.vocab_size, size=(1, 100))
full = model.forward(seq, train=False)[0]  # (1, 100, V), all positions at once
cache = model.new_kv_cache(1)
stepwise = np.concatenate([model.forward_cached(seq[:, t:t + 1], cache, t) for t in range(seq.shape[1])], axis=1)
max_diff = float(np.abs(stepwise - full).max())
print(f"step 6: logits {stepwise.shape}; max |cached - uncached| = {max_diff:.1e} (logits of size "
      f"{np.abs(full).max():.0f})")
print("        you should see a difference around 1e-6 to 1e-5: float32 rounding, summed in another order")
assert max_diff < 1e-3 * np.abs(full).max()

# %% [markdown]
# A prompt does not have to go in one token at a time: `forward_cached` takes several new tokens at
# once (the "prefill"), with a causal mask among them. `generate` feeds the whole prompt in one call,
# then one token per step.

# %%
cache = model.new_kv_cache(1)
prefill = model.forward_cached(seq[:, :60], cache, 0)  # positions 0..59 in one call
rest = np.concatenate([model.forward_cached(seq[:, t:t + 1], cache, t) for t in range(60, 100)], axis=1)
diff2 = float(np.abs(np.concatenate([prefill, rest], axis=1) - full).max())
print(f"step 6b: a 60-token prefill, then 40 single steps: max difference {diff2:.1e}")
print("         you should see about the same small number")
assert diff2 < 1e-3 * np.abs(full).max()

# %% [markdown]
# ## Step 7 · Identical greedy text
#
# Same logits up to rounding, so the same choices: greedy decoding with and without the cache gives
# the same tokens. (With a random draw too, given the same seed.)

# %%
with_cache = list(generate(model, prompt, 100, greedy=True, use_cache=True))
without = list(generate(model, prompt, 100, greedy=True, use_cache=False))
sampled = [list(generate(model, prompt, 100, temperature=1.0, top_k=10, seed=7, use_cache=c)) for c in (True, False)]
print(f"step 7: greedy: {len(with_cache)} tokens each, identical: {with_cache == without}; first ten {with_cache[:10]}")
print(f"        sampled (top-k 10, seed 7): identical: {sampled[0] == sampled[1]}")
print("        you should see True and True")
assert with_cache == without and sampled[0] == sampled[1]

# %% [markdown]
# ## Step 8 · How much faster?
#
# Without the cache, step t runs the model on all t tokens of the context: n new tokens cost about
# n²/2 token-passes (and the attention inside each pass is itself quadratic). With the cache each step
# is one token-pass plus attention over the cached keys: about n token-passes. For 200 new tokens that
# is a factor of about 100 less arithmetic; the measured speed-up is far smaller, because a
# one-token step does little arithmetic per call: it cannot keep the matrix kernels busy (each weight
# is read from memory for a single row of activations), and the fixed cost of every call (Python,
# the kernel launch, a few NumPy temporaries; tens of microseconds per layer) does not shrink with
# the work. In a model this small that fixed cost dominates a cached step; the gap widens with the
# width and the context.

# %%
def tokens_per_s(use_cache, n_new=200, repeats=1):
    """Greedy tokens per second from a 1-token prompt, the best of `repeats` runs after a warm-up."""
    list(generate(model, [0], 5, greedy=True, use_cache=use_cache))  # warm-up: threads, buffers
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = list(generate(model, [0], n_new, greedy=True, use_cache=use_cache))
        best = min(best, time.perf_counter() - t0)
    assert len(out) == n_new
    return n_new / best


cached_tps, uncached_tps = tokens_per_s(True, repeats=3), tokens_per_s(False)
print(f"step 8: 200 new tokens, batch 1, context up to 201: with the cache {cached_tps:,.0f} tokens/s, "
      f"without {uncached_tps:,.0f} tokens/s: {cached_tps / uncached_tps:.1f}x faster")
print("        you should see the cache ahead by several times (about 13x on two cores; other programs")
print("        competing for the cores change both figures a lot); benchmarks/bench_generate.py measures")
print("        larger models against PyTorch")
assert cached_tps > 2 * uncached_tps

# %% [markdown]
# ## What to take away
#
# - Greedy, temperature, top-k and top-p are a few lines on the logits of the last position; a seed
#   makes sampling reproducible.
# - The KV cache stores every layer's keys and values, 2 x layers x context x width floats per
#   sequence, and makes each generation step linear in the context instead of quadratic (the
#   attention over the cache still grows with it), with the same results.
# - Past the context length both paths keep the last block_size tokens; `generate` then rebuilds the
#   cache from that window (see `minigpt/generate.py`), so the two stay identical there too.
