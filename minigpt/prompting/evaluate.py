"""Zero- and few-shot evaluation of a language model on a labelled task, with no training.

For every evaluated example: draw k demonstrations (fewshot.py), fit the prompt into the context,
score each candidate answer by its log-likelihood (scoring.py), and predict
    classification, entailment, similarity   the class whose verbalizer word scores highest
    multiple choice                          the choice that scores highest
    regression (STS-B)                       the expected value sum_i p_i * value_i, where p is the
                                             softmax of the number words' scores
    completion (open answers)                what the model writes: its greedy continuation
The three scoring rules come from the same forward passes, so all are reported; `scoring` picks the
headline. A completion task has one rule, "greedy" (see predict_completion): right when the model
writes the answer's tokens and then does not go on with the word, as GPT-2 scored LAMBADA's last
words; it also reports the answers' perplexity under the model, GPT-2's other LAMBADA number.
The result is a dict in the shape of `minigpt finetune`'s metrics JSON (task, n_train, n_eval and
each metric by name) plus what prompting adds: shots, how often k had to shrink, the
prompt was cut or the answers were (fewshot.py), the chance level, the template.
"""
import itertools
import string
from collections import Counter

import numpy as np

from minigpt.generate import generate
from minigpt.prompting.fewshot import demonstration, draw_demonstrations, fit_answers, fit_prompt
from minigpt.prompting.scoring import SCORINGS, aggregate, score_candidates
from minigpt.prompting.templates import label_words
from minigpt.tasks import is_regression
from minigpt.tasks.metrics import compute
from minigpt.tasks.subsets import dev_subset
from minigpt.tokenizer import UnencodableText


def evaluate_task(model, tokenizer, task, template, shots=0, seed=0, max_eval=None, scoring=None,
                  skip_unencodable=False, progress=False):
    """Evaluate `model` on task.dev (or max_eval of its examples: tasks/subsets.py) by prompting; return the metrics.

    task: a minigpt.tasks.TaskData. template: a Template (checked against the task's shape here).
    scoring: the headline rule, one of SCORINGS (default per_token); a completion task has only "greedy".
    skip_unencodable: leave out examples the tokenizer cannot encode (a character-level tokenizer
    knows only the characters of its training text) and count them, instead of stopping at the first.
    """
    completion = task.shape == "completion"
    scoring = check_scoring(scoring, completion)
    template.check(task.shape)
    regression = is_regression(task)
    words = None if task.shape in ("multiple-choice", "completion") else label_words(template, task.labels, regression)
    check_template_encodable(tokenizer, template, words, shots)
    # the dev positions of the evaluated examples: an example's demonstrations are drawn by its position in dev,
    # so they are the same whichever others --max-eval picks
    positions = dev_subset(range(len(task.dev)), max_eval, seed)  # those `minigpt finetune` scores
    examples = [task.dev[i] for i in positions]
    if not examples:
        raise ValueError(f"task {task.name} has no evaluation examples")
    pool = demonstration_pool(task.train, template, words, tokenizer, skip_unencodable) if shots else []
    if len(pool) < shots <= len(task.train):
        raise ValueError(f"{shots} shots asked for, but only {len(pool)} of the {len(task.train)} training examples "
                         "can be encoded by the checkpoint's tokenizer")
    draw_demonstrations(pool, shots, seed, 0)  # fails early, and clearly, if the pool is too small
    rows, skipped = [], []
    for position, example in zip(positions, progress_bar(examples, progress, task.name)):
        demos = draw_demonstrations(pool, shots, seed, position)
        try:
            if completion:
                rows.append(predict_completion(model, tokenizer, template, example, demos))
            else:
                rows.append(predict(model, tokenizer, template, example, demos, words, regression))
        except UnencodableText as e:
            if not skip_unencodable:
                raise ValueError(f"{e}; pass --skip-unencodable to leave such examples out") from None
            skipped.append(str(e))
    if not rows:
        raise ValueError(f"none of the {len(examples)} examples could be encoded; the first: {skipped[0]}")
    labels = [row["label"] for row in rows]
    rules = ("greedy",) if completion else SCORINGS
    by_scoring = {rule: compute(task.metrics, [row["prediction"][rule] for row in rows], labels) for rule in rules}
    result = {"task": task.name, "n_train": len(pool) if shots else 0, "n_eval": len(rows),
              **by_scoring[scoring],
              "shots": shots, "scoring": scoring, "seed": seed,
              "k_mean": float(np.mean([row["k"] for row in rows])),
              "k_shrunk": sum(row["k"] < shots for row in rows),
              "prompt_truncated": sum(row["truncated"] > 0 for row in rows),
              "answers_cut": sum(row["answers_cut"] for row in rows),
              "skipped": len(skipped), "first_skipped": skipped[0] if skipped else None,
              "chance": chance_level(task, rows, regression, template, tokenizer),
              "by_scoring": by_scoring,
              "template": {"prompt": template.prompt, "answer": template.answer,
                           "verbalizer": list(words) if words else None, "separator": template.separator},
              "example_prompt": tokenizer.decode(rows[0]["prompt_ids"]), "example_candidates": rows[0]["texts"]}
    if completion:
        answer_logprobs = np.concatenate([row["answer_logprobs"] for row in rows])
        nats = -float(answer_logprobs.mean())  # per answer token, over all the answers
        result.update(answer_nats_per_token=nats, answer_perplexity=float(np.exp(nats)),
                      example_prediction=rows[0]["prediction"]["greedy"])
    return result


