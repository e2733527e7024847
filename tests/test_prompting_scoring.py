"""Candidate scoring (minigpt.prompting.scoring) against a slow, obviously correct reference."""
import numpy as np
import pytest
from conftest import requires_core

from minigpt.config import GPTConfig
from minigpt.model import GPT
from minigpt.prompting.scoring import aggregate, gather_logprobs, score_candidates

V = 23


def spread_model(arch="gpt2", dtype="float64", backend="numpy", block_size=16):
    """A tiny model whose next token depends on the whole context: at GPT-2's init (std 0.02) the last
    hidden state is mostly the current token's embedding, and a cache that mixed up positions could
    pass unnoticed, so the weight matrices are scaled up (as tutorial 09 explains)."""
    model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=2, n_head=2, n_embd=16, arch=arch),
                seed=3, dtype=dtype, backend=backend)
    for p in model.params.values():
        if p.ndim == 2:
            p *= 6.0
    return model


def reference_logprobs(model, prompt, candidate):
    """One full forward over prompt + candidate; the log-softmax at the positions that predict the candidate.
    (The last token is left out of the input: its prediction is not needed, and the input then fits
    a context of P + L - 1.)"""
    ids = np.array([list(prompt) + list(candidate)[:-1]])
    logits, _ = model.forward(ids, train=False)  # (1, P+L-1, V)
    logits = logits[0].astype(np.float64)
    out = []
    for j, token in enumerate(candidate):
        row = logits[len(prompt) - 1 + j]  # position P-1+j predicts candidate token j
        out.append(row[token] - np.log(np.exp(row - row.max()).sum()) - row.max())
    return np.array(out)


PROMPT = [5, 1, 7, 7, 2, 9]
CANDIDATES = [[3], [4, 8, 1], [0, 22, 6, 6, 11], [4, 8]]  # shared first tokens, lengths 1 to 5


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_scores_equal_the_full_forward_reference(arch):
    model = spread_model(arch)
    got = score_candidates(model, PROMPT, CANDIDATES)
    for c, lp in zip(CANDIDATES, got):
        want = reference_logprobs(model, PROMPT, c)
        assert lp.shape == (len(c),) and lp.dtype == np.float64
        np.testing.assert_allclose(lp, want, rtol=0, atol=1e-10)
    # the scores differ across candidates and positions: the check above compared something
    assert len({round(float(lp[0]), 6) for lp in got}) > 2


def test_cached_prefix_equals_uncached_path():
    model = spread_model()
    cached = score_candidates(model, PROMPT, CANDIDATES, use_cache=True)
    uncached = score_candidates(model, PROMPT, CANDIDATES, use_cache=False)
    for a, b in zip(cached, uncached):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_single_token_candidates_and_a_one_token_prompt():
    model = spread_model()
    got = score_candidates(model, [4], [[1], [2], [3]])
    logits = model.forward(np.array([[4]]), train=False)[0][0, 0]
    log_softmax = logits - np.log(np.exp(logits).sum())
    np.testing.assert_allclose(np.concatenate(got), log_softmax[[1, 2, 3]], atol=1e-12)


def test_candidates_filling_the_context_exactly():
    model = spread_model(block_size=8)
    prompt, candidates = [1, 2, 3], [[4, 5, 6, 7, 8, 9], [1]]  # 3 + 6 - 1 = 8 positions read
    for c, lp in zip(candidates, score_candidates(model, prompt, candidates)):
        np.testing.assert_allclose(lp, reference_logprobs(model, prompt, c), atol=1e-10)


def test_rolling_the_cache_position_back_scores_candidates_one_by_one():
    """The scoring module's claim: scoring candidates in turn on one cache needs no copy, because a call at
    position P overwrites the previous candidate's keys and values and reads nothing beyond its own."""
    model = spread_model()
    cache = model.new_kv_cache(1)
    last = model.forward_cached(np.array([PROMPT]), cache, 0)[0, -1]
    first = last - np.log(np.exp(last).sum())
    for c in sorted(CANDIDATES, key=len, reverse=True):  # longest first: leftovers of it stay in the cache
        logits = model.forward_cached(np.array([c[:-1]]), cache, len(PROMPT))[0] if len(c) > 1 else np.zeros((0, V))
        rest = [row[t] - np.log(np.exp(row).sum()) for row, t in zip(logits, c[1:])]
        np.testing.assert_allclose([first[c[0]], *rest], reference_logprobs(model, PROMPT, c), atol=1e-10)


@requires_core
def test_cpu_backend_float32_matches_the_float64_reference():
    reference = spread_model()
    model = spread_model(dtype="float32", backend="cpu")
    for c, lp in zip(CANDIDATES, score_candidates(model, PROMPT, CANDIDATES)):
        np.testing.assert_allclose(lp, reference_logprobs(reference, PROMPT, c), rtol=0, atol=2e-3)


def test_bad_lengths_are_clear_errors():
    model = spread_model(block_size=8)
    with pytest.raises(ValueError, match="prompt is empty"):
        score_candidates(model, [], [[1]])
    with pytest.raises(ValueError, match="candidate 1 has no tokens"):
        score_candidates(model, [1], [[1], []])
    with pytest.raises(ValueError, match="no candidates"):
        score_candidates(model, [1], [])
    with pytest.raises(ValueError, match="longer than the model's context of 8"):
        score_candidates(model, [1, 2, 3, 4], [[1], [1, 2, 3, 4, 5, 6]])


def test_aggregate_rules():
    logprobs = [np.array([-1.0]), np.array([-0.4, -0.4, -0.4])]
    texts = [" a", " bcdef"]
    np.testing.assert_allclose(aggregate(logprobs, texts, "total"), [-1.0, -1.2])
    np.testing.assert_allclose(aggregate(logprobs, texts, "per_token"), [-1.0, -0.4])
    np.testing.assert_allclose(aggregate(logprobs, texts, "per_char"), [-0.5, -0.2])
    # the short candidate wins on the total, the long one once length is divided out
    assert aggregate(logprobs, texts, "total").argmax() == 0 and aggregate(logprobs, texts, "per_token").argmax() == 1
    with pytest.raises(ValueError, match="unknown scoring 'mean'"):
        aggregate(logprobs, texts, "mean")


def test_log_probabilities_of_logits_far_beyond_exp_s_range():
    # exp(1000) overflows float64: the max is taken out first, so confident logits give finite log-probabilities
    logits = np.array([[[1000.0, 0.0, -1000.0], [-2000.0, -2000.0, -2000.0]]])
    got = gather_logprobs(logits, np.array([[1, 0]]))
    assert np.allclose(got, [[-1000.0, -np.log(3)]], rtol=0, atol=1e-9)
