"""Weak supervision (label models on synthetic functions of known accuracy), confident learning,
and active learning order on the digits."""

from __future__ import annotations

import numpy as np

from mlbox.labeling import active, weak


def _synthetic(
    n: int, k: int, accuracies: list[float], coverage: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    L = np.full((n, len(accuracies)), weak.ABSTAIN)
    for j, acc in enumerate(accuracies):
        votes = rng.random(n) < coverage
        right = rng.random(n) < acc
        wrong = (y + rng.integers(1, k, n)) % k
        L[votes, j] = np.where(right, y, wrong)[votes]
    return L, y


def test_dawid_skene_recovers_known_accuracies_and_beats_majority() -> None:
    accuracies = [0.9, 0.85, 0.7, 0.55, 0.4]
    L, y = _synthetic(4000, 3, accuracies, coverage=0.7, seed=1)
    model = weak.dawid_skene(L, 3)
    np.testing.assert_allclose(model.accuracies(), accuracies, atol=0.04)
    mv = weak.majority_vote(L, 3)
    voted = (L != weak.ABSTAIN).any(axis=1)
    mv_acc = (mv.argmax(1)[voted] == y[voted]).mean()
    assert (model.proba.argmax(1)[voted] == y[voted]).mean() > mv_acc


def test_labeling_functions_and_their_table() -> None:
    @weak.labeling_function()
    def has_good(d: dict[str, str]) -> int:
        return 1 if "good" in d["text"] else weak.ABSTAIN

    @weak.labeling_function(name="has_bad")
    def bad(d: dict[str, str]) -> int:
        return 0 if "bad" in d["text"] else weak.ABSTAIN

    tasks = [{"text": "good"}, {"text": "bad"}, {"text": "good and bad"}, {"text": "meh"}]
    L = weak.apply([has_good, bad], tasks)
    assert L.tolist() == [[1, -1], [-1, 0], [1, 0], [-1, -1]]
    stats = weak.summary(L, [has_good.name, bad.name], gold=[1, 0, 1, -1])
    assert [s.name for s in stats] == ["has_good", "has_bad"]
    assert stats[0].coverage == 0.5 and stats[0].overlap == 0.25 and stats[0].conflict == 0.25
    assert stats[0].accuracy == 1.0 and stats[1].accuracy == 0.5 and stats[0].polarity == [1]


def test_confident_learning_finds_flipped_labels() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600].copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), 30, replace=False)
    y[flipped] = (y[flipped] + 1 + rng.integers(0, 9, 30)) % 10
    proba = cross_val_predict(KNeighborsClassifier(10), X / 16, y, cv=5, method="predict_proba")
    found = weak.confident_learning(y, proba)
    hits = set(found.tolist()) & set(flipped.tolist())
    assert len(hits) >= 20 and len(hits) >= 0.7 * len(found)  # most flips found, few false alarms


def test_uncertainty_scores() -> None:
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]])
    for s in ("entropy", "margin", "least_confidence"):
        order = np.argsort(-active.uncertainty(p, s)).tolist()
        assert order == [0, 2, 1], s


def test_active_learning_beats_random_order_on_digits() -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16
    Xp, yp, Xt, yt = X[:800], y[:800], X[1400:], y[1400:]
    # the same budget of 220 labels: margin order teaches the model more than random order
    _, al = active.labels_to_reach(Xp, yp, Xt, yt, 1.01, strategy="margin", seed=0, step=40, max_labels=220)
    _, rnd = active.labels_to_reach(Xp, yp, Xt, yt, 1.01, strategy="random", seed=0, step=40, max_labels=220)
    assert al[-1][0] == rnd[-1][0] == 220
    assert al[-1][1] > rnd[-1][1]


def test_service_applies_functions_and_queues_suspected_mislabels(services: object) -> None:
    from sklearn.datasets import load_digits

    from mlbox.services import Services

    assert isinstance(services, Services)
    lab = services.labeling
    lab.create_project("sent", {"choices": ["neg", "pos"]})
    texts = ["good movie", "bad movie", "good and fun", "bad and dull", "fine", "good but bad ending"]
    lab.add_tasks("sent", [{"text": t} for t in texts])

    @weak.labeling_function()
    def good(d: dict[str, str]) -> int:
        return 1 if "good" in d["text"] else weak.ABSTAIN

    @weak.labeling_function()
    def bad(d: dict[str, str]) -> int:
        return 0 if "bad" in d["text"] else weak.ABSTAIN

    (t1,) = lab.next_tasks("sent", "ann")
    lab.annotate(t1.id, "ann", {"label": "pos"})
    table = lab.apply_functions("sent", [good, bad])
    assert [(s.name, s.coverage, s.accuracy) for s in table] == [("good", 0.5, 1.0), ("bad", 0.5, None)]
    pre = {t.data["text"]: t.prelabel for t in lab.tasks("sent")}
    assert pre["bad movie"] is not None and pre["bad movie"].value == {"label": "neg"}
    assert (
        pre["fine"] is None
        and pre["good movie"] is not None
        and pre["good movie"].model == "weak:dawid_skene"
    )

    X, y = load_digits(return_X_y=True)
    lab.create_project("dig", {"choices": [str(i) for i in range(10)]})
    lab.add_tasks("dig", [{"pixels": (X[i] / 16).tolist()} for i in range(200)])
    flipped = {5, 17, 42}
    first = lab.tasks("dig", limit=1)[0].id
    for t in lab.next_tasks("dig", "ann", 200):
        i = t.id - first
        label = (y[i] + 3) % 10 if i in flipped else y[i]
        lab.annotate(t.id, "ann", {"label": str(label)})
    suspects = lab.find_mislabels("dig")
    assert len({first + i for i in flipped} & set(suspects[:10])) >= 2
    reviews = {r.task_id for r in lab.reviews("dig") if r.reason == "suspected mislabel"}
    assert reviews == set(suspects)
