"""A loaded task: its train and dev Examples, its label names and the metrics it is scored by."""
from dataclasses import dataclass

from minigpt.tasks.example import SHAPES, a_shape
from minigpt.tasks.files import fail

METRIC_NAMES = ("accuracy", "f1", "matthews", "pearson", "spearman")


@dataclass(frozen=True)
class TaskData:
    name: str
    shape: str  # one of SHAPES
    labels: object  # tuple of class names in index order; None for regression, multiple choice and completion
    metrics: tuple  # metric names, the headline metric first
    train: list  # [Example]
    dev: list  # [Example]
    description: str = ""

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"task {self.name}: unknown shape {self.shape!r}; expected one of {SHAPES}")
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if not self.metrics or unknown:
            raise ValueError(f"task {self.name}: metrics {self.metrics} must be a non-empty subset of {METRIC_NAMES}")
        for split in (self.train, self.dev):
            for example in split:
                self.check(example)

    @property
    def is_regression(self):
        return self.labels is None and self.shape not in ("multiple-choice", "completion")

    def check(self, example):
        """Raise if `example` does not fit this task: its shape, or a label outside the label set."""
        if example.shape != self.shape:
            raise fail(example.source, f"{a_shape(example.shape)} example in the {self.shape} task {self.name}")
        if self.is_regression:
            if isinstance(example.label, bool) or not isinstance(example.label, (int, float)):
                raise fail(example.source, f"task {self.name} is a regression: the label must be a number, "
                                           f"got {example.label!r}")
        elif self.labels is not None:
            if isinstance(example.label, bool) or not isinstance(example.label, int) \
                    or not 0 <= example.label < len(self.labels):
                raise fail(example.source, f"label {example.label!r} is not a class index of {self.labels}")


def label_index(value, labels, source):
    """The index of the label `value` in `labels`, or an error naming the file and line."""
    if value not in labels:
        raise fail(source, f"unknown label {value!r}; expected one of {', '.join(repr(v) for v in labels)}")
    return labels.index(value)