def check_scoring(scoring, completion):
    """The scoring rule to report first: the default of the task's kind, or the one asked for if it applies."""
    if completion:
        if scoring not in (None, "greedy"):
            raise ValueError(f"a completion task is scored by what the model writes (its greedy continuation), not by "
                             f"comparing candidates' likelihoods: scoring {scoring!r} does not apply; leave it out")
        return "greedy"
    if scoring is None:
        return "per_token"
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    return scoring


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
    prompt = fit_prompt_naming_demonstrations(tokenizer, template, example, demos, words, budget)
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


def fit_prompt_naming_demonstrations(tokenizer, template, example, demos, words, budget):
    """fewshot.fit_prompt, with an unencodable demonstration named as itself: the example encoded before this is
    called, so a character the tokenizer lacks is in a demonstration, which the error then names."""
    try:
        return fit_prompt(lambda text: encode_checked(tokenizer, text, example), template, example, demos, words,
                          budget)
    except UnencodableText:
        for demo in demos:
            encode_checked(tokenizer, demonstration(template, demo, words) + template.separator, demo,
                           f"demonstration (for example {example.source or '?'}): training example")
        raise


def predict_completion(model, tokenizer, template, example, demos):
    """What the model writes after the prompt, greedily, and whether that is the answer.

    The model writes until its text is as long as the answer's and, when the answer ends inside a word (a
    letter or digit), one character longer: if that character goes on with the word ("lord" then "ship"),
    the prediction is the longer word and does not match. The two are compared as text, both decoded from
    tokens (a tokenizer that lowercases, as GPT-1's does, then compares what it can write). Greedy decoding
    writes the answer at least when, fed the answer's own tokens, the model ranks each of them first
    (tests/test_prompting_completion.py checks that against one plain forward); with BPE, also when it
    spells the same text with other tokens, more or fewer. The answer's log-probabilities come from the
    same prompt.
    """
    encode = lambda text: encode_checked(tokenizer, text, example)
    answer_ids = encode(template.answer_text(example.label))
    if not answer_ids:
        raise ValueError(f"the answer {template.answer_text(example.label)!r} encodes to no tokens; the answer "
                         "template must add some text")
    # the model reads the prompt and all L answer tokens (the token after them is predicted too): fit into
    # block_size - 1 the way candidates whose last token is never read fit into block_size
    (answer_ids,), answers_cut = fit_answers([answer_ids], len(encode(template.fill(example))),
                                             model.config.block_size - 1)
    answer = tokenizer.decode(answer_ids)  # cut: the beginning the model has room to write
    prompt = fit_prompt_naming_demonstrations(tokenizer, template, example, demos, None,
                                              model.config.block_size - len(answer_ids))
    inside_word = not answers_cut and answer[-1].isalnum()
    wanted = len(answer) + inside_word  # characters

    def decided(text):  # enough to judge; a word that goes on past the answer is written to its end, to show it
        if len(text) < wanted or text.endswith("\ufffd"):  # (or inside a character cut in two)
            return False
        after = text[len(answer):]
        return not (inside_word and after[:1].isalnum()) or not after.isalnum()

    # every token writes at least one byte, so `most` tokens always reach `wanted` characters (16 more finish a
    # longer word); past the prompt's room (a spelling in more tokens) generate keeps the last block_size tokens
    most = max(len(answer_ids), len(answer.encode("utf-8"))) + inside_word + 16
    written, text = [], ""
    for token in generate(model, prompt.ids, most, greedy=True):
        written.append(token)
        text = tokenizer.decode(written)
        if decided(text):
            break
    prediction, after = text[:len(answer)], text[len(answer):]
    if inside_word and after[:1].isalnum():  # the model went on with the word: it wrote a longer word
        prediction += "".join(itertools.takewhile(str.isalnum, after))
    return {"label": answer, "prediction": {"greedy": prediction}, "k": prompt.k, "truncated": prompt.truncated,
            "answers_cut": answers_cut, "n_candidates": 1, "prompt_ids": prompt.ids, "texts": [answer],
            "answer_logprobs": score_candidates(model, prompt.ids, [answer_ids])[0]}


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


def chance_level(task, rows, regression, template, tokenizer):
    """What guessing scores on the evaluated examples: a uniform random guess (expected accuracy), always
    answering the most frequent class (completion: answer) of the training split, and for classes always
    answering the commonest class of the evaluated examples themselves (a --max-eval subset need not be
    balanced: 13 of 24 genre examples were histories, so a model that always said "history" scored 0.54
    against a training majority of 0.33)."""
    if regression:
        return {"note": "a constant guess has no correlation: 0"}
    labels = [row["label"] for row in rows]
    if task.shape == "completion":  # no uniform guess over open answers: the commonest training answer
        # (as the tokenizer writes it, like the labels; a task without a training split: the commonest dev answer)
        texts = [template.answer_text(e.label) for e in task.train]
        answers = [tokenizer.decode(tokenizer.encode(text)) for text in texts if encodes(tokenizer, text)]
        common = Counter(answers or labels).most_common(1)[0][0]
        return {"majority_answer": common, "majority_from": "train" if answers else "dev",
                "majority": compute(task.metrics, [common] * len(labels), labels)}
    if task.shape == "multiple-choice":
        return {"uniform_accuracy": float(np.mean([1 / row["n_candidates"] for row in rows]))}
    train_labels = [e.label for e in task.train] or labels
    majority = int(np.bincount(train_labels, minlength=len(task.labels)).argmax())
    commonest_here = int(np.bincount(labels, minlength=len(task.labels)).argmax())
    return {"uniform_accuracy": 1 / len(task.labels),
            "majority_class": task.labels[majority],
            "majority": compute(task.metrics, [majority] * len(labels), labels),
            "commonest_here_class": task.labels[commonest_here],
            "commonest_here": compute(task.metrics, [commonest_here] * len(labels), labels)}


def progress_bar(items, progress, name):
    if not progress:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=f"evaluating {name}", dynamic_ncols=True)
