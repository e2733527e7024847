"""GPT-1's input transformations (Radford et al. 2018, sec. 3.3 and figure 1): every task becomes one
or more token sequences that a causal language model can read, ending in the extract token whose
final hidden state the head reads.

    classification   [s] text [e]
    entailment       [s] premise [$] hypothesis [e]
    similarity       [s] a [$] b [e]  and  [s] b [$] a [e]      (no natural order: both, states added)
    multiple choice  [s] context [$] answer_k [e]  for each candidate k

[s], [$] and [e] are the start, delimiter and extract tokens (tokens.py).

Truncation, when an input does not fit the model's block_size (the count of cut examples is reported):
- classification: the text is cut from the left; its end, next to the extract token, survives.
- entailment and multiple choice: the premise / context is cut from the left, so the hypothesis /
  answer and the extract token survive whole, as long as the premise keeps at least a quarter of
  the room (or all of itself, if shorter). When even that does not fit, because the hypothesis or
  answer alone is that long, the premise keeps its last quarter and the hypothesis / answer is
  cut from the right to the rest: a hypothesis without any premise could not be judged. Each
  candidate of a multiple-choice example is fitted on its own, so a short answer sees more context.
- similarity: the longer text is cut from the right (its beginning survives) until both fit, and
  neither is cut below half of the room; both orderings then hold the same tokens.
A block_size too small for the special tokens and one text token is an error.
"""
from dataclasses import dataclass

from minigpt.tasks.example import a_shape
from minigpt.tokenizer import UnencodableText

N_SPECIAL = {"classification": 2, "entailment": 3, "similarity": 3, "multiple-choice": 3}


@dataclass(frozen=True)
class EncodedExample:
    """An Example as token sequences: one (classification, entailment), two orderings (similarity),
    or one per candidate (multiple choice); each ends with the extract token."""
    sequences: tuple  # of tuples of int ids
    label: object
    truncated: bool  # whether any text was cut to fit
    source: str


def encode_example(example, tokenizer, tokens, block_size):
    """example: tasks.Example; tokens: TaskTokens; -> EncodedExample whose sequences fit block_size."""
    budget = block_size - N_SPECIAL[example.shape]  # room for the texts' own tokens
    if budget < 1:
        raise ValueError(f"block_size {block_size} is too small for {a_shape(example.shape)} input: it needs "
                         f"{N_SPECIAL[example.shape]} special tokens and at least one text token")
    texts = [encode_text(tokenizer, text, example.source) for text in example.texts]
    if example.shape == "classification":
        text = texts[0][-budget:]  # cut from the left
        sequences = [(tokens.start, *text, tokens.extract)]
        truncated = len(text) < len(texts[0])
    elif example.shape == "similarity":
        a, b = fit_symmetric(texts[0], texts[1], budget)
        sequences = [pair_sequence(a, b, tokens), pair_sequence(b, a, tokens)]
        truncated = len(a) + len(b) < len(texts[0]) + len(texts[1])
    else:  # entailment: (premise, hypothesis); multiple choice: (context, choice_0, ...)
        first, seconds = texts[0], texts[1:]
        fitted = [fit_context_first(first, second, budget) for second in seconds]
        sequences = [pair_sequence(a, b, tokens) for a, b in fitted]
        truncated = any(len(a) + len(b) < len(first) + len(second) for (a, b), second in zip(fitted, seconds))
    return EncodedExample(tuple(sequences), example.label, truncated, example.source)


def encode_text(tokenizer, text, source):
    """Token ids of one text, as ordinary text: special-token strings inside it are not special."""
    try:
        return tokenizer.encode(text)
    except ValueError as e:  # e.g. a character the char tokenizer never saw: say which example
        raise UnencodableText(f"{source or 'an example'}: {e}") from None


def pair_sequence(first, second, tokens):
    """[s] first [$] second [e] as a tuple of ids."""
    return (tokens.start, *first, tokens.delimiter, *second, tokens.extract)


def fit_context_first(first, second, budget):
    """(first, second) cut to at most `budget` ids together: the first from the left, and the second
    from the right only where it would leave the first less than a quarter of the budget."""
    keep_first_at_least = min(len(first), budget // 4)
    keep_second = min(len(second), budget - keep_first_at_least)
    keep_first = min(len(first), budget - keep_second)
    return first[len(first) - keep_first:], second[:keep_second]


def fit_symmetric(a, b, budget):
    """(a, b) cut from the right to at most `budget` ids together, the longer one first, neither below
    half of the budget (unless it was shorter to begin with). The same rule for both, so swapping a and b
    swaps the result: with both long and an odd budget each keeps budget // 2 and one id goes unused (the
    second keeping the odd one made the pair's two orderings see different text)."""
    keep_a = min(len(a), max(budget - len(b), budget // 2))
    keep_b = min(len(b), max(budget - len(a), budget // 2))
    return a[:keep_a], b[:keep_b]
