"""Sampling from a trained GPT: greedy, temperature, top-k, top-p, with or without a KV cache.

Each new token needs the logits at the last position. Without a cache that means running the
whole context through the model again for every token; with a KV cache (each layer's keys and
values of the positions seen so far) a step feeds only the newest token: O(T) work, not O(T^2).

Past the context length (block_size) both paths keep the last block_size tokens, as nanoGPT
does: the cache is rebuilt from that window, so cached and uncached sampling stay identical.
"""
import numbers

import numpy as np

from minigpt.kernels.backend import to_host


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None):
    """Log-probabilities (V,) after temperature, top-k and top-p (nucleus) filtering; -inf = excluded.

    top_k keeps the k largest logits; top_p keeps the smallest set of tokens, in order of
    probability, whose probabilities sum to at least p (Holtzman et al. 2019, arXiv:1904.09751).
    """
    check_sampling(temperature, top_k, top_p)
    check_one_row(logits)
    # the max first, then the temperature: a tiny temperature makes the others -inf, the max 0 (dividing first
    # would give inf - inf = NaN)
    z = logits.astype(np.float64)
    with np.errstate(over="ignore"):  # overflowing to -inf is what a tiny temperature means: probability 0
        z = (z - z.max()) / temperature
    if top_k is not None:
        if top_k < z.size:
            kth = np.partition(z, -top_k)[-top_k]
            z = np.where(z < kth, -np.inf, z)
    z = z - z.max()
    z = z - np.log(np.exp(z).sum())
    if top_p is not None:
        order = np.argsort(-z, kind="stable")
        cumulative = np.cumsum(np.exp(z[order]))
        cut = np.searchsorted(cumulative, top_p) + 1  # the first position where the sum reaches p
        z[order[cut:]] = -np.inf
        z = z - np.log(np.exp(z).sum())
    return z


def check_sampling(temperature, top_k, top_p):
    """Raise ValueError for settings that cannot sample: an infinite temperature would sample uniformly and a
    NaN one gives NaN probabilities, so both are rejected along with temperature <= 0."""
    if not (np.isfinite(temperature) and temperature > 0):
        hint = " (use greedy=True for argmax decoding)" if temperature <= 0 else ""
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}{hint}")
    # an integer: top_k = 2.5 would fail only at the first token, and NaN < 1 is false, so NaN would pass
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0.0 < top_p <= 1.0:  # also rejects NaN
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def check_one_row(logits):
    """Sampling picks one token from one row of logits (V,): the max, the partition and argmax would all
    work on a (B, V) array too, over all of it at once, and answer for none of its rows."""
    if np.ndim(logits) != 1:
        raise ValueError(f"logits must be one row (V,), got shape {np.shape(logits)}; sample each row on its own")


def choose_token(logits, rng, greedy=False, temperature=1.0, top_k=None, top_p=None):
    check_one_row(logits)
    if not np.isfinite(logits).all():  # argmax would pick token 0 and sampling fail on NaN probabilities
        raise ValueError("the model's logits are not finite (NaN or inf): its weights are damaged, or training "
                         "diverged")
    if greedy:
        return int(np.argmax(logits))
    logprobs = filter_logits(logits, temperature, top_k, top_p)
    return int(rng.choice(logprobs.size, p=np.exp(logprobs) / np.exp(logprobs).sum()))


def generate(model, prompt, max_new_tokens, *, greedy=False, temperature=1.0, top_k=None, top_p=None,
             seed=0, stop_token=None, use_cache=True):
    """An iterator of up to max_new_tokens new token ids after the prompt (a non-empty list of ids).

    Stops early after yielding stop_token (e.g. the tokenizer's end-of-text id). The arguments are checked
    here, when generate is called, not at the first token; the sampling settings even with greedy=True,
    where they are unused, so that a mistyped option is reported rather than silently ignored.
    """
    if len(prompt) == 0:
        raise ValueError("the prompt must hold at least one token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    check_sampling(temperature, top_k, top_p)
    return sample_tokens(model, prompt, max_new_tokens, greedy, temperature, top_k, top_p, seed, stop_token,
                         use_cache)


def sample_tokens(model, prompt, max_new_tokens, greedy, temperature, top_k, top_p, seed, stop_token, use_cache):
    """generate's loop, a generator of its own so that generate's checks run before the first token is asked for."""
    rng = np.random.default_rng(seed)
    tokens = list(prompt)
    block = model.config.block_size
    cache, filled = None, 0  # filled: how many positions of the window the cache holds
    for _ in range(max_new_tokens):
        window = tokens[-block:]
        if not use_cache:
            logits, _ = model.forward(np.array([window]), train=False)
        elif cache is None or len(tokens) > block:  # first step, or the window slid: rebuild the cache
            cache = model.new_kv_cache(1)
            logits = model.forward_cached(np.array([window]), cache, 0, last_only=True)
            filled = len(window)
        else:
            logits = model.forward_cached(np.array([window[filled:]]), cache, filled, last_only=True)
            filled = len(window)
        token = choose_token(to_host(logits[0, -1]), rng, greedy, temperature, top_k, top_p)  # (V,) from a GPU too
        tokens.append(token)
        yield token
        if token == stop_token:
            return
