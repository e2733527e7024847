"""Few-shot prompts: k solved examples from the training split, then the question (Brown et al. 2020, sec. 2).

    <demonstration 1><separator> ... <demonstration k><separator><prompt of the example>

A demonstration is an example's prompt followed by its correct answer, formatted by the same
template. GPT-3 "randomly draw[s] K examples from that task's training set as conditioning" for
every evaluated example; here the draw for the example at position i of the dev split uses the generator
np.random.default_rng([seed, i]), so a run is reproducible and an example's demonstrations do not depend on
which others are evaluated (--max-eval).

Fitting the context. The model reads the prompt and all but the last token of the longest candidate,
so the prompt may hold block_size - (L - 1) tokens. If it is longer:
  1. demonstrations are dropped, the last-drawn first, until it fits (k shrinks; the run reports it);
  2. if the example alone still does not fit, its prompt is cut from the left: the oldest tokens go,
     and the end, which the answer continues, is kept (reported as truncated).
Answers longer than the context allows (a next line of 80 characters for a model that reads 64) are
cut first, at their end, so that at least half the context, or the whole prompt if shorter, stays for
the prompt: the candidates are then compared on their beginnings (reported as answers cut).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prompt:
    ids: list  # the prompt's token ids
    k: int  # demonstrations it holds (at most the k asked for)
    truncated: int  # tokens cut from the left of the example's own prompt (0 if none)


def draw_demonstrations(pool, k, seed, index):
    """k distinct examples of `pool` (a task's training split) for the example at position `index` of dev."""
    if k < 0:
        raise ValueError(f"the number of shots must be >= 0, got {k}")
    if k > len(pool):
        raise ValueError(f"{k} shots asked for, but the training split has only {len(pool)} examples")
    if k == 0:
        return []
    rng = np.random.default_rng([seed, index])
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


def demonstration(template, example, words):
    """An example as a solved demonstration: its prompt, then its correct answer."""
    return template.fill(example) + template.answer_text(correct_answer(example, words))


def correct_answer(example, words):
    """The answer text of an example: its choice, its class's word, the number word nearest its value, or
    (completion) the answer itself."""
    if example.shape == "completion":
        return example.label
    if example.shape == "multiple-choice":
        return example.choices[example.label]
    if isinstance(example.label, float):  # regression: the closest number word, e.g. 3.8 -> "4"
        return min(words, key=lambda w: abs(float(w) - example.label))
    return words[example.label]


def fit_prompt(encode, template, example, demos, words, budget):
    """The token ids of the few-shot prompt, with as many of `demos` as fit in `budget` tokens.

    encode: text -> token ids. words: the verbalizer words (None for multiple choice).
    """
    if budget < 1:
        raise ValueError(f"a candidate answer of example {example.source or '?'} fills the whole context; "
                         "no room is left for the prompt (use a model with a longer context or shorter answers)")
    query = template.fill(example)
    shown = [demonstration(template, d, words) + template.separator for d in demos]
    for k in range(len(demos), -1, -1):
        ids = encode("".join(shown[:k]) + query)
        if len(ids) <= budget:
            return Prompt(ids, k, 0)
    return Prompt(ids[-budget:], 0, len(ids) - budget)  # ids: the example alone, too long: keep its end


def fit_answers(candidates, prompt_length, block_size):
    """The candidates' token ids, each cut at its end if needed so that min(prompt_length, block_size // 2)
    prompt tokens still fit beside the longest; and whether any was cut."""
    keep = min(prompt_length, block_size // 2)  # prompt tokens the answers must leave room for
    room = block_size - keep + 1  # the last answer token is predicted, never read
    if max(len(c) for c in candidates) <= room:
        return candidates, False
    return [c[:room] for c in candidates], True
