"""Generic JSON Lines tasks: a folder with train.jsonl and dev.jsonl, one example a line.

    classification    {"text": ..., "label": ...}
    entailment        {"premise": ..., "hypothesis": ..., "label": ...}
    similarity        {"text_a": ..., "text_b": ..., "label": ...}
    multiple-choice   {"context": ..., "choices": [...], "label": index of the right choice}
    completion        {"context": ..., "answer": ...}    (prompting only: the model writes the answer)

A completion's answer is joined to its context by the answer template, " {answer}" by default (a space,
then the answer): write answers without their leading space, or evaluate with --answer "{answer}".

Class labels are either all strings or all integers within a task. Strings: the label set is the
sorted set of strings seen in train.jsonl, so a dev label never seen in training is an error (the
model could never predict it). Integers: classes 0 .. the largest label seen in train.jsonl.
Either way a task needs at least two classes.
Other fields are ignored, so files with ids or metadata load as they are.
"""
from pathlib import Path

from minigpt.tasks.example import Example, a_shape
from minigpt.tasks.files import fail, read_jsonl
from minigpt.tasks.taskdata import TaskData

FIELDS = {
    "classification": ("text",),
    "entailment": ("premise", "hypothesis"),
    "similarity": ("text_a", "text_b"),
    "multiple-choice": ("context", "choices"),
    "completion": ("context",),
}
LABEL_FIELD = {"completion": "answer"}  # every other shape: "label"
MAX_CLASSES = 65_536  # a head of more classes than this is a label column that holds ids, not classes


def load_jsonl(shape, data):
    """TaskData of the given shape from a folder holding train.jsonl and dev.jsonl."""
    if data is None:
        raise ValueError(f"task {shape} needs data: a folder with train.jsonl and dev.jsonl")
    folder = Path(data)
    paths = [folder / "train.jsonl", folder / "dev.jsonl"]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {a_shape(shape)} task folder needs train.jsonl and dev.jsonl")
    train_rows = read_records(shape, paths[0])
    if not train_rows and shape != "completion":  # a completion task's training split only gives demonstrations
        raise fail(paths[0], "has no examples")
    if shape == "completion":
        labels, index = None, answer_text
    elif shape == "multiple-choice":
        labels, index = None, choice_index
    else:
        labels, index = label_set(train_rows)
    if labels is not None and len(labels) < 2:  # one class: nothing to choose between, and a 1-output head
        raise fail(paths[0], f"every example has the label {train_rows[0][1]!r}; a task needs "
                             "at least 2 classes to choose between")
    # train is checked whole before dev is read, so the first error reported is the first in train
    train = [Example(shape, texts, index(value, source, len(texts) - 1), source) for texts, value, source in train_rows]
    dev = [Example(shape, texts, index(value, source, len(texts) - 1), source)
           for texts, value, source in read_records(shape, paths[1])]
    description = f"{shape} task from {folder}: {len(train)} train, {len(dev)} dev examples"
    if labels is not None:
        description += f", labels {labels}"
    return TaskData(shape, shape, labels, ("accuracy",), train, dev, description)


def read_records(shape, path):
    """[(texts, raw label, source)] with each field checked: present, and of the right type."""
    rows = []
    for number, record in read_jsonl(path):
        source = f"{path}:{number}"
        label_field = LABEL_FIELD.get(shape, "label")
        for field in FIELDS[shape] + (label_field,):
            if field not in record:
                raise fail(source, f"missing field {field!r} ({a_shape(shape)} line needs "
                                   f"{', '.join(FIELDS[shape] + (label_field,))})")
        texts = []
        for field in FIELDS[shape]:
            value = record[field]
            if field == "choices":
                if not isinstance(value, list) or len(value) < 2 or not all(isinstance(c, str) for c in value):
                    raise fail(source, "'choices' must be a list of at least 2 strings")
                texts.extend(value)
            elif not isinstance(value, str):
                raise fail(source, f"{field!r} must be a string, got {type(value).__name__}")
            else:
                texts.append(value)
        rows.append((tuple(texts), record[label_field], source))
    return rows


def label_set(train_rows):
    """(class names, value -> index function) from the training labels: all strings or all integers."""
    kind = kind_of(train_rows[0][1], train_rows[0][2])
    for _, value, source in train_rows:
        if kind_of(value, source) != kind:
            raise fail(source, f"label {value!r} mixes string and integer labels; use one kind in a task")
    values = [value for _, value, _ in train_rows]
    if kind == "int" and max(values) >= MAX_CLASSES:  # integer labels are class indices: 0 .. the largest
        big = next((v, source) for _, v, source in train_rows if v >= MAX_CLASSES)
        raise fail(big[1], f"label {big[0]} would make {big[0] + 1:,} classes (integer labels are class indices "
                           f"0, 1, ...); at most {MAX_CLASSES:,} are supported")
    labels = tuple(sorted(set(values))) if kind == "str" else tuple(str(i) for i in range(max(values) + 1))

    def index(value, source, n_choices=None):  # n_choices: the signature of choice_index, unused here
        if kind_of(value, source) != kind:
            raise fail(source, f"label {value!r} is not of the same kind as the training labels {labels}")
        if kind == "str":
            if value not in labels:
                raise fail(source, f"label {value!r} never occurs in train.jsonl; labels are {labels}")
            return labels.index(value)
        if value >= len(labels):
            raise fail(source, f"label {value} is outside the training label set 0..{len(labels) - 1}")
        return value
    return labels, index


def kind_of(value, source):
    if isinstance(value, str):
        if not value.strip():
            raise fail(source, "the label is an empty string")
        return "str"
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise fail(source, f"label {value} is negative; integer labels are class indices 0, 1, ...")
        return "int"
    graded = "; graded similarity scores are read from a GLUE STS-B folder (--task stsb)" \
        if isinstance(value, float) else ""
    raise fail(source, f"label {value!r} must be a string or a non-negative integer "
                       f"(got {type(value).__name__}){graded}")


def answer_text(value, source, n_choices=None):  # n_choices: the signature of choice_index, unused here
    if not isinstance(value, str) or not value.strip():
        raise fail(source, f"'answer' must be a non-empty string, got {value!r}")
    return value


def choice_index(value, source, n_choices):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_choices:
        raise fail(source, f"label {value!r} must be the index of the right choice, 0..{n_choices - 1}")
    return value
