"""Profiles merge (a day is the sum of its windows), data-quality findings, robust outlier
scores, and the performance figures against scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score

from mlbox.monitoring import performance as perf
from mlbox.monitoring.profile import merge, outlier_rate, profile
from mlbox.monitoring.quality import quality


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "k": rng.choice(["a", "b", "c"], n),
            "few": rng.integers(0, 3, n),  # integers with few values: categorical (a float is numeric)
        }
    )


def test_window_profiles_merge_into_the_profile_of_both() -> None:
    rng = np.random.default_rng(1)
    ref = profile(_frame(rng, 2000))
    a, b = _frame(rng, 700, 0.2), _frame(rng, 500, -0.1)
    a.loc[3, "x"] = np.nan
    b.loc[4, "k"] = None
    merged = merge(profile(a, like=ref), profile(b, like=ref))
    whole = profile(pd.concat([a, b], ignore_index=True), like=ref)
    assert merged.rows == whole.rows == 1200
    for name in ("x", "k", "few"):
        m, w = merged.columns[name], whole.columns[name]
        assert (m.count, m.missing, m.counts, m.categories, m.below, m.above) == (
            w.count, w.missing, w.counts, w.categories, w.below, w.above,
        )  # fmt: skip
        assert m.total == pytest.approx(w.total) and m.minimum == w.minimum and m.maximum == w.maximum
    assert ref.columns["x"].kind == "numeric" and ref.columns["few"].kind == "categorical"
    assert (
        sum(ref.columns["x"].counts) == 2000
        and len(ref.columns["x"].counts) == len(ref.columns["x"].edges) + 1
    )
    with pytest.raises(ValueError):
        merge(profile(a), profile(b))  # bins fitted on each: they do not add up


def test_quality_finds_missing_infinite_out_of_range_new_categories_and_schema_changes() -> None:
    rng = np.random.default_rng(2)
    reference = _frame(rng, 1000)
    ref = profile(reference)
    clean = _frame(rng, 500)
    assert quality(ref, profile(clean, like=ref), list(clean.columns)).problems == []
    bad = _frame(rng, 500)
    bad.loc[:99, "x"] = np.nan
    bad.loc[100:104, "x"] = np.inf
    bad.loc[105:150, "x"] = 50.0
    bad.loc[:9, "k"] = "zebra"
    bad = bad.drop(columns="few").assign(extra=1)
    found = quality(ref, profile(bad, like=ref), list(bad.columns))
    text = " | ".join(found.problems)
    assert "column 'few' is missing" in text and "new column 'extra'" in text
    assert (
        "x: 20.0% missing" in text and "5 infinite values" in text and "outside the reference's range" in text
    )
    assert "new categories 'zebra'" in text
    typed = clean.assign(x=clean["x"].astype(str))
    assert any("type float64 became" in p for p in quality(ref, profile(typed, like=ref)).problems)


def test_outlier_rate_is_robust_z_against_the_reference() -> None:
    rng = np.random.default_rng(3)
    ref = profile(_frame(rng, 5000))
    assert outlier_rate(_frame(rng, 2000), ref) < 0.01
    far = _frame(rng, 2000)
    far.loc[:499, "x"] = 10.0
    assert outlier_rate(far, ref) == pytest.approx(0.25, abs=0.01)


def test_performance_equals_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 400)
    proba = rng.dirichlet([1, 1, 1], 400)
    proba[np.arange(400), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    labelled = rng.random(400) < 0.6
    got = perf.classification(pred, y, labelled, proba, [0, 1, 2])
    assert got.labelled == labelled.sum() and got.rows == 400
    assert got.accuracy == pytest.approx(accuracy_score(y[labelled], pred[labelled]))
    assert got.f1 == pytest.approx(f1_score(y[labelled], pred[labelled], average="macro"))
    assert got.roc_auc == pytest.approx(
        roc_auc_score(y[labelled], proba[labelled], multi_class="ovr", average="macro")
    )
    assert got.estimated_accuracy == pytest.approx(proba.max(axis=1).mean())
    binary = perf.roc_auc_binary(y[labelled] == 1, proba[labelled, 1].round(1))  # ties
    assert binary == pytest.approx(roc_auc_score(y[labelled] == 1, proba[labelled, 1].round(1)))
    none = perf.classification(pred, y, np.zeros(400, bool), proba, [0, 1, 2])
    assert none.accuracy is None and none.estimated_accuracy is not None
    t, p = rng.normal(size=300), rng.normal(size=300)
    reg = perf.regression(p, t, np.ones(300, bool))
    assert reg.rmse == pytest.approx(float(np.sqrt(np.mean((p - t) ** 2))))
    assert reg.mae == pytest.approx(mean_absolute_error(t, p))


def test_estimated_accuracy_tracks_the_realised_one_when_calibrated() -> None:
    """CBPE: labels drawn from the model's own (calibrated) probabilities."""
    rng = np.random.default_rng(5)
    proba = rng.dirichlet([0.5, 0.5, 0.5], 20_000)
    y = np.array([rng.choice(3, p=p) for p in proba])
    got = perf.classification(proba.argmax(axis=1), y, np.ones(len(y), bool), proba, [0, 1, 2])
    assert got.estimated_accuracy == pytest.approx(got.accuracy, abs=0.01)
