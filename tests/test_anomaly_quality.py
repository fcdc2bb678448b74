"""Prediction quality: against references computed here (brute-force Mann-Whitney for AUC)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from shipper.anomaly.quality import confusion_metrics, roc_auc, window_quality


def brute_auc(scores: list[float], labels: list[int]) -> float:
    """P(score of a positive > score of a negative), ties counting 1/2, over all pairs."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(30))
def test_auc_equals_mann_whitney_with_ties(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(2, 300)
    labels = [rng.randrange(2) for _ in range(n)]
    labels[0], labels[1] = 0, 1
    distinct = rng.choice([3, 10, 1000])  # few distinct scores: many ties
    scores = [rng.randrange(distinct) / distinct + 0.3 * y * rng.random() for y in labels]
    assert roc_auc(np.array(scores), np.array(labels)) == pytest.approx(brute_auc(scores, labels), abs=1e-12)


def test_auc_edge_cases() -> None:
    assert roc_auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert roc_auc(np.array([0.9, 0.1]), np.array([0, 1])) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5]), np.array([0, 1, 1])) == 0.5
    assert roc_auc(np.array([0.2, 0.7]), np.array([1, 1])) is None  # no negatives: no AUC
    assert roc_auc(np.array([0.2]), np.array([0])) is None
    assert roc_auc(np.array([]), np.array([])) is None


@pytest.mark.parametrize("seed", range(20))
def test_confusion_metrics_equal_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    p = np.where(rng.random(200) < 0.8, y, 1 - y)
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    tn = int(((p == 0) & (y == 0)).sum())
    got = confusion_metrics(tp, fp, fn, tn)
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    assert got["accuracy"] == pytest.approx(float((p == y).mean()))
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_undefined_values_are_none() -> None:
    assert confusion_metrics(0, 0, 0, 0) == {"accuracy": None, "precision": None, "recall": None, "f1": None}
    got = confusion_metrics(0, 0, 3, 5)  # nothing predicted positive
    assert got["precision"] is None and got["f1"] is None and got["recall"] == 0.0
    assert confusion_metrics(0, 2, 3, 5)["f1"] == 0.0  # P = R = 0: F1 is 0, not undefined
    q = window_quality(None, np.array([0.3, 0.4]), np.array([1, 1]))
    assert q == {"accuracy": None, "precision": None, "recall": None, "f1": None, "auc": None}
