"""Zero-shot language modelling: how well a model predicts a whole text it was not trained on.

GPT-2's first results (Radford et al. 2019, sec. 3.1, table 3) are of this kind: the model reads a
held-out corpus and each token is scored by the probability the model gave it, with no training on
that corpus. The numbers, for N scored tokens t_j of a text of `chars` characters and `bytes` UTF-8 bytes:

    nats                   -sum_j log P(t_j | the tokens before it)           the summed cross-entropy
    loss                   nats / N                                         training's loss, on this text
    perplexity             exp(loss)                                        as if choosing among e^loss tokens
    bits per token         loss / ln 2
    bits per character     nats / ln 2 / chars     (enwik8, text8 are reported this way)
    bits per byte          nats / ln 2 / bytes

Bits per character and per byte do not depend on the tokenizer, so a character model and a BPE model
can be compared on one text; loss and perplexity per token cannot (a BPE token carries several
characters).

A text longer than the context is read in windows of block_size tokens. Windows that do not overlap
would predict the first target of each window from one token, the next from two, and so on; GPT-2 and
the Hugging Face guide to perplexity slide the window by a `stride` instead, and score in each window
only the targets that no earlier window scored:

    tokens    t_0 t_1 t_2 ... t_{N-1}
    window 0  inputs t_0 .. t_{T-1}            scores targets t_1 .. t_T (all of them)
    window 1  inputs t_S .. t_{S+T-1}          scores targets t_{T+1} .. t_{S+T}   (the last S)
    ...       the last window ends at the text's end, so it too holds T inputs

so every token after the first window is predicted from at least T - S + 1 tokens before it. stride = T
is fastest (each token read once) and gives the least context on average, stride = 1 the most (one
window per token). The default, T / 2, reads each token twice and gives every prediction at least
half a context.

The scoring reuses training's loss: each window is an ordinary forward with targets, where the targets
already scored are set to the ignore index, so the fused cross-entropy averages over the new ones only.

The text's first token has nothing before it to be predicted from, so it is context only and not counted.
With eot_prefix=True, <|endoftext|> goes in front and every token is scored: right for a model trained on
documents separated by it (GPT-2's own weights), not for one that never saw it, such as a model minigpt
pre-trained (its data has no document boundaries): its first prediction would start from a token it never
learned to read.
"""
import math

import numpy as np

from minigpt.layers.cross_entropy import IGNORE_INDEX
from minigpt.prompting.evaluate import UnencodableText

# Logits of a batch of windows are B x T x V floats; the batch is kept under this many (128 MiB in float32)
LOGITS_BUDGET = 2**25
MAX_WINDOWS_PER_BATCH = 16


def default_stride(block_size):
    """Half the context: every prediction after the first window sees at least half a context."""
    return max(1, block_size // 2)


def window_starts(n_targets, block_size, stride):
    """The first input position of each window, for a text of n_targets + 1 tokens (see the module's docstring)."""
    if n_targets <= block_size:
        return [0]
    last = n_targets - block_size  # the window that ends at the text's last target
    return list(range(0, last, stride)) + [last]


def score_tokens(model, ids, stride=None, batch_size=None, progress=None):
    """The summed negative log-likelihood of ids[1:], each token predicted from those before it in its window.

    ids: a sequence of at least 2 token ids. stride: how far the window moves, 1 .. block_size (default
    block_size // 2). batch_size: windows per forward (default: as many as the logits budget allows, at most 16).
    progress: a callable given (windows done, windows in all) after each batch (for a progress bar), or None.
    returns {"tokens": N scored, "nats": the sum, "loss", "perplexity", "bits_per_token", "windows", "stride"}.
    """
    T = model.config.block_size
    stride = default_stride(T) if stride is None else stride
    if not (isinstance(stride, int) and 1 <= stride <= T):
        raise ValueError(f"stride must be an integer from 1 to the context length {T}, got {stride!r}")
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size < 2:
        raise ValueError(f"the text is {ids.size} token(s) long: scoring needs at least 2 (one to predict from)")
    n_targets = ids.size - 1
    width = min(T, n_targets)  # every window holds this many inputs
    starts = window_starts(n_targets, T, stride)
    if batch_size is None:
        batch_size = max(1, min(MAX_WINDOWS_PER_BATCH, LOGITS_BUDGET // (width * model.config.vocab_size)))
    nats, scored_until = 0.0, 0  # targets t_1 .. t_{scored_until} are scored
    for b0 in range(0, len(starts), batch_size):
        batch = starts[b0:b0 + batch_size]
        inputs = np.stack([ids[s:s + width] for s in batch])  # (B, width)
        targets = np.stack([ids[s + 1:s + 1 + width] for s in batch])  # (B, width): target of input s + i is t_{s+i+1}
        counted = 0
        for row, s in enumerate(batch):
            new = s + width - scored_until  # this window's targets that no earlier window scored: its last `new`
            targets[row, :width - new] = IGNORE_INDEX
            scored_until = s + width
            counted += new
        _, loss = model.forward(inputs, targets, train=False)  # the mean over the counted targets
        nats += loss * counted
        if progress is not None:
            progress(b0 + len(batch), len(starts))
    loss = nats / n_targets
    return {"tokens": n_targets, "nats": nats, "loss": loss, "perplexity": math.exp(loss),
            "bits_per_token": loss / math.log(2), "windows": len(starts), "stride": stride}


def score_text(model, tokenizer, text, stride=None, batch_size=None, progress=None, eot_prefix=False):
    """score_tokens for a text, plus the tokenizer-free measures: bits per character and per byte.

    The first token's characters are context only and not counted; with eot_prefix (a tokenizer with
    <|endoftext|>, a model trained with it), that token goes first and every character is scored.
    """
    if not text:
        raise ValueError("the text is empty")
    try:
        ids = tokenizer.encode(text)
    except ValueError as e:  # a character the tokenizer never saw (a character-level tokenizer knows only its text's)
        raise UnencodableText(str(e)) from None
    whole = text.encode("utf-8")
    if eot_prefix:
        if tokenizer.eot_token is None:
            raise ValueError("eot_prefix: this tokenizer has no <|endoftext|> token")
        ids, scored = [tokenizer.eot_token] + ids, whole
    else:
        first = tokenizer.decode_bytes(ids[:1])  # bytes: a BPE token can end inside a character
        # A tokenizer that normalises the text (GPT-1's lowercases and re-spaces it) writes other bytes: its first
        # token then stands for as many characters of the text as it writes, and the rest of the text is counted,
        # so that "The cat" and "the cat" count alike.
        scored = whole[len(first):] if whole.startswith(first) else \
            text[len(first.decode("utf-8", errors="ignore")):].encode("utf-8")
    result = score_tokens(model, ids, stride=stride, batch_size=batch_size, progress=progress)
    # a character the first token cut in two is not counted (its leading bytes are not a character of their own)
    chars, n_bytes = len(scored.decode("utf-8", errors="ignore")), len(scored)
    bits = result["nats"] / math.log(2)
    result.update(chars=chars, bytes=n_bytes, bits_per_char=bits / max(chars, 1), bits_per_byte=bits / max(n_bytes, 1),
                  first_token_scored=eot_prefix)
    return result
