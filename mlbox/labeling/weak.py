"""Weak supervision: labeling functions, their statistics, and label models over their votes.

A labeling function is plain Python that votes a class index for a task, or
abstains (``ABSTAIN``, -1). `apply` runs them over tasks into a vote matrix
(tasks x functions); `summary` is Snorkel's LF analysis (coverage, overlap,
conflict, empirical accuracy where gold labels exist); `majority_vote` and
`dawid_skene` turn the votes into probabilistic labels. Dawid-Skene learns
each function's confusion matrix by EM, so a function that is often wrong
counts for less; it is written here in numpy (the `snorkel` package pulls in
tensorboard and grpcio, which this appliance does not want).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

ABSTAIN = -1


@dataclass(frozen=True)
class LabelingFunction:
    name: str
    fn: Callable[[dict[str, Any]], int]

    def __call__(self, data: dict[str, Any]) -> int:
        return self.fn(data)


@overload
def labeling_function(name: Callable[[dict[str, Any]], int]) -> LabelingFunction: ...
@overload
def labeling_function(
    name: str | None = None,
) -> Callable[[Callable[[dict[str, Any]], int]], LabelingFunction]: ...
def labeling_function(
    name: str | Callable[[dict[str, Any]], int] | None = None,
) -> LabelingFunction | Callable[[Callable[[dict[str, Any]], int]], LabelingFunction]:
    """``@labeling_function`` or ``@labeling_function(name)`` over ``def lf(task_data) -> class
    index or ABSTAIN``. Bare works too, as ``@mlbox.step`` does: the bare form was silently not
    a labeling function, and ``mlbox label weak`` then found none in the file."""
    if callable(name):
        return LabelingFunction(name.__name__, name)
    label = name

    def wrap(fn: Callable[[dict[str, Any]], int]) -> LabelingFunction:
        return LabelingFunction(label or fn.__name__, fn)

    return wrap


def apply(lfs: Sequence[LabelingFunction], tasks: Sequence[dict[str, Any]]) -> np.ndarray:
    """The vote matrix: ``L[i, j]`` is function j's vote on task i (``ABSTAIN`` when it abstains)."""
    L = np.full((len(tasks), len(lfs)), ABSTAIN, dtype=np.int64)
    for i, data in enumerate(tasks):
        for j, lf in enumerate(lfs):
            vote = lf(data)
            L[i, j] = ABSTAIN if vote is None else int(vote)
    return L


@dataclass(frozen=True)
class LFStats:
    name: str
    polarity: list[int]
    coverage: float
    """Share of tasks it votes on."""
    overlap: float
    """Share of tasks it votes on together with another function."""
    conflict: float
    """Share of tasks it votes on where another function votes otherwise."""
    accuracy: float | None
    """Share of its votes that match the gold label, over the tasks with one."""


def summary(L: np.ndarray, names: Sequence[str], gold: Sequence[int] | None = None) -> list[LFStats]:
    n = max(L.shape[0], 1)
    voted = L != ABSTAIN
    out = []
    for j, name in enumerate(names):
        mine = voted[:, j]
        others = np.delete(voted, j, axis=1).any(axis=1) if L.shape[1] > 1 else np.zeros(L.shape[0], bool)
        other_votes = np.delete(L, j, axis=1) if L.shape[1] > 1 else np.zeros((L.shape[0], 0), dtype=int)
        disagree = ((other_votes != ABSTAIN) & (other_votes != L[:, [j]])).any(axis=1)
        acc = None
        if gold is not None:
            g = np.asarray(gold)
            has = mine & (g != ABSTAIN)
            acc = float((L[has, j] == g[has]).mean()) if has.any() else None
        out.append(
            LFStats(
                name,
                sorted(int(v) for v in np.unique(L[mine, j])),
                float(mine.sum() / n),
                float((mine & others).sum() / n),
                float((mine & disagree).sum() / n),
                acc,
            )
        )
    return out


def majority_vote(L: np.ndarray, k: int) -> np.ndarray:
    """Probabilistic labels as vote shares (uniform where every function abstains)."""
    counts = np.zeros((L.shape[0], k))
    for c in range(k):
        counts[:, c] = np.equal(L, c).sum(axis=1)
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), 1.0 / k)


@dataclass(frozen=True)
class LabelModel:
    proba: np.ndarray
    """Tasks x classes posterior."""
    confusion: np.ndarray
    """Functions x true class x vote: P(vote | true class), over the votes it casts."""
    prior: np.ndarray
    iterations: int

    def accuracies(self) -> np.ndarray:
        """Each function's estimated accuracy: P(vote = true class), weighted by the class prior."""
        diag = np.einsum("jkk->jk", self.confusion)
        return np.asarray(diag @ self.prior)


def dawid_skene(
    L: np.ndarray, k: int, *, iterations: int = 100, tol: float = 1e-6, smoothing: float = 0.01
) -> LabelModel:
    """Dawid and Skene's EM: class prior and a confusion matrix per function, started from majority vote."""
    n, m = L.shape
    T = majority_vote(L, k)
    onehot = np.zeros((n, m, k))
    for c in range(k):
        onehot[:, :, c] = np.equal(L, c)
    prior = np.full(k, 1.0 / k)
    conf = np.zeros((m, k, k))
    it = 0
    for step in range(1, iterations + 1):
        it = step
        prior = (T.sum(axis=0) + smoothing) / (n + k * smoothing)
        # conf[j, true, vote] from the current posteriors
        conf = np.einsum("ik,ijv->jkv", T, onehot) + smoothing
        conf /= conf.sum(axis=2, keepdims=True)
        log_post = np.log(prior)[None, :] + np.einsum("ijv,jkv->ik", onehot, np.log(conf))
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        delta = float(np.abs(new - T).max())
        T = new
        if delta < tol:
            break
    return LabelModel(T, conf, prior, it)


def confident_learning(labels: Sequence[int], proba: Any) -> np.ndarray:
    """Indices of suspected mislabels, most suspect first: confident learning's core rule.

    Per class, a threshold is the mean predicted probability of that class over the tasks given it.
    A task whose given label differs from a class whose probability passes that class's threshold
    (the confident joint's off-diagonal) is suspect; ranked by how much less probability its given
    label has than the best confident class (cleanlab's "prune by noise rate" order, simplified).
    """
    y = np.asarray(labels)
    p = np.asarray(proba, dtype=float)
    k = p.shape[1]
    thresholds = np.array([p[y == c, c].mean() if (y == c).any() else 1.0 for c in range(k)])
    confident = p >= thresholds[None, :]
    masked = np.where(confident, p, -1.0)
    best = masked.argmax(axis=1)
    has = confident.any(axis=1)
    suspect = has & (best != y)
    idx = np.flatnonzero(suspect)
    margin = p[idx, best[idx]] - p[idx, y[idx]]
    return idx[np.argsort(-margin, kind="stable")]
