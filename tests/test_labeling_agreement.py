"""Agreement statistics against hand-computed cases and against the `krippendorff` package."""

from __future__ import annotations

import random

import krippendorff
import numpy as np
import pytest

from mlbox.labeling import agreement


def test_cohen_kappa_by_hand() -> None:
    # 10 items: agree on 7 (4 yes, 3 no); a says yes 6 times, b says yes 5 times.
    a = ["y", "y", "y", "y", "n", "n", "n", "y", "y", "n"]
    b = ["y", "y", "y", "y", "n", "n", "n", "n", "n", "y"]
    # po = 0.7; pe = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.4
    assert agreement.cohen_kappa(a, b) == pytest.approx(0.4)
    assert agreement.cohen_kappa(a, a) == pytest.approx(1.0)
    assert agreement.cohen_kappa(["x", "x"], ["x", "x"]) is None


def test_fleiss_kappa_wikipedia_example() -> None:
    # The worked example of Fleiss' kappa on Wikipedia (10 subjects, 14 raters, 5 categories): 0.210
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert agreement.fleiss_kappa(counts) == pytest.approx(0.20993, abs=1e-4)


def test_krippendorff_alpha_by_hand_and_against_the_package() -> None:
    # Two coders, four units, values a a / a b / b b / b b: coincidences o_aa=2, o_ab=o_ba=1, o_bb=4;
    # n_a=3, n_b=5, n=8; alpha = 1 - (n-1) * 2 / (2 * 3 * 5) = 1 - 7/15
    units = [{"x": "a", "y": "a"}, {"x": "a", "y": "b"}, {"x": "b", "y": "b"}, {"x": "b", "y": "b"}]
    assert agreement.krippendorff_alpha(units) == pytest.approx(1 - 7 / 15)
    rng = random.Random(3)
    coders = ["c1", "c2", "c3", "c4"]
    classes = ["a", "b", "c"]
    for _ in range(5):
        ratings = []
        for _u in range(40):
            truth = rng.choice(classes)
            unit = {}
            for c in coders:
                if rng.random() < 0.8:
                    unit[c] = truth if rng.random() < 0.7 else rng.choice(classes)
            ratings.append(unit)
        matrix = np.array(
            [[classes.index(u[c]) if c in u else np.nan for u in ratings] for c in coders], dtype=float
        )
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
        assert agreement.krippendorff_alpha(ratings) == pytest.approx(expected, abs=1e-9)


def test_report_per_label_and_annotator() -> None:
    ratings = [
        {"ann": "cat", "bob": "cat", "cid": "cat"},
        {"ann": "dog", "bob": "dog", "cid": "cat"},
        {"ann": "dog", "bob": "dog", "cid": "dog"},
        {"ann": "cat", "bob": "cat", "cid": "dog"},
        {"ann": "cat"},
    ]
    rep = agreement.report(ratings, ["cat", "dog"])
    assert rep.tasks == 4
    assert rep.per_annotator["ann"]["with_majority"] == 1.0
    assert rep.per_annotator["cid"]["with_majority"] == 0.5
    assert rep.per_annotator["ann"]["cohen"] is not None
    # ann and bob agree everywhere: their kappa is 1
    assert agreement.pairwise_cohen(ratings)[("ann", "bob")] == pytest.approx(1.0)
    assert set(rep.per_label) == {"cat", "dog"}
    assert agreement.majority(["a", "b"]) is None and agreement.majority(["a", "b", "a"]) == "a"
