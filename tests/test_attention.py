"""Causal self-attention layer: forward against a per-head loop, causality, finite differences, C++ vs NumPy."""
import math

import numpy as np
import pytest

from conftest import requires_core
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import CausalSelfAttention, self_attention_backward, self_attention_forward


def reference_attention(x, w_attn, b_attn, w_proj, b_proj, n_head):
    """Independent formula: one head at a time, an explicit mask, a plain softmax."""
    B, T, C = x.shape
    hs = C // n_head
    qkv = x @ w_attn + b_attn
    q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
    y = np.zeros_like(x)
    for b in range(B):
        for h in range(n_head):
            cols = slice(h * hs, (h + 1) * hs)
            s = q[b, :, cols] @ k[b, :, cols].T / math.sqrt(hs)
            s[np.triu_indices(T, 1)] = -np.inf
            p = np.exp(s - s.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            y[b, :, cols] = p @ v[b, :, cols]
    return y @ w_proj + b_proj


def make_layer(rng, C=12, n_head=3, dropout=0.0, dtype=np.float64, backend="numpy"):
    layer = CausalSelfAttention(C, n_head, dropout, rng, dtype, backend=backend)
    for p in layer.c_attn.params.values():  # bigger weights than the 0.02 init, so attention is not uniform
        p += rng.standard_normal(p.shape).astype(dtype) * 0.5
    return layer


def test_forward_matches_per_head_loop(rng):
    layer = make_layer(rng)
    x = rng.standard_normal((2, 5, 12))
    out = layer.forward(x, rng, train=False)
    a, p = layer.c_attn.params, layer.c_proj.params
    assert np.allclose(out, reference_attention(x, a["weight"], a["bias"], p["weight"], p["bias"], 3))


def test_future_tokens_do_not_change_the_past(rng):
    layer = make_layer(rng)
    x = rng.standard_normal((1, 6, 12))
    before = layer.forward(x, rng, train=False)
    x[0, 4:] += 10.0
    after = layer.forward(x, rng, train=False)
    assert np.allclose(before[0, :4], after[0, :4]) and not np.allclose(before[0, 4:], after[0, 4:])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_self_attention_backward_matches_finite_differences(rng, dropout):
    qkv, dy = rng.standard_normal((2, 5, 3 * 8)), rng.standard_normal((2, 5, 8))
    f = lambda: self_attention_forward(qkv, 2, dropout, seed=11)[0]
    _, cache = self_attention_forward(qkv, 2, dropout, seed=11)
    assert rel_error(self_attention_backward(dy, cache), numerical_gradient(f, qkv, dy)) < 1e-8


def test_layer_backward_matches_finite_differences_with_dropout(rng):
    layer = make_layer(rng, dropout=0.2)
    x, dout = rng.standard_normal((2, 4, 12)), rng.standard_normal((2, 4, 12))

    def f():
        return layer.forward(x, np.random.default_rng(5), train=True)  # same masks on every call

    f()
    dx = layer.backward(dout)
    assert rel_error(dx, numerical_gradient(f, x, dout)) < 1e-8
    for lin in (layer.c_attn, layer.c_proj):
        for name, p in lin.params.items():
            grad = lin.grads[name].copy()
            assert rel_error(grad, numerical_gradient(f, p, dout)) < 1e-7


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_each_call_draws_a_new_attention_dropout_mask(rng, backend):
    layer = make_layer(rng, dropout=0.5, dtype=np.float32, backend=backend)
    x = rng.standard_normal((2, 4, 12)).astype(np.float32)
    stream = np.random.default_rng(5)
    outputs = []
    for train in (True, True, False, False):
        layer.forward(x, stream, train=train)
        cache = layer.cache  # ("fused", qkv, y, ...) or ("split", q, k, v, y, ...): y, the output before c_proj
        outputs.append(cache[2] if cache[0] == "fused" else cache[4])
    # two training calls: two masks (the attention output differs, the inputs being the same); no dropout at eval
    assert not np.allclose(outputs[0], outputs[1]) and np.array_equal(outputs[2], outputs[3])


@requires_core
@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_cpu_backend_matches_numpy(dropout):
    outs, grads = [], []
    for backend in ("numpy", "cpu"):
        rng = np.random.default_rng(0)
        layer = make_layer(rng, C=40, n_head=5, dropout=dropout, dtype=np.float32, backend=backend)
        x = rng.standard_normal((3, 13, 40)).astype(np.float32)
        outs.append(layer.forward(x, np.random.default_rng(1), train=True))
        dout = rng.standard_normal(outs[-1].shape).astype(np.float32)  # not ones: every output's weight differs
        grads.append([layer.backward(dout)] + [lin.grads[name].copy() for lin in (layer.c_attn, layer.c_proj)
                                               for name in sorted(lin.grads)])
    assert np.allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    for ref, got in zip(*grads):  # dx, then the weight and bias gradients of c_attn and c_proj
        assert np.linalg.norm(got - ref) <= 1e-5 * np.linalg.norm(ref)


@requires_core
@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_heads_in_place_or_split_give_the_same_bits(rng, dropout):
    qkv = rng.standard_normal((2, 37, 3 * 48)).astype(np.float32)
    dy = rng.standard_normal((2, 37, 48)).astype(np.float32)
    results = []
    for in_place in (True, False):
        y, cache = self_attention_forward(qkv, 3, dropout, seed=5, backend="cpu", in_place=in_place)
        assert cache[0] == ("fused" if in_place else "split")
        results.append((y, self_attention_backward(dy, cache)))
    assert all(np.array_equal(a, b) for a, b in zip(*results))
    with pytest.raises(ValueError, match="split the heads"):  # the NumPy reference has no in-place kernel
        self_attention_forward(qkv, 3, backend="numpy", in_place=True)


def test_heads_must_divide_width(rng):
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(10, 3, 0.0, rng)
