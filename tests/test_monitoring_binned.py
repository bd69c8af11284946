"""Drift of large windows from histograms: close to the exact statistics on the same data,
mergeable batch by batch, and read from the typed prediction log's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlbox.monitoring import binned, stats
from mlbox.monitoring.drift import Kind, drift
from mlbox.services import Services
from mlbox.serving.predlog import write_rows
from mlbox.store.errors import InvalidInput


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_binned_statistics_are_close_to_the_exact_ones(shift: float) -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(0, 2, 100_000)
    c = rng.normal(2 * shift, 2.5 if shift else 2, 150_000)
    g = binned.grid(r)
    hr, hc = binned.Histogram.empty(g), binned.Histogram.empty(g)
    hr.add(r)
    for part in np.array_split(c, 7):  # counted batch by batch
        hc.add(part)
    d, p = binned.ks(hr, hc)
    exact_d, exact_p = stats.ks_2samp(r, c)
    assert exact_d - 0.003 <= d <= exact_d + 1e-12  # at most the exact one, short by a bin's share
    assert (p < 0.05) == (exact_p < 0.05)
    assert binned.wasserstein_normed(hr, hc, float(np.std(r))) == pytest.approx(
        stats.wasserstein_normed(r, c), abs=2e-3
    )
    assert binned.psi(hr, hc) == pytest.approx(stats.psi(r, c), abs=5e-3)


def test_histograms_merge_and_count_what_they_leave_out() -> None:
    g = binned.grid([0.0, 10.0], bins=10)
    a, b = binned.Histogram.empty(g), binned.Histogram.empty(g)
    a.add(np.array([-1.0, 0.0, 0.5, np.nan, 10.0]))
    b.add(np.array([9.99, 11.0, np.inf, -np.inf, 5.0]))
    both = a.merge(b)
    assert both.counts.tolist() == [1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2]
    assert (both.count, both.missing, both.infinite) == (7, 1, 2)
    assert (both.minimum, both.maximum) == (-1.0, 11.0)
    with pytest.raises(ValueError):
        a.merge(binned.Histogram.empty(binned.grid([0.0, 1.0])))


def test_window_from_typed_log_files_flags_what_the_exact_tests_flag(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 60_000
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "y": rng.normal(5, 2, n),
            "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    current = pd.DataFrame(
        {
            "x": rng.normal(0.4, 1, n),
            "y": rng.normal(5, 2, n),
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.3, 0.3, 0.2, 0.2]),
        }
    )
    current.loc[:99, "y"] = np.nan
    files = []
    for k, part in enumerate(np.array_split(np.arange(n), 3)):
        files.append(tmp_path / f"rows-{k + 1:06d}.parquet")
        write_rows(pa.Table.from_pandas(current.iloc[part], preserve_index=False), files[-1])
    kinds: dict[str, Kind] = {"x": "numeric", "y": "numeric", "c": "categorical"}
    rows, verdicts = binned.drift_of_files(reference, files, columns=list(kinds), kinds=kinds)
    exact = drift(reference, current)
    assert rows == n
    assert [(v.column, v.test, v.drifted) for v in verdicts] == [(v.column, v.test, v.drifted) for v in exact]
    assert [v.drifted for v in verdicts] == [True, False, True]
    by = {v.column: v for v in verdicts}
    assert by["y"].n_current == n - 100
    assert by["c"].statistic == pytest.approx({v.column: v for v in exact}["c"].statistic)
    assert by["x"].statistic == pytest.approx({v.column: v for v in exact}["x"].statistic, abs=2e-3)
    _, ks = binned.drift_of_files(
        reference,
        files,
        columns=["x"],
        kinds=kinds,
        tests={"x": "ks"},
        thresholds={"x": 0.01},
    )
    assert ks[0].test == "ks" and ks[0].threshold == 0.01 and ks[0].p_value is not None and ks[0].drifted
    with pytest.raises(InvalidInput) as err:
        binned.drift_of_files(reference, files, columns=["x"], kinds=kinds, tests={"x": "chi2"})
    assert err.value.field == "tests"


def test_a_large_window_is_checked_from_histograms_with_the_same_verdicts(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's evaluation past `binned.LARGE_WINDOW` rows (lowered here so 200 logged rows
    count as large) flags the same columns with statistics close to the exact ones."""
    from tests.test_monitoring_service import T0, seed

    seed(services, tmp_path)
    mon = services.monitoring
    mon.set_reference("clf@champion", path=tmp_path / "train.parquet")
    exact = mon.evaluate("clf@champion", since=T0 + 1000, until=T0 + 2000)
    monkeypatch.setattr(binned, "LARGE_WINDOW", 100)
    large = mon.evaluate("clf@champion", since=T0 + 1000, until=T0 + 2000)
    assert [(v.column, v.test, v.drifted) for v in large.drift] == [
        (v.column, v.test, v.drifted) for v in exact.drift
    ]
    assert any(v.drifted for v in large.drift)
    for a, b in zip(large.drift, exact.drift, strict=True):
        assert a.statistic == pytest.approx(b.statistic, abs=0.02)
