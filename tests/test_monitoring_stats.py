"""Drift statistics against scipy, the false-alarm rate of unshifted data, known shifts found,
and ``mlbox monitor drift`` over two files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss
from scipy.spatial.distance import jensenshannon

from mlbox.monitoring import stats
from mlbox.monitoring.drift import by_severity, drift, verdict
from mlbox.store.errors import InvalidInput
from tests.helpers import ok, run_main


@pytest.mark.parametrize("seed", range(5))
def test_statistics_equal_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=int(rng.integers(50, 3000)))
    b = rng.normal(rng.uniform(-0.3, 0.3), rng.uniform(0.5, 2), size=int(rng.integers(50, 3000)))
    if seed % 2:  # ties on both sides
        a, b = a.round(1), b.round(1)
    d, p = stats.ks_2samp(a, b)
    want = ss.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(want.statistic, abs=1e-12)
    assert p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)
    assert stats.wasserstein(a, b) == pytest.approx(ss.wasserstein_distance(a, b), rel=1e-9)

    cats = np.array(list("abcdef"))
    x = rng.choice(cats, size=500, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    y = rng.choice(cats[: 3 + seed % 3], size=400)
    stat, pv = stats.chi2_2samp(x, y)
    _, r, c = stats.category_counts(x, y)
    want_chi = ss.chi2_contingency(np.vstack([r, c]))
    assert stat == pytest.approx(want_chi.statistic, rel=1e-9)
    assert pv == pytest.approx(want_chi.pvalue, rel=1e-9, abs=1e-300)
    assert stats.jensenshannon(x, y) == pytest.approx(jensenshannon(r, c), rel=1e-9)


def test_two_categories_use_yates_as_scipy() -> None:
    r, c = np.array([30, 70]), np.array([45, 55])
    stat, p = stats.chi2_counts(r, c)
    want = ss.chi2_contingency(np.vstack([r, c]))
    assert (stat, p) == pytest.approx((want.statistic, want.pvalue), rel=1e-9)


def test_psi_is_the_textbook_sum_over_reference_deciles() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=5000), rng.normal(0.3, size=4000)
    edges = np.quantile(a, np.linspace(0, 1, 11)[1:-1])
    r = np.array([np.sum(np.searchsorted(edges, a) == i) for i in range(10)]) / a.size
    c = np.array([np.sum(np.searchsorted(edges, b) == i) for i in range(10)]) / b.size
    assert stats.psi(a, b) == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-9)
    assert stats.psi(a, a) == pytest.approx(0.0, abs=1e-12)


def test_unshifted_columns_are_flagged_near_alpha() -> None:
    """400 numeric (KS) and 400 categorical (two-sample chi-squared) columns drawn from one
    distribution on both sides: about 5% flagged at alpha 0.05, not far more."""
    rng = np.random.default_rng(7)
    columns = 400
    ref = pd.DataFrame({f"x{i}": rng.normal(size=300) for i in range(columns)})
    cur = pd.DataFrame({f"x{i}": rng.normal(size=250) for i in range(columns)})
    numeric = drift(ref, cur)
    assert {v.test for v in numeric} == {"ks"}
    p = np.array([0.4, 0.3, 0.2, 0.1])
    cref = pd.DataFrame({f"c{i}": rng.choice(list("abcd"), size=300, p=p) for i in range(columns)})
    ccur = pd.DataFrame({f"c{i}": rng.choice(list("abcd"), size=250, p=p) for i in range(columns)})
    categorical = drift(cref, ccur)
    assert {v.test for v in categorical} == {"chi2"}
    rate_num = np.mean([v.drifted for v in numeric])
    rate_cat = np.mean([v.drifted for v in categorical])
    assert 0.01 <= rate_num <= 0.09, rate_num
    assert 0.02 <= rate_cat <= 0.09, rate_cat
    # a goodness-of-fit test that takes the reference's frequencies as exact flags far more
    gof = [
        ss.chisquare(
            ccur[f"c{i}"].value_counts().sort_index().to_numpy(),
            cref[f"c{i}"].value_counts(normalize=True).sort_index().to_numpy() * 250,
        ).pvalue
        < 0.05
        for i in range(columns)
    ]
    assert np.mean(gof) > rate_cat


def test_known_shifts_are_found_and_others_not() -> None:
    rng = np.random.default_rng(11)
    n = 5000  # past SMALL_N: distances with thresholds
    ref = pd.DataFrame(
        {
            "same": rng.normal(size=n),
            "moved": rng.normal(size=n),
            "wider": rng.normal(size=n),
            "cat_same": rng.choice(list("abc"), size=n),
            "cat_moved": rng.choice(list("abc"), size=n, p=[0.6, 0.3, 0.1]),
        }
    )
    cur = pd.DataFrame(
        {
            "same": rng.normal(size=n),
            "moved": rng.normal(0.5, size=n),
            "wider": rng.normal(0, 2.0, size=n),
            "cat_same": rng.choice(list("abc"), size=n),
            "cat_moved": rng.choice(list("abc"), size=n, p=[0.2, 0.3, 0.5]),
        }
    )
    verdicts = {v.column: v for v in drift(ref, cur)}
    assert verdicts["same"].test == "wasserstein" and verdicts["cat_same"].test == "jensenshannon"
    assert {c for c, v in verdicts.items() if v.drifted} == {"moved", "wider", "cat_moved"}
    assert by_severity(verdicts.values())[-1].column in {"same", "cat_same"}
    # overrides per column: a test with a p-value, a threshold
    over = {
        v.column: v
        for v in drift(
            ref, cur, tests={"same": "ks", "moved": "psi", "cat_same": "chi2"}, thresholds={"moved": 5.0}
        )
    }
    assert over["same"].test == "ks" and over["same"].p_value is not None and not over["same"].drifted
    assert over["moved"].test == "psi" and over["moved"].threshold == 5.0 and not over["moved"].drifted
    assert over["cat_same"].p_value is not None


def test_a_few_distinct_integers_are_categories_and_missing_values_are_dropped() -> None:
    ref = pd.Series([1, 2, 3, 1, 2, 3, None] * 20, dtype="Int64")
    v = verdict("small_int", ref, ref.fillna(1))
    assert v.kind == "categorical" and v.test == "chi2" and not v.drifted
    # the same values as floats are measurements: numeric, whatever their distinct count
    assert verdict("few_floats", ref.astype("float64"), ref.astype("float64")).kind == "numeric"


def test_bad_input_names_the_field() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10, "c": ["x", "y", "z"] * 10})
    with pytest.raises(InvalidInput) as exc:
        drift(ref, ref.drop(columns="a"))
    assert exc.value.field == "columns"
    with pytest.raises(InvalidInput) as exc:
        drift(ref, ref, tests={"c": "ks"})
    assert exc.value.field == "tests"
    with pytest.raises(InvalidInput) as exc:
        drift(ref, ref, tests={"a": "nope"})
    assert exc.value.field == "tests"
    with pytest.raises(InvalidInput) as exc:
        drift(ref, ref.iloc[:0])
    assert exc.value.field == "current"
    with pytest.raises(InvalidInput) as exc:
        drift(ref, ref.assign(a=np.nan))
    assert exc.value.field == "a"
    assert [v.column for v in drift(ref, ref.assign(a=np.nan), skip_empty=True)] == ["c"]


def test_cli_drift_over_parquet_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400), "k": ["a", "b"] * 200})
    cur = pd.DataFrame(
        {"x": rng.normal(1.0, size=300), "y": rng.normal(size=300), "k": ["a", "b", "a"] * 100}
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    rows = json.loads(
        ok(capsys, "monitor", "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.csv"), "--json")
    )
    assert [r["column"] for r in rows] == ["x", "y", "k"]
    assert all(set(r) == {"column", "test", "statistic", "p_value", "threshold", "drifted"} for r in rows)
    by = {r["column"]: r for r in rows}
    assert by["x"]["drifted"] is True and by["x"]["test"] == "ks" and by["y"]["drifted"] is False
    want = ss.ks_2samp(ref["x"], cur["x"], method="asymp")
    assert by["x"]["statistic"] == pytest.approx(want.statistic)

    out = ok(
        capsys,
        "monitor",
        "drift",
        str(tmp_path / "ref.parquet"),
        str(tmp_path / "cur.csv"),
        "--columns",
        "y,k",
    )
    assert out.splitlines()[0].split() == ["column", "test", "statistic", "p_value", "threshold", "drifted"]
    assert "of 2 columns drifted" in out and "\nx " not in out

    rows = json.loads(
        ok(
            capsys,
            "monitor",
            "drift",
            str(tmp_path / "ref.parquet"),
            str(tmp_path / "cur.csv"),
            "--json",
            "--columns",
            "x",
            "--test",
            "x=wasserstein",
            "--threshold",
            "x=9",
        )
    )
    assert rows == [{**rows[0], "test": "wasserstein", "threshold": 9.0, "drifted": False}]

    code, _, err = run_main(
        capsys, "monitor", "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "nope.csv")
    )
    assert code == 2 and "nope.csv" in err
    code, _, err = run_main(
        capsys,
        "monitor",
        "drift",
        str(tmp_path / "ref.parquet"),
        str(tmp_path / "cur.csv"),
        "--columns",
        "zz",
    )
    assert code == 2 and "zz" in err
    code, _, err = run_main(
        capsys, "monitor", "drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.csv"), "--test", "k=ks"
    )
    assert code == 2 and "numeric" in err
