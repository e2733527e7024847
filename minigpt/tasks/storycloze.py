"""The Story Cloze Test (Mostafazadeh et al. 2016): pick the right ending of a four-sentence story.

The ROCStories release has a validation and a test CSV with the columns

    InputStoryid, InputSentence1..InputSentence4, RandomFifthSentenceQuiz1, RandomFifthSentenceQuiz2,
    AnswerRightEnding (1 or 2)

As in GPT-1, the model is fine-tuned on the validation set and scored on the test set: data= is a
folder holding both (file names containing "val" and "test", as released, e.g.
"cloze_test_val__spring2016 - cloze_test_ALL_val.csv"), or train.csv and dev.csv of that layout.
"""
from pathlib import Path

from minigpt.tasks.example import Example
from minigpt.tasks.files import fail, read_csv
from minigpt.tasks.taskdata import TaskData

CONTEXT = ("InputSentence1", "InputSentence2", "InputSentence3", "InputSentence4")
ENDINGS = ("RandomFifthSentenceQuiz1", "RandomFifthSentenceQuiz2")
ANSWER = "AnswerRightEnding"


def load_storycloze(data):
    if data is None:
        raise ValueError("task storycloze needs data: a folder with the Story Cloze val and test CSV files")
    train_path, dev_path = find_files(Path(data))
    train, dev = read_storycloze_csv(train_path), read_storycloze_csv(dev_path)
    description = f"Story Cloze: {len(train)} train stories ({train_path.name}), {len(dev)} dev ({dev_path.name})"
    return TaskData("storycloze", "multiple-choice", None, ("accuracy",), train, dev, description)


def find_files(folder):
    """(train csv, dev csv): train.csv/dev.csv, else the one *val* and the one *test* CSV."""
    if (folder / "train.csv").is_file() and (folder / "dev.csv").is_file():
        return folder / "train.csv", folder / "dev.csv"
    csvs = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    val = [p for p in csvs if "val" in p.name.lower()]
    test = [p for p in csvs if "test" in p.name.lower() and p not in val]
    if len(val) != 1 or len(test) != 1:
        raise FileNotFoundError(f"{folder} needs exactly one Story Cloze validation CSV (name containing 'val') and "
                                f"one test CSV (name containing 'test'), or train.csv and dev.csv; "
                                f"found {[p.name for p in csvs]}")
    return val[0], test[0]


def read_storycloze_csv(path):
    rows = read_csv(path)
    if not rows:
        raise fail(path, "is empty")
    number, header = rows[0]
    header = [h.strip() for h in header]
    for column in CONTEXT + ENDINGS:
        if column not in header:
            raise fail(f"{path}:{number}", f"missing column {column!r}; the header has {header}")
    if ANSWER not in header:
        raise fail(f"{path}:{number}", f"has no {ANSWER} column: a test file without labels cannot be "
                                       "used to train or evaluate")
    at = {name: header.index(name) for name in CONTEXT + ENDINGS + (ANSWER,)}
    examples = []
    for number, fields in rows[1:]:
        source = f"{path}:{number}"
        if len(fields) != len(header):
            raise fail(source, f"has {len(fields)} fields, expected {len(header)}")
        answer = fields[at[ANSWER]].strip()
        if answer not in ("1", "2"):
            raise fail(source, f"{ANSWER} is {answer!r}: the answer index is out of range (expected 1 or 2)")
        sentences = [fields[at[c]].strip() for c in CONTEXT]
        if not all(sentences):
            raise fail(source, f"{CONTEXT[sentences.index('')]} is empty")
        context = " ".join(sentences)
        endings = tuple(fields[at[e]].strip() for e in ENDINGS)
        examples.append(Example("multiple-choice", (context,) + endings, int(answer) - 1, source))
    return examples
