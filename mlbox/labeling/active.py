"""Active learning: which task to label next, from a model's predicted probabilities.

Pure numpy. Each score is higher for a task the model is less sure of, so the
queue (highest priority first) asks for the labels that teach it most.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

STRATEGIES = ("entropy", "margin", "least_confidence", "random")


def uncertainty(proba: Any, strategy: str = "entropy", *, seed: int = 0) -> np.ndarray:
    """One score per row of ``proba`` (rows are class probabilities); higher = ask sooner."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0:
        return np.zeros(0 if p.ndim != 2 else p.shape[0])
    if strategy == "entropy":
        q = np.clip(p, 1e-12, 1.0)
        return np.asarray(-(q * np.log(q)).sum(axis=1))
    if strategy == "least_confidence":
        return np.asarray(1.0 - p.max(axis=1))
    if strategy == "margin":
        if p.shape[1] < 2:
            return np.zeros(p.shape[0])
        top2 = np.sort(p, axis=1)[:, -2:]
        return np.asarray(1.0 - (top2[:, 1] - top2[:, 0]))
    if strategy == "random":
        return np.asarray(np.random.default_rng(seed).random(p.shape[0]))
    raise ValueError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")


def fast_model() -> Any:
    """A logistic regression that fits a few hundred digits in tens of milliseconds (saga, capped):
    the loop refits after every batch of labels, so a slow solver would dominate it."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="saga", max_iter=50, tol=1e-2)


def labels_to_reach(
    X: Any,
    y: Any,
    X_test: Any,
    y_test: Any,
    target: float,
    *,
    strategy: str,
    seed: int,
    start: int = 20,
    step: int = 10,
    make_model: Any = None,
    max_labels: int | None = None,
) -> tuple[int, list[tuple[int, float]]]:
    """Labels a simulated annotator gives (in ``strategy`` order, retraining every ``step``) until the
    model's test accuracy reaches ``target``; and the (labels, accuracy) curve. The pool's true labels
    stand in for the annotator (what the benchmark and the demo measure)."""
    X, y = np.asarray(X), np.asarray(y)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    labeled = list(order[:start])
    pool = set(order[start:].tolist())
    curve: list[tuple[int, float]] = []
    limit = len(y) if max_labels is None else min(max_labels, len(y))
    factory = make_model or fast_model
    while True:
        model = factory()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a capped solver may stop before it converges: fine here
            model.fit(X[labeled], y[labeled])
        acc = float((model.predict(X_test) == y_test).mean())
        curve.append((len(labeled), acc))
        if acc >= target or not pool or len(labeled) >= limit:
            return len(labeled), curve
        rest = np.fromiter(pool, dtype=int)
        if strategy == "random":
            pick = rng.choice(rest, size=min(step, len(rest)), replace=False)
        else:
            scores = uncertainty(model.predict_proba(X[rest]), strategy)
            pick = rest[np.argsort(-scores, kind="stable")[:step]]
        labeled.extend(int(i) for i in pick)
        pool.difference_update(int(i) for i in pick)
