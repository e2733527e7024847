"""Scoring candidate completions by their log-likelihood under the language model.

Zero- and few-shot prompting (Radford et al. 2019; Brown et al. 2020, sec. 2.4) turn a task into a
choice between completions of one prompt: the label words of a classification task ("positive" or
"negative"), the endings of a story, the answers of a reading test. The model picks the completion
it finds likeliest:

    log P(c | prompt) = sum_j log P(c_j | prompt, c_1 .. c_{j-1})          c = c_1 .. c_L, its tokens

That sum (`total`) favours short candidates: every token costs probability. Two length-normalised
scores divide it out: `per_token` (the mean log-probability per token; GPT-3 compares "the per-token
likelihood (to normalize for length)" on most tasks, sec. 2.4) and `per_char` (per character of the
candidate's text, which does not depend on the tokenizer; lm-evaluation-harness calls it acc_norm).

The shared prompt is run through the model once: its keys and values go into a KV cache (as in
generation, minigpt/generate.py), and every candidate is scored from there. The candidates are
scored together as one batch: the prompt's cache rows are copied into a cache of batch size
n_candidates, and each row continues with its own candidate from position P = len(prompt). Shorter
candidates are padded at the end; causal attention means a real position never sees the padding
after it, so the padding changes nothing that is read. (Scoring the candidates one after another
needs no copy at all: forward_cached at position P overwrites the previous candidate's keys and
values and reads only positions < P + L, so rolling the position back to P is enough.)

The model reads the prompt and every candidate token but the last (whose prediction is not needed),
so a prompt of P tokens and a candidate of L tokens need P + L - 1 <= block_size positions. Fitting
prompts into that (dropping demonstrations, truncating from the left) is fewshot.py's job; here a
prompt that does not fit is an error.

Shapes: n candidates, P prompt tokens, L tokens of the longest candidate, V vocabulary.
"""
import numpy as np

from minigpt import kernels

SCORINGS = ("total", "per_token", "per_char")


def score_candidates(model, prompt, candidates, use_cache=True):
    """The log-probability of each token of each candidate, given the prompt.

    prompt: a non-empty list of token ids; candidates: a list of non-empty lists of token ids.
    use_cache=False runs one plain forward over prompt + candidate for every candidate (slow, no KV
    cache; for checking the cached path).
    returns: a list with one float64 array (L_i,) per candidate.
    """
    check_lengths(model, prompt, candidates)
    if not use_cache:
        return [score_uncached(model, prompt, c) for c in candidates]
    P, n = len(prompt), len(candidates)
    prompt_cache = model.new_kv_cache(1)
    last = model.forward_cached(np.array([prompt]), prompt_cache, 0)[:, -1:]  # (1, 1, V): predicts every c_1
    first = gather_logprobs(last, np.array([[c[0]] for c in candidates]).reshape(1, n))[0]  # (n,)
    rest = max(len(c) for c in candidates) - 1  # candidate tokens to feed: all but the last
    if rest == 0:
        return [first[i:i + 1] for i in range(n)]
    cache = model.new_kv_cache(n)
    for (k1, v1), (k, v) in zip(prompt_cache, cache):
        k[:, :, :P] = k1[:, :, :P]  # (n, NH, P, hs) <- (1, NH, P, hs): every row starts from the prompt
        v[:, :, :P] = v1[:, :, :P]
    feed = np.zeros((n, rest), dtype=np.int64)  # c_1 .. c_{L-1}, padded at the end with id 0
    targets = np.zeros((n, rest), dtype=np.int64)  # c_2 .. c_L, what those positions predict
    for i, c in enumerate(candidates):
        feed[i, :len(c) - 1] = c[:-1]
        targets[i, :len(c) - 1] = c[1:]
    logits = model.forward_cached(feed, cache, P)  # (n, rest, V)
    later = gather_logprobs(logits, targets)  # (n, rest); padded positions are read by no one
    return [np.concatenate([first[i:i + 1], later[i, :len(c) - 1]]) for i, c in enumerate(candidates)]


def score_uncached(model, prompt, candidate):
    """Log-probabilities (L,) of one candidate's tokens from one full forward over prompt + candidate[:-1]."""
    ids = list(prompt) + list(candidate)
    logits, _ = model.forward(np.array([ids[:-1]]), train=False)  # (1, P+L-1, V)
    P = len(prompt)
    return gather_logprobs(logits[:, P - 1:], np.array([candidate]))[0]  # positions P-1 .. P+L-2 predict c


def gather_logprobs(logits, targets):
    """log softmax(logits)[..., target] for each position: (B, T, V), (B, T) -> float64 (B, T) on the host.

    Computed as logit[target] - logsumexp(logits), in float64, without materialising the whole
    (B, T, V) table of log-probabilities (V is 50,257 for GPT-2's vocabulary).
    """
    xp = kernels.array_module(logits)
    logits = logits.astype(xp.float64)
    peak = logits.max(axis=-1, keepdims=True)  # subtract the max before exp: no overflow
    lse = (peak + xp.log(xp.exp(logits - peak).sum(axis=-1, keepdims=True)))[..., 0]  # (B, T)
    picked = xp.take_along_axis(logits, xp.asarray(targets)[..., None], axis=-1)[..., 0]  # (B, T)
    out = picked - lse
    return out.get() if xp is not np else out  # CuPy arrays come back to the host


def check_lengths(model, prompt, candidates):
    block = model.config.block_size
    if len(prompt) == 0:
        raise ValueError("the prompt is empty: the first candidate token needs at least one token to condition on")
    if len(candidates) == 0:
        raise ValueError("there are no candidates to score")
    for i, c in enumerate(candidates):
        if len(c) == 0:
            raise ValueError(f"candidate {i} has no tokens")
        if len(prompt) + len(c) - 1 > block:
            raise ValueError(f"prompt ({len(prompt)} tokens) + candidate {i} ({len(c)} tokens) - 1 is longer than "
                             f"the model's context of {block}; truncate the prompt (fewshot.fit_prompt does)")


def aggregate(token_logprobs, texts, scoring):
    """One score per candidate from its token log-probabilities, by the rule `scoring` (see SCORINGS).

    texts: each candidate's text (for per_char). returns float64 (n,).
    """
    if scoring == "total":
        return np.array([lp.sum() for lp in token_logprobs])
    if scoring == "per_token":
        return np.array([lp.mean() for lp in token_logprobs])
    if scoring == "per_char":
        return np.array([lp.sum() / max(len(t), 1) for lp, t in zip(token_logprobs, texts)])
    raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
