"""Labelled tasks for fine-tuning and prompting: the Example type, loaders, built-in tasks, metrics.

    load_task(name, data=None, seed=0) -> TaskData

    sst2 cola mnli snli qnli rte mrpc qqp stsb    a GLUE task folder            (glue.py)
    race                                          the RACE folder               (race.py)
    storycloze                                    the Story Cloze CSV folder    (storycloze.py)
    classification entailment similarity
    multiple-choice completion                    train.jsonl + dev.jsonl       (jsonl.py)
    movie-reviews                                 `minigpt data fetch movie-reviews` (movie_reviews.py)
    shakespeare-genre shakespeare-follows
    shakespeare-same-play shakespeare-next-line
    shakespeare-last-word                         built in, no data needed      (shakespeare.py)
completion and shakespeare-last-word have open answers, which the model writes (prompting only).

`seed` only matters for the built-in tasks (it picks their sample); files load as they are.
"""
from dataclasses import replace
from pathlib import Path

from minigpt.tasks.example import CHOICE_SHAPES, SHAPES, Example
from minigpt.tasks.glue import FORMATS as GLUE_FORMATS
from minigpt.tasks.glue import load_glue
from minigpt.tasks.jsonl import load_jsonl
from minigpt.tasks.movie_reviews import movie_reviews_dir
from minigpt.tasks.race import load_race
from minigpt.tasks.shakespeare import SIZES as SHAKESPEARE_SIZES
from minigpt.tasks.shakespeare import load_shakespeare_task
from minigpt.tasks.storycloze import load_storycloze
from minigpt.tasks.taskdata import TaskData

GLUE_TASKS = tuple(GLUE_FORMATS)
JSONL_TASKS = SHAPES
BUILTIN_TASKS = tuple(SHAKESPEARE_SIZES)
TASK_NAMES = GLUE_TASKS + ("race", "storycloze") + JSONL_TASKS + ("movie-reviews",) + BUILTIN_TASKS

__all__ = ["CHOICE_SHAPES", "SHAPES", "TASK_NAMES", "Example", "TaskData", "is_regression", "load_task"]


def load_task(name, data=None, seed=0):
    """The TaskData of task `name`; `data` is the folder (or file) the real formats need."""
    if name in GLUE_TASKS:
        return load_glue(name, data)
    if name == "race":
        return load_race(data)
    if name == "storycloze":
        return load_storycloze(data)
    if name in JSONL_TASKS:
        return load_jsonl(name, data)
    if name == "movie-reviews":
        return load_movie_reviews(data)
    if name in BUILTIN_TASKS:
        if data is not None:
            raise ValueError(f"{name} is built in from the Shakespeare corpus and takes no data (got {data})")
        return load_shakespeare_task(name, seed)
    raise ValueError(f"unknown task {name!r}; available: {' '.join(TASK_NAMES)}")


def load_movie_reviews(data):
    """The Pang & Lee sentences as an SST-2 task, from `data` or the folder the fetch command writes."""
    folder = movie_reviews_dir() if data is None else Path(data)
    if data is None and not (folder / "train.tsv").is_file():
        raise FileNotFoundError(f"no movie reviews in {folder}: run `minigpt data fetch movie-reviews` first "
                                "(downloads Debian's python3-pattern, 16 MB)")
    task = load_glue("sst2", folder)
    return replace(task, name="movie-reviews",
                   description=task.description.replace("GLUE SST-2", "Pang & Lee movie-review sentences"))


def is_regression(task):
    """True for a task scored by correlation of a predicted number (STS-B): a name or a TaskData."""
    if isinstance(task, TaskData):
        return task.is_regression
    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; available: {' '.join(TASK_NAMES)}")
    return task == "stsb"
