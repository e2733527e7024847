"""GPT.forward against the whole network written out here in float64, for both block layouts.

Without torch and transformers (the [parity] extra, not in [test]) the GPT's forward has no independent
check: test_model.py checks causality, the gradients by finite differences (which only prove that
backward agrees with forward: an attention scale or a LayerNorm epsilon that is wrong in both passes
it) and that training lowers the loss. Here the logits and the loss are rebuilt from the parameters by
name, one head and one row at a time, and so are the logits of generation with a KV cache.
"""
import math

import numpy as np
import pytest

import minigpt


def layer_norm(x, w, b):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b


def gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def attention(x, p, prefix, n_head):
    """Causal multi-head self-attention of one sequence x (T, C), head by head, row by row."""
    T, C = x.shape
    hs = C // n_head
    qkv = x @ p[prefix + "c_attn.weight"] + p[prefix + "c_attn.bias"]
    y = np.zeros((T, C))
    for h in range(n_head):
        q, k, v = (qkv[:, part * C + h * hs: part * C + (h + 1) * hs] for part in range(3))
        for i in range(T):
            scores = np.array([q[i] @ k[j] / math.sqrt(hs) for j in range(i + 1)])  # keys 0 .. i only
            weights = np.exp(scores - scores.max())
            y[i, h * hs:(h + 1) * hs] = (weights / weights.sum()) @ v[:i + 1]
    return y @ p[prefix + "c_proj.weight"] + p[prefix + "c_proj.bias"]


def mlp(x, p, prefix):
    return gelu(x @ p[prefix + "c_fc.weight"] + p[prefix + "c_fc.bias"]) @ p[prefix + "c_proj.weight"] + \
        p[prefix + "c_proj.bias"]


def gpt_logits(idx, p, cfg):
    """idx (B, T) -> logits (B, T, V) of a GPT-1 (post-LN, no final LN) or GPT-2 (pre-LN, ln_f) network."""
    out = []
    for seq in idx:
        x = p["wte.weight"][seq] + p["wpe.weight"][:len(seq)]
        for i in range(cfg.n_layer):
            ln = lambda name, z: layer_norm(z, p[f"h.{i}.{name}.weight"], p[f"h.{i}.{name}.bias"])  # noqa: E731
            if cfg.arch == "gpt2":
                x = x + attention(ln("ln_1", x), p, f"h.{i}.attn.", cfg.n_head)
                x = x + mlp(ln("ln_2", x), p, f"h.{i}.mlp.")
            else:
                x = ln("ln_1", x + attention(x, p, f"h.{i}.attn.", cfg.n_head))
                x = ln("ln_2", x + mlp(x, p, f"h.{i}.mlp."))
        if cfg.arch == "gpt2":
            x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
        out.append(x @ p["wte.weight"].T)  # the tied head
    return np.array(out)


def make(arch):
    cfg = minigpt.GPTConfig(vocab_size=13, block_size=9, n_layer=2, n_head=3, n_embd=12, dropout=0.1, arch=arch)
    model = minigpt.GPT(cfg, seed=0, dtype="float64")
    rng = np.random.default_rng(8)
    for p in model.params.values():  # away from the init (LayerNorm 1 and 0, zero biases): every term matters
        p += rng.standard_normal(p.shape) * 0.3
    return model, cfg


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_logits_and_loss_match_the_network_written_out(arch):
    model, cfg = make(arch)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 13, (2, 9)), rng.integers(0, 13, (2, 9))
    targets[0, 2] = targets[1, 7] = -1  # padding: not counted
    expected = gpt_logits(idx, model.params, cfg)
    logits, loss = model.forward(idx, targets, train=False)  # evaluation: dropout off
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-10)
    logp = expected - np.log(np.exp(expected).sum(-1, keepdims=True))
    counted = [(b, t) for b in range(2) for t in range(9) if targets[b, t] >= 0]
    assert len(counted) == 16
    np.testing.assert_allclose(loss, -np.mean([logp[b, t, targets[b, t]] for b, t in counted]), rtol=1e-10)
    # a shorter batch uses positions 0 .. T-1 of wpe
    np.testing.assert_allclose(model.forward(idx[:, :4], train=False)[0], gpt_logits(idx[:, :4], model.params, cfg),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_generation_with_a_kv_cache_matches_the_network_written_out(arch):
    model, cfg = make(arch)
    idx = np.random.default_rng(2).integers(0, 13, (2, 9))
    expected = gpt_logits(idx, model.params, cfg)
    cache = model.new_kv_cache(2)
    got = [model.forward_cached(idx[:, :5], cache, 0)]  # a prompt of 5, then one token at a time
    got += [model.forward_cached(idx[:, t:t + 1], cache, t) for t in range(5, 9)]
    np.testing.assert_allclose(np.concatenate(got, axis=1), expected, rtol=1e-10, atol=1e-10)
    last = model.forward_cached(idx[:, :6], model.new_kv_cache(2), 0, last_only=True)
    np.testing.assert_allclose(last[:, 0], expected[:, 5], rtol=1e-10, atol=1e-10)
