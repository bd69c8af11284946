"""Realised and estimated performance of a window: pure numpy over predictions and labels.

The estimate before labels arrive follows NannyML's CBPE for accuracy: if the
model's probabilities are calibrated, the chance a prediction is right is its
top probability, so the expected accuracy is their mean.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt


class Performance(msgspec.Struct, frozen=True):
    """One window's figures; None where they cannot be computed (no labels, no probabilities)."""

    rows: int
    labelled: int
    accuracy: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    rmse: float | None = None
    mae: float | None = None
    estimated_accuracy: float | None = None


def accuracy(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(p)))


def f1_macro(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """Macro F1 over the classes seen in labels or predictions (sklearn's ``average="macro"``)."""
    y, p = np.asarray(y), np.asarray(p)
    scores = []
    for c in np.unique(np.concatenate([y, p])):
        tp = np.sum((y == c) & (p == c))
        fp = np.sum((y != c) & (p == c))
        fn = np.sum((y == c) & (p != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their mean rank."""
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    ranks = np.empty(a.size, dtype=np.float64)
    first = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], a.size]
    mean_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc_binary(y: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) identity; None with one class."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    r = _ranks(s)
    return float((r[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_auc(y: npt.ArrayLike, proba: np.ndarray, classes: list[object]) -> float | None:
    """Binary AUC on the second class's probability, or the macro one-vs-rest mean."""
    y = np.asarray(y)
    if proba.ndim == 1:
        return roc_auc_binary(y == classes[-1], proba)
    if proba.shape[1] == 2:
        return roc_auc_binary(y == classes[1], proba[:, 1])
    aucs = [roc_auc_binary(y == c, proba[:, i]) for i, c in enumerate(classes) if i < proba.shape[1]]
    kept = [a for a in aucs if a is not None]
    return float(np.mean(kept)) if kept else None


def estimated_accuracy(proba: np.ndarray) -> float | None:
    """CBPE: the mean top probability (a binary model's one column: max(p, 1 - p))."""
    if proba.size == 0:
        return None
    top = np.maximum(proba, 1 - proba) if proba.ndim == 1 else proba.max(axis=1)
    return float(np.mean(top))


def classification(
    predictions: npt.ArrayLike,
    labels: npt.ArrayLike,
    labelled: npt.ArrayLike,
    proba: np.ndarray | None = None,
    classes: list[object] | None = None,
) -> Performance:
    """Figures of a classifier's window; ``labelled`` marks the rows whose label has arrived."""
    pred = np.asarray(predictions)
    mask = np.asarray(labelled, dtype=bool)
    est = estimated_accuracy(proba) if proba is not None else None
    if not mask.any():
        return Performance(pred.size, 0, estimated_accuracy=est)
    y, p = np.asarray(labels)[mask], pred[mask]
    auc = None
    if proba is not None and classes:
        auc = roc_auc(y, proba[mask], classes)
    return Performance(
        pred.size, int(mask.sum()), accuracy(y, p), f1_macro(y, p), auc, estimated_accuracy=est
    )


def regression(predictions: npt.ArrayLike, labels: npt.ArrayLike, labelled: npt.ArrayLike) -> Performance:
    pred = np.asarray(predictions, dtype=np.float64)
    mask = np.asarray(labelled, dtype=bool)
    if not mask.any():
        return Performance(pred.size, 0)
    err = pred[mask] - np.asarray(labels, dtype=np.float64)[mask]
    return Performance(
        pred.size, int(mask.sum()), rmse=math.sqrt(float(np.mean(err**2))), mae=float(np.mean(np.abs(err)))
    )
