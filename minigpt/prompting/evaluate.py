"""Zero- and few-shot evaluation of a language model on a labelled task, with no training.

For every evaluated example: draw k demonstrations (fewshot.py), fit the prompt into the context,
score each candidate answer by its log-likelihood (scoring.py), and predict
    classification, entailment, similarity   the class whose verbalizer word scores highest
    multiple choice                          the choice that scores highest
    regression (STS-B)                       the expected value sum_i p_i * value_i, where p is the
                                             softmax of the number words' scores
The three scoring rules come from the same forward passes, so all are reported; `scoring` picks the
headline. The result is a dict in the shape of `minigpt finetune`'s metrics JSON (task, n_train,
n_eval and each metric by name) plus what prompting adds: shots, how often k had to shrink, the
prompt was cut or the answers were (fewshot.py), the chance level, the template.
"""
import string

import numpy as np

from minigpt.prompting.fewshot import demonstration, draw_demonstrations, fit_answers, fit_prompt
from minigpt.prompting.scoring import SCORINGS, aggregate, score_candidates
from minigpt.prompting.templates import label_words
from minigpt.tasks import is_regression
from minigpt.tasks.metrics import compute


def evaluate_task(model, tokenizer, task, template, shots=0, seed=0, max_eval=None, scoring="per_token",
                  skip_unencodable=False, progress=False):
    """Evaluate `model` on task.dev (or max_eval of its examples, see eval_subset) by prompting; return the metrics.

    task: a minigpt.tasks.TaskData. template: a Template (checked against the task's shape here).
    skip_unencodable: leave out examples the tokenizer cannot encode (a character-level tokenizer
    knows only the characters of its training text) and count them, instead of stopping at the first.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    template.check(task.shape)
    regression = is_regression(task)
    words = None if task.shape == "multiple-choice" else label_words(template, task.labels, regression)
    check_template_encodable(tokenizer, template, words, shots)
    examples = eval_subset(task.dev, max_eval, seed)
    if not examples:
        raise ValueError(f"task {task.name} has no evaluation examples")
    pool = demonstration_pool(task.train, template, words, tokenizer, skip_unencodable) if shots else []
    if len(pool) < shots <= len(task.train):
        raise ValueError(f"{shots} shots asked for, but only {len(pool)} of the {len(task.train)} training examples "
                         "can be encoded by the checkpoint's tokenizer")
    draw_demonstrations(pool, shots, seed, 0)  # fails early, and clearly, if the pool is too small
    rows, skipped = [], []
    for i, example in enumerate(progress_bar(examples, progress, task.name)):
        try:
            rows.append(predict(model, tokenizer, template, example, draw_demonstrations(pool, shots, seed, i), words,
                                regression))
        except UnencodableText as e:
            if not skip_unencodable:
                raise ValueError(f"{e}; pass --skip-unencodable to leave such examples out") from None
            skipped.append(str(e))
    if not rows:
        raise ValueError(f"none of the {len(examples)} examples could be encoded; the first: {skipped[0]}")
    labels = [row["label"] for row in rows]
    by_scoring = {rule: compute(task.metrics, [row["prediction"][rule] for row in rows], labels) for rule in SCORINGS}
    result = {"task": task.name, "n_train": len(pool) if shots else 0, "n_eval": len(rows),
              **by_scoring[scoring],
              "shots": shots, "scoring": scoring, "seed": seed,
              "k_mean": float(np.mean([row["k"] for row in rows])),
              "k_shrunk": sum(row["k"] < shots for row in rows),
              "prompt_truncated": sum(row["truncated"] > 0 for row in rows),
              "answers_cut": sum(row["answers_cut"] for row in rows),
              "skipped": len(skipped), "first_skipped": skipped[0] if skipped else None,
              "chance": chance_level(task, rows, regression),
              "by_scoring": by_scoring,
              "template": {"prompt": template.prompt, "answer": template.answer,
                           "verbalizer": list(words) if words else None, "separator": template.separator},
              "example_prompt": tokenizer.decode(rows[0]["prompt_ids"]), "example_candidates": rows[0]["texts"]}
    return result


def eval_subset(dev, n, seed):
    """n dev examples drawn by a seeded permutation (all with n None or 0): the same draw as `minigpt finetune
    --max-eval n --seed seed` (its stream 6), so that prompting and fine-tuning score the same examples."""
    if not n or n >= len(dev):
        return list(dev)
    order = np.random.default_rng([seed, 6]).permutation(len(dev))
    return [dev[i] for i in order[:n]]


def check_template_encodable(tokenizer, template, words, shots):
    """Raise ValueError, naming the part and its characters, if the tokenizer cannot encode text that every prompt
    or candidate holds: a verbalizer word, or the fixed text of the answer or prompt template or of the separator.
    Found later, it would be blamed on the first example, and --skip-unencodable would leave out all of them."""
    parts = [(f"the answer template {template.answer!r}", fixed_text(template.answer)),
             (f"the prompt template {template.prompt!r}", fixed_text(template.prompt))]
    parts += [(f"the separator {template.separator!r}", template.separator)] if shots else []
    parts += [(f"the verbalizer word {word!r}", word) for word in words or ()]
    for what, text in parts:
        lacking = [] if encodes(tokenizer, text) else [c for c in dict.fromkeys(text) if not encodes(tokenizer, c)]
        if lacking:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in lacking)
            raise ValueError(f"{what}{template.where} cannot be encoded by the checkpoint's tokenizer: it has {shown}, "
                             "which the tokenizer's vocabulary lacks (a character-level tokenizer knows only the "
                             "characters of its training text)")


def fixed_text(template_text):
    """The text of a template outside its {fields}."""
    return "".join(part for part, *_ in string.Formatter().parse(template_text))


def encodes(tokenizer, text):
    try:
        tokenizer.encode(text)
    except ValueError:
        return False
    return True


class UnencodableText(ValueError):
    """A text the tokenizer cannot encode, with the example it belongs to."""


def encode_checked(tokenizer, text, example, role="example"):
    try:
        return tokenizer.encode(text)
    except ValueError as e:
        raise UnencodableText(f"{role} {example.source or '?'}: {e}") from None


def predict(model, tokenizer, template, example, demos, words, regression):
    """Score every candidate answer of one example; the prediction under each scoring rule."""
    encode = lambda text: encode_checked(tokenizer, text, example)
    answers = example.choices if example.shape == "multiple-choice" else words
    texts = [template.answer_text(a) for a in answers]
    candidates = [encode(t) for t in texts]
    for text, ids in zip(texts, candidates):
        if not ids:
            raise ValueError(f"the answer {text!r} encodes to no tokens; the answer template must add some text")
    block = model.config.block_size
    candidates, answers_cut = fit_answers(candidates, len(encode(template.fill(example))), block)
    if answers_cut:  # compare what is scored: the beginnings (per_char divides by their length)
        texts = [tokenizer.decode(c) for c in candidates]
    budget = block - (max(len(c) for c in candidates) - 1)
    try:
        prompt = fit_prompt(encode, template, example, demos, words, budget)
    except UnencodableText:  # the example itself encoded above: a demonstration holds the character, name it
        for demo in demos:
            encode_checked(tokenizer, demonstration(template, demo, words) + template.separator, demo,
                           f"demonstration (for example {example.source or '?'}): training example")
        raise
    logprobs = score_candidates(model, prompt.ids, candidates)
    prediction = {}
    for rule in SCORINGS:
        scores = aggregate(logprobs, texts, rule)
        if regression:
            p = np.exp(scores - scores.max())
            prediction[rule] = float((p / p.sum()) @ np.array([float(w) for w in words]))
        else:
            prediction[rule] = int(np.argmax(scores))
    return {"label": example.label, "prediction": prediction, "k": prompt.k, "truncated": prompt.truncated,
            "answers_cut": answers_cut,
            "n_candidates": len(candidates), "prompt_ids": prompt.ids, "texts": texts}


def demonstration_pool(train, template, words, tokenizer, skip_unencodable):
    """The training examples to draw demonstrations from: all of them, or, with skip_unencodable, those
    whose demonstration the tokenizer can encode (so a drawn demonstration never fails)."""
    if not skip_unencodable:
        return train
    usable = []
    for example in train:
        try:
            tokenizer.encode(demonstration(template, example, words) + template.separator)
            usable.append(example)
        except ValueError:
            pass  # counted: n_train in the result is the size of the usable pool
    return usable


def chance_level(task, rows, regression):
    """What guessing scores on the evaluated examples: a uniform random guess (expected accuracy) and
    always answering the most frequent class of the training split."""
    if regression:
        return {"note": "a constant guess has no correlation: 0"}
    if task.shape == "multiple-choice":
        return {"uniform_accuracy": float(np.mean([1 / row["n_candidates"] for row in rows]))}
    labels = [row["label"] for row in rows]
    train_labels = [e.label for e in task.train] or labels
    majority = int(np.bincount(train_labels, minlength=len(task.labels)).argmax())
    return {"uniform_accuracy": 1 / len(task.labels),
            "majority_class": task.labels[majority],
            "majority": compute(task.metrics, [majority] * len(labels), labels)}


def progress_bar(items, progress, name):
    if not progress:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=f"evaluating {name}", dynamic_ncols=True)
