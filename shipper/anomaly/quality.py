"""Prediction quality of one window: accuracy, precision, recall, F1 and ROC AUC.

A value that cannot be computed is None, never a made-up number: precision without a
positive prediction, recall without a positive label, AUC without both classes. A
dashboard or detector that gets 0.5 or 0 for "unknown" would draw and alert on noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from _fastparse.counters import lazy_numpy

if TYPE_CHECKING:
    import numpy as np
else:  # imported when a window first has predictions
    np = lazy_numpy(globals())


def confusion_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float | None]:
    """accuracy (TP+TN)/all, precision TP/(TP+FP), recall TP/(TP+FN), F1 2PR/(P+R)."""
    total = tp + fp + fn + tn
    accuracy = (tp + tn) / total if total else None
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney rank statistic; tied scores share their mean rank.

    Equal to the probability that a random positive scores above a random negative,
    ties counting one half, which is what scikit-learn's ``roc_auc_score`` gives. None
    without at least one positive and one negative. O(n log n), no Python loop.
    """
    labels = np.asarray(labels)
    n = len(labels)
    n_pos = int(np.count_nonzero(labels == 1))
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True, return_counts=True)
    # ranks 1..n; a group of tied scores spanning ranks a..b gets (a + b) / 2
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse.reshape(-1)][labels == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def window_quality(
    confusion: Sequence[int] | np.ndarray | None, scores: np.ndarray | None, labels: np.ndarray | None
) -> dict[str, float | None]:
    """Every quality signal of one window (absent inputs give None values)."""
    out: dict[str, float | None] = {"accuracy": None, "precision": None, "recall": None, "f1": None}
    if confusion is not None and int(sum(confusion)):
        tp, fp, fn, tn = (int(x) for x in confusion)
        out = confusion_metrics(tp, fp, fn, tn)
    out["auc"] = roc_auc(scores, labels) if scores is not None and labels is not None and len(scores) else None
    return out
