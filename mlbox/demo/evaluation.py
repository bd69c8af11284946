"""Classifier evaluation as pure numpy: accuracy, log loss and the confusion matrix.

Shared by the torch and scikit-learn trials so that every run's ``val_acc``
and ``val_loss`` mean exactly the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-12


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    log_loss: float
    confusion: np.ndarray  # confusion[true, predicted], int64


def evaluate(y_true: np.ndarray, proba: np.ndarray) -> Evaluation:
    """Score class probabilities ``proba`` (rows × classes) against integer labels."""
    n_classes = proba.shape[1]
    predicted = proba.argmax(axis=1)
    picked = proba[np.arange(len(y_true)), y_true]
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y_true, predicted), 1)
    return Evaluation(
        accuracy=float((predicted == y_true).mean()),
        log_loss=float(-np.log(np.clip(picked, EPS, 1.0)).mean()),
        confusion=confusion,
    )


def confusion_csv(confusion: np.ndarray) -> str:
    """The matrix as CSV with a header row; rows are true labels, columns predictions."""
    n = confusion.shape[0]
    lines = ["true\\pred," + ",".join(str(j) for j in range(n))]
    lines += [f"{i}," + ",".join(str(int(v)) for v in confusion[i]) for i in range(n)]
    return "\n".join(lines) + "\n"
