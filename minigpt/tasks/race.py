"""RACE (Lai et al. 2017): reading comprehension from English exams, four options a question.

The download is a folder RACE/ with train/, dev/ and test/, each holding middle/ and high/ (school
levels) full of files (named 1.txt, 2.txt, ... despite holding JSON), one article each:

    {"id": "high1.txt", "article": "...", "questions": [q1, q2, ...],
     "options": [[a, b, c, d], ...], "answers": ["B", ...]}

Each question becomes one multiple-choice Example whose context is the article, a newline and the
question (GPT-1 feeds `[s] article; question [$] option [e]`); both levels are loaded together.
"""
from pathlib import Path

from minigpt.tasks.example import Example
from minigpt.tasks.files import fail, read_json
from minigpt.tasks.taskdata import TaskData

LETTERS = "ABCDEFGH"


def load_race(data):
    """TaskData from the RACE folder (the one holding train/ and dev/)."""
    if data is None:
        raise ValueError("task race needs data: the RACE folder (with train/ and dev/, each with middle/ and high/)")
    root = Path(data)
    splits = []
    for split in ("train", "dev"):
        files = sorted(p for p in (root / split).rglob("*") if p.is_file() and p.suffix in (".txt", ".json"))
        if not files:
            raise FileNotFoundError(f"{root / split} has no RACE .txt/.json files; data= must be the RACE folder "
                                    "that holds train/ and dev/")
        splits.append([example for path in files for example in read_race_file(path)])
    train, dev = splits
    description = f"RACE from {root}: {len(train)} train, {len(dev)} dev questions (middle and high)"
    return TaskData("race", "multiple-choice", None, ("accuracy",), train, dev, description)


def read_race_file(path):
    """The Examples of one article, one per question."""
    record = read_json(path)
    if not isinstance(record, dict):
        raise fail(path, "must hold a JSON object with article, questions, options and answers")
    for key in ("article", "questions", "options", "answers"):
        if key not in record:
            raise fail(path, f"missing {key!r}")
    article, questions, options, answers = (record[k] for k in ("article", "questions", "options", "answers"))
    if not isinstance(article, str) or not all(isinstance(v, list) for v in (questions, options, answers)):
        raise fail(path, "article must be a string and questions, options, answers lists")
    if not len(questions) == len(options) == len(answers):
        raise fail(path, f"has {len(questions)} questions, {len(options)} option lists and {len(answers)} answers; "
                         "they must match")
    examples = []
    for i, (question, choices, answer) in enumerate(zip(questions, options, answers)):
        source = f"{path}:question {i + 1}"
        if not isinstance(question, str) or not isinstance(choices, list) \
                or not all(isinstance(c, str) for c in choices):
            raise fail(source, "the question must be a string and its options a list of strings")
        if not isinstance(answer, str) or len(answer) != 1 or LETTERS.find(answer) not in range(len(choices)):
            raise fail(source, f"answer {answer!r} is out of range: expected a letter "
                               f"{LETTERS[0]}-{LETTERS[max(len(choices), 1) - 1]} for {len(choices)} options")
        context = f"{article.strip()}\n{question.strip()}"
        texts = (context,) + tuple(c.strip() for c in choices)
        examples.append(Example("multiple-choice", texts, LETTERS.index(answer), source))
    return examples
