"""The task metrics against hand-computed values and independent formulas."""
import math

import numpy as np
import pytest

from minigpt.tasks import metrics
from minigpt.tasks.metrics import accuracy, average_ranks, compute, f1, matthews, pearson, spearman


def test_accuracy_and_f1_by_hand():
    predictions, labels = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    assert accuracy(predictions, labels) == pytest.approx(3 / 5)
    # TP = 2, FP = 1, FN = 1: precision 2/3, recall 2/3
    precision = recall = 2 / 3
    assert f1(predictions, labels) == pytest.approx(2 * precision * recall / (precision + recall))
    assert f1([0, 0, 0], [0, 0, 0]) == 0.0  # no positives anywhere: scikit-learn's convention
    assert f1([1, 1], [0, 0]) == 0.0


def test_f1_is_of_the_positive_class_one():
    predictions, labels = [0, 0, 1, 0], [0, 1, 1, 0]
    assert f1(predictions, labels) == pytest.approx(2 / 3)  # TP 1, FN 1, FP 0
    # scored on class 0 instead: TP 2, FP 1, FN 0, a different number
    assert f1(1 - np.array(predictions), 1 - np.array(labels)) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="binary"):
        f1([0, 2], [0, 1])


def test_matthews_binary_formula(rng):
    predictions, labels = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    tp = np.sum((predictions == 1) & (labels == 1))
    tn = np.sum((predictions == 0) & (labels == 0))
    fp = np.sum((predictions == 1) & (labels == 0))
    fn = np.sum((predictions == 0) & (labels == 1))
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert matthews(predictions, labels) == pytest.approx(expected)
    assert matthews(labels, labels) == pytest.approx(1.0) and matthews(1 - labels, labels) == pytest.approx(-1.0)
    # a hand count: TP 2, TN 1, FP 1, FN 0 -> (2 - 0) / sqrt(3 * 2 * 2 * 1)
    assert matthews([1, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(2 / math.sqrt(12))


def test_matthews_multiclass_is_the_correlation_of_one_hot_codes(rng):
    # Gorodkin (2004): MCC = cov(X, Y) / sqrt(cov(X, X) cov(Y, Y)) over one-hot matrices X, Y
    predictions, labels = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    predictions[:150] = labels[:150]  # some signal
    x, y = np.eye(3)[predictions], np.eye(3)[labels]
    x, y = x - x.mean(0), y - y.mean(0)
    expected = np.sum(x * y) / math.sqrt(np.sum(x * x) * np.sum(y * y))
    assert matthews(predictions, labels) == pytest.approx(expected)


def test_matthews_with_a_single_class_is_zero():
    assert matthews([1, 1, 1], [1, 0, 1]) == 0.0


def test_pearson_against_numpy(rng):
    x, y = rng.normal(size=50), rng.normal(size=50)
    y += x
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # undefined for a constant


def test_average_ranks_by_hand():
    assert average_ranks(np.array([10.0, 20.0, 20.0, 5.0, 20.0])).tolist() == [2.0, 4.0, 4.0, 1.0, 4.0]
    assert average_ranks(np.array([3.0, 1.0, 2.0])).tolist() == [3.0, 1.0, 2.0]


def test_spearman_without_ties_is_the_rank_difference_formula(rng):
    x, y = rng.permutation(20).astype(float), rng.permutation(20).astype(float)
    d = average_ranks(x) - average_ranks(y)
    n = len(x)
    assert spearman(x, y) == pytest.approx(1 - 6 * np.sum(d * d) / (n * (n * n - 1)))
    assert spearman(x, x ** 3) == pytest.approx(1.0)  # any increasing function


def test_spearman_with_ties_by_hand():
    # ranks of x: [1, 2.5, 2.5, 4]; of y: [1, 2, 3, 4]
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4.0])
    expected = np.sum((rx - rx.mean()) * (ry - ry.mean())) / math.sqrt(np.sum((rx - rx.mean()) ** 2)
                                                                      * np.sum((ry - ry.mean()) ** 2))
    assert spearman([0.1, 0.5, 0.5, 0.9], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(expected)


def test_against_scipy_where_installed(rng):
    stats = pytest.importorskip("scipy.stats")
    x, y = rng.integers(0, 6, 80).astype(float), rng.normal(size=80)  # x has many ties
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])


def test_compute_by_name():
    result = compute(["f1", "accuracy"], np.array([1, 0, 1]), np.array([1, 1, 1]))
    assert list(result) == ["f1", "accuracy"] and result["accuracy"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(0.8) and isinstance(result["f1"], float)
    assert set(metrics.METRICS) == {"accuracy", "f1", "matthews", "pearson", "spearman"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        compute(["auc"], [1], [1])
    with pytest.raises(ValueError, match="one length"):
        accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="no predictions"):
        accuracy([], [])
