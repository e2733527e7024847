"""The GLUE metrics, in NumPy: accuracy, F1, Matthews correlation, Pearson and Spearman correlation.

    accuracy   the fraction of predictions equal to the label
    f1         of the positive class 1: 2 TP / (2 TP + FP + FN), as GLUE scores MRPC and QQP
    matthews   Matthews correlation coefficient (CoLA), in Gorodkin's K-class form, which for two
               classes is (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
    pearson    linear correlation of predicted and gold scores (STS-B)
    spearman   Pearson correlation of the ranks, tied values sharing their average rank (STS-B)

Conventions where a formula divides by zero (they follow scikit-learn): F1 is 0 with no positive
labels and no positive predictions, Matthews is 0 when either side holds a single class; Pearson
and Spearman are NaN when either side is constant, since no correlation is defined there.
"""
import numpy as np

METRICS = ("accuracy", "f1", "matthews", "pearson", "spearman")


def accuracy(predictions, labels):
    predictions, labels = as_pair(predictions, labels)
    return float(np.mean(predictions == labels))


def f1(predictions, labels):
    predictions, labels = as_pair(predictions, labels)
    for name, values in (("predictions", predictions), ("labels", labels)):
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"f1 is for binary tasks: {name} must be 0 or 1, got {np.unique(values)[:5]}")
    tp = np.sum((predictions == 1) & (labels == 1))
    fp = np.sum((predictions == 1) & (labels == 0))
    fn = np.sum((predictions == 0) & (labels == 1))
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def matthews(predictions, labels):
    predictions, labels = as_pair(predictions, labels)
    classes, both = np.unique(np.concatenate([predictions, labels]), return_inverse=True)
    predicted, true = both[:len(predictions)], both[len(predictions):]
    n = float(len(labels))
    correct = float(np.sum(predicted == true))
    p = np.bincount(predicted, minlength=len(classes)).astype(np.float64)  # predicted count of each class
    t = np.bincount(true, minlength=len(classes)).astype(np.float64)  # true count of each class
    denominator = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float((correct * n - p @ t) / denominator) if denominator > 0 else 0.0


def pearson(predictions, labels):
    x, y = as_pair(predictions, labels, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx @ dx) * (dy @ dy))
    return float(dx @ dy / denominator) if denominator > 0 else float("nan")


def spearman(predictions, labels):
    x, y = as_pair(predictions, labels, dtype=np.float64)
    return pearson(average_ranks(x), average_ranks(y))


def average_ranks(values):
    """Ranks 1..n of `values`; a run of equal values shares the mean of the ranks it spans."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    # start of each run of equal values in sorted order, and where it ends (exclusive)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + ends + 1) / 2.0  # the mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def compute(names, predictions, labels):
    """{name: value} for each metric name (see METRICS)."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; available: {', '.join(METRICS)}")
    functions = {"accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson, "spearman": spearman}
    return {name: functions[name](predictions, labels) for name in names}


def as_pair(predictions, labels, dtype=None):
    predictions, labels = np.asarray(predictions, dtype=dtype), np.asarray(labels, dtype=dtype)
    if predictions.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} must be 1-D and of one length")
    if len(labels) == 0:
        raise ValueError("no predictions to score")
    return predictions, labels
