"""Sampling: the KV cache gives the same logits and the same greedy tokens; filters behave."""
import numpy as np
import pytest

import minigpt
from conftest import requires_core
from minigpt.generate import choose_token, filter_logits, generate


def random_model(arch, block_size=12, backend="numpy", dtype="float64"):
    cfg = minigpt.GPTConfig(vocab_size=30, block_size=block_size, n_layer=2, n_head=2, n_embd=16, arch=arch)
    model = minigpt.GPT(cfg, seed=0, dtype=dtype, backend=backend)
    rng = np.random.default_rng(1)
    for p in model.params.values():  # spread the weights so the logits are far from uniform
        p += (rng.standard_normal(p.shape) * 0.3).astype(p.dtype)
    return model


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_cached_logits_equal_full_forward(arch):
    model = random_model(arch, dtype="float32")
    idx = np.array([[1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1]])
    full, _ = model.forward(idx, train=False)
    cache = model.new_kv_cache(2)
    parts = [model.forward_cached(idx[:, :4], cache, 0), model.forward_cached(idx[:, 4:5], cache, 4),
             model.forward_cached(idx[:, 5:], cache, 5)]
    assert np.allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-5)


@requires_core
@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_cpu_cached_logits_equal_full_forward_and_numpy(arch):
    # backend="cpu" runs the cached steps through the fused C++ attention_cached and the small-M matmul
    model = random_model(arch, backend="cpu", dtype="float32")
    reference = random_model(arch, backend="numpy", dtype="float64")
    idx = np.array([[1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1]])
    full, _ = model.forward(idx, train=False)
    cache = model.new_kv_cache(2)
    parts = [model.forward_cached(idx[:, :4], cache, 0), model.forward_cached(idx[:, 4:5], cache, 4),
             model.forward_cached(idx[:, 5:], cache, 5)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(full, reference.forward(idx, train=False)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_last_only_gives_the_last_positions_logits(backend):
    model = random_model("gpt2", backend=backend, dtype="float32")
    idx = np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
    every = model.forward_cached(idx, model.new_kv_cache(2), 0)
    last = model.forward_cached(idx, model.new_kv_cache(2), 0, last_only=True)
    assert last.shape == (2, 1, 30)
    np.testing.assert_allclose(last, every[:, -1:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_greedy_and_seeded_sampling_identical_with_and_without_cache(arch, backend):
    model = random_model(arch, backend=backend, dtype="float64" if backend == "numpy" else "float32")
    for kwargs in (dict(greedy=True), dict(temperature=0.9, top_k=5, top_p=0.9, seed=4)):
        cached = list(generate(model, [1, 2, 3], 30, **kwargs))  # 33 tokens: the 12-token window slides
        uncached = list(generate(model, [1, 2, 3], 30, use_cache=False, **kwargs))
        assert cached == uncached and len(cached) == 30


def test_stop_token_ends_generation():
    model = random_model("gpt2")
    first = list(generate(model, [1, 2], 5, greedy=True))
    stopped = list(generate(model, [1, 2], 5, greedy=True, stop_token=first[1]))
    assert stopped == first[:first.index(first[1]) + 1]


def test_cache_rejects_positions_past_the_context_and_a_cache_of_another_depth():
    model = random_model("gpt2", block_size=4)
    with pytest.raises(ValueError, match=r"positions 2 .. 4 must lie in 0 .. block_size - 1 = 3"):
        model.forward_cached(np.array([[1, 2, 3]]), model.new_kv_cache(1), 2)
    with pytest.raises(ValueError, match=r"positions -1 .. 0"):
        model.forward_cached(np.array([[1, 2]]), model.new_kv_cache(1), -1)
    with pytest.raises(TypeError, match="pos must be an integer position, got 1.5"):  # not position 1, quietly
        model.forward_cached(np.array([[1]]), model.new_kv_cache(1), 1.5)
    with pytest.raises(ValueError, match="kv_cache holds 0 layers' keys and values, the model has 2 layers"):
        model.forward_cached(np.array([[1]]), [], 0)  # zip would have skipped every layer


def test_a_tiny_temperature_is_argmax_and_non_finite_logits_are_an_error():
    logits = np.array([3.0, 1.0, 2.0, -5.0])
    rng = np.random.default_rng(0)
    assert [choose_token(logits, rng, temperature=1e-310) for _ in range(5)] == [0] * 5  # was NaN probabilities
    for bad in (np.nan, np.inf):
        for greedy in (True, False):
            with pytest.raises(ValueError, match="logits are not finite"):
                choose_token(np.array([1.0, bad, 0.0]), rng, greedy=greedy)


def test_filters():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert np.isfinite(filter_logits(logits, top_k=2)).sum() == 2
    kept = np.exp(filter_logits(logits, top_p=0.75))
    assert np.count_nonzero(kept) == 2 and np.isclose(kept.sum(), 1.0)  # 0.5 + 0.3 reaches 0.75
    sharp = np.exp(filter_logits(logits, temperature=0.1))
    assert sharp[0] > 0.99
    for bad in (dict(temperature=0), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ValueError):
            filter_logits(logits, **bad)
    with pytest.raises(ValueError, match="at least one"):
        list(generate(random_model("gpt2"), [], 3))



def test_top_k_and_top_p_keep_the_most_likely_tokens():
    z = np.array([0.1, 3.0, -1.0, 2.0, 0.5])
    assert set(np.flatnonzero(np.isfinite(filter_logits(z, top_k=2)))) == {1, 3}
    p = np.array([0.1, 0.45, 0.05, 0.3, 0.1])  # nucleus 0.7: 0.45 + 0.3
    assert set(np.flatnonzero(np.isfinite(filter_logits(np.log(p), top_p=0.7)))) == {1, 3}
    # the edges: every token but the least likely one, or all of them
    assert set(np.flatnonzero(np.isfinite(filter_logits(z, top_k=4)))) == {0, 1, 3, 4}
    assert np.isfinite(filter_logits(z, top_k=5)).all() and np.isfinite(filter_logits(z, top_k=9)).all()
    assert np.allclose(np.exp(filter_logits(np.log(p), top_p=1.0)), p)  # top_p = 1 keeps the whole distribution


def test_choose_token_applies_the_filters():
    # nearly uniform logits: unfiltered, 50 draws would pick more than one token
    rng, logits = np.random.default_rng(0), np.array([1.7, 2.0, 1.9, 1.8])
    assert len({choose_token(logits, rng) for _ in range(50)}) > 1
    assert {choose_token(logits, rng, top_k=1) for _ in range(50)} == {1}
    assert {choose_token(logits, rng, top_p=0.2) for _ in range(50)} == {1}
    assert {choose_token(logits, rng, top_k=2) for _ in range(50)} == {1, 2}


def test_generate_checks_its_settings_when_called_even_with_greedy():
    model = random_model("gpt2")
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0, got -5"):
        generate(model, [1, 2], -5)  # raises at the call, before any token is asked for
    assert list(generate(model, [1, 2], 0)) == []
    bad = [(dict(temperature=float("inf")), "temperature must be a finite number > 0, got inf"),
           (dict(temperature=float("nan")), "temperature must be a finite number > 0, got nan"),
           (dict(temperature=0.0), "temperature must be a finite number > 0, got 0.0"),
           (dict(top_k=0), "top_k must be an integer >= 1, got 0"),
           (dict(top_k=2.5), "top_k must be an integer >= 1, got 2.5"),  # not NumPy's error at the first token
           (dict(top_k=float("nan")), "top_k must be an integer >= 1, got nan"),  # NaN < 1 is false: it passed
           (dict(top_p=5.0), r"top_p must be in \(0, 1\], got 5.0"),
           (dict(top_p=float("nan")), r"top_p must be in \(0, 1\], got nan")]
    for greedy in (False, True):
        for kwargs, message in bad:
            with pytest.raises(ValueError, match=message):
                generate(model, [1, 2], 3, greedy=greedy, **kwargs)


def test_sampling_takes_one_row_of_logits():
    # top-k over a (2, V) array would pick the k largest of both rows together, argmax an index into the flat array
    logits, rng = np.array([[1.0, 2.0], [3.0, 0.0]]), np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"logits must be one row \(V,\), got shape \(2, 2\)"):
        filter_logits(logits, top_k=1)
    for greedy in (False, True):
        with pytest.raises(ValueError, match="logits must be one row"):
            choose_token(logits, rng, greedy=greedy)
    assert choose_token(logits[0], rng, greedy=True) == 1
