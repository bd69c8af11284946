"""`mlbox predict`: batch scoring of Parquet and CSV files with registered scikit-learn models.

Models are registered in a real home under tmp_path; the command runs through
`mlbox.cli.main` (its error mapping included) and once as the installed
console script. Every output is compared with the model's own ``predict``; for a model
whose inputs are feature views, on the values a brute-force as-of lookup finds.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlbox.features import FeatureView, Field, ParquetSource
from mlbox.services import Services
from tests.driver_stats import T0, apply_driver_stats
from tests.helpers import MLBOX, run_main

ROWS = 2_500
FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(ROWS, len(FEATURES)))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.3, size=ROWS) > 0).astype(np.int64)
    return x, y


@pytest.fixture
def arrays_model(services: Services, data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    """Fitted on an array: a one-tensor signature, float64 [N, 4]."""
    x, y = data
    clf = LogisticRegression().fit(x, y)
    services.registry.register("churn", model=clf, example_input=x[:3])
    services.registry.set_alias("churn", "champion", 1)
    return clf


@pytest.fixture
def frame_model(services: Services, data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    """Fitted on a frame: a columns signature (f0..f3 by name)."""
    x, y = data
    frame = pd.DataFrame(x, columns=FEATURES)
    clf = LogisticRegression().fit(frame, y)
    services.registry.register("by-name", model=clf, example_input=frame.head(3))
    return clf


@pytest.fixture
def parquet_in(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> Path:
    """The features plus a string id column the model does not take, written in several row groups."""
    x, _ = data
    frame = pl.DataFrame(
        {"id": [f"row-{i}" for i in range(ROWS)], **{n: x[:, i] for i, n in enumerate(FEATURES)}}
    )
    path = tmp_path / "in.parquet"
    frame.write_parquet(path, row_group_size=1_000)
    return path


def test_scores_a_parquet_file_in_chunks_and_keeps_the_inputs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays_model: LogisticRegression,
    parquet_in: Path,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    out = tmp_path / "out.parquet"
    code, stdout, err = run_main(
        capsys, "predict", "churn@champion", str(parquet_in), "-o", str(out), "--batch-size", "300"
    )
    assert (code, err) == (0, ""), err
    assert f"scored {ROWS:,} rows with churn version 1 -> {out}" in stdout
    result = pq.read_table(out)
    assert result.column_names == ["id", *FEATURES, "prediction"]
    assert result.column("id").to_pylist() == [f"row-{i}" for i in range(ROWS)]
    x, _ = data
    expected = arrays_model.predict(x)
    assert np.array_equal(result.column("prediction").to_numpy(), expected)
    assert len(set(expected)) == 2  # both classes occur, so a constant answer would fail
    # the chunks were written as they came: several row groups, none above the batch size
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups >= ROWS // 300
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in.parquet", "out.parquet"]


def test_scores_a_csv_by_column_name_without_the_inputs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    frame_model: LogisticRegression,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = data
    # columns in another order, plus one the model does not take: selected by name
    source = pl.DataFrame({"f3": x[:, 3], "note": ["n"] * ROWS, "f1": x[:, 1], "f0": x[:, 0], "f2": x[:, 2]})
    csv = tmp_path / "in.csv"
    source.write_csv(csv)
    out = tmp_path / "scored.parquet"
    code, _, err = run_main(
        capsys, "predict", "by-name", str(csv), "-o", str(out), "--batch-size", "1000", "--no-keep-inputs"
    )
    assert (code, err) == (0, ""), err
    result = pq.read_table(out)
    assert result.column_names == ["prediction"]
    expected = frame_model.predict(pd.DataFrame(x, columns=FEATURES))
    assert np.array_equal(result.column("prediction").to_numpy(), expected)


def test_columns_option_picks_the_features(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays_model: LogisticRegression,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = data
    source = pl.DataFrame({"customer": np.arange(ROWS), **{n: x[:, i] for i, n in enumerate(FEATURES)}})
    path = tmp_path / "numeric.parquet"
    source.write_parquet(path)
    out = tmp_path / "out.parquet"
    # five numeric columns for a four-feature model: refused, naming what to do
    code, _, err = run_main(capsys, "predict", "churn", str(path), "-o", str(out))
    assert code == 2 and err.count("\n") == 1, err
    assert "takes 4 features" in err and "--columns" in err
    assert not out.exists()
    code, _, err = run_main(
        capsys, "predict", "churn", str(path), "-o", str(out), "--columns", ",".join(FEATURES)
    )
    assert (code, err) == (0, ""), err
    result = pq.read_table(out)
    assert np.array_equal(result.column("prediction").to_numpy(), arrays_model.predict(x))
    assert result.column("customer").to_pylist() == list(range(ROWS))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nobody@champion", "{in}"], "no model named 'nobody'"),
        (["churn@nope", "{in}"], "has no alias 'nope'"),
        (["churn", "{tmp}/missing.parquet"], "no such file"),
        (["churn", "{tmp}/in.txt"], "must be a .parquet or .csv file"),
        (["churn", "{tmp}/broken.parquet"], "cannot read"),
        (["by-name", "{tmp}/short.parquet"], "f2: missing column"),
        (["by-name", "{tmp}/text.parquet"], "f1: expected dtype float64, got string"),
        (["churn", "{in}", "--prediction-column", "id"], "id: the input already has this column"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays_model: LogisticRegression,
    frame_model: LogisticRegression,
    parquet_in: Path,
    argv: list[str],
    needle: str,
) -> None:
    (tmp_path / "in.txt").write_text("a,b\n1,2\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    pl.DataFrame({"f0": [1.0], "f1": [2.0], "f3": [3.0]}).write_parquet(tmp_path / "short.parquet")
    pl.DataFrame({"f0": [1.0], "f1": ["x"], "f2": [2.0], "f3": [3.0]}).write_parquet(
        tmp_path / "text.parquet"
    )
    out = tmp_path / "out.parquet"
    out.write_bytes(b"an earlier result")
    args = [a.format(tmp=tmp_path, **{"in": parquet_in}) for a in argv]
    code, stdout, err = run_main(capsys, "predict", *args, "-o", str(out))
    assert code == 2, (stdout, err)
    assert err.startswith("mlbox: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert out.read_bytes() == b"an earlier result"  # a failed run leaves the old output alone
    assert not list(tmp_path.glob(".out.parquet.*"))


def test_console_script_scores_a_file(
    tmp_path: Path,
    subprocess_env: dict[str, str],
    arrays_model: LogisticRegression,
    parquet_in: Path,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    out = tmp_path / "out.parquet"
    proc = subprocess.run(
        [str(MLBOX), "predict", "churn@champion", str(parquet_in), "-o", str(out), "--batch-size", "1024"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"scored {ROWS:,} rows" in proc.stdout
    x, _ = data
    assert np.array_equal(pq.read_table(out).column("prediction").to_numpy(), arrays_model.predict(x))


# -- models whose inputs are feature views ---------------------------------------------------------

DRIVER_FEATURES = ["driver_stats:rating", "driver_stats:trips"]  # the model's order, not the view's


@pytest.fixture
def stats(services: Services, tmp_path: Path) -> pl.DataFrame:
    return apply_driver_stats(services, tmp_path, drivers=6, seed=3)


@pytest.fixture
def eta(services: Services, stats: pl.DataFrame) -> LinearRegression:
    x = stats.select("rating", "trips").to_numpy()
    model = LinearRegression().fit(x, x @ np.array([2.0, 0.5]) + 1)
    services.registry.register("eta", model=model, example_input=x[:3], features=DRIVER_FEATURES)
    return model


def as_of(stats: pl.DataFrame, driver: int, at: dt.datetime | None) -> list[float]:
    """Brute force: the driver's newest row at or before ``at`` (the newest of all without it)."""
    rows = stats.filter(pl.col("driver_id") == driver)
    if at is not None:
        rows = rows.filter(pl.col("event_ts") <= at)
    newest = rows.sort("event_ts").tail(1)
    return [newest["rating"].item(), newest["trips"].item()]


def test_feature_model_scores_point_in_time_from_the_offline_store(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    services: Services,
    stats: pl.DataFrame,
    eta: LinearRegression,
) -> None:
    h = dt.timedelta(hours=1)
    entity = pl.DataFrame(
        {
            "driver_id": [3, 1, 3, 6, 2, 1],
            "event_timestamp": [T0 + 1.5 * h, T0 + 2 * h, T0, T0 + 9 * h, T0 + 0.5 * h, T0 + h],
            "label": ["a", "b", "c", "d", "e", "f"],
        }
    )
    path = tmp_path / "entities.parquet"
    entity.write_parquet(path)
    out = tmp_path / "out.parquet"
    code, stdout, err = run_main(capsys, "predict", "eta", str(path), "-o", str(out), "--batch-size", "4")
    assert (code, err) == (0, ""), err
    assert "scored 6 rows with eta version 1 -> " in stdout
    assert "features: point-in-time from the offline store at 'event_timestamp'" in stdout
    expected = eta.predict(
        np.array([as_of(stats, d, t) for d, t in entity.select("driver_id", "event_timestamp").rows()])
    )
    result = pl.read_parquet(out)
    assert result.columns == ["driver_id", "event_timestamp", "label", "prediction"]
    np.testing.assert_allclose(result["prediction"].to_numpy(), expected)
    # the latest values would differ for every row but the last-hour ones: the lookup was point-in-time
    latest = eta.predict(np.array([as_of(stats, d, None) for d in entity["driver_id"]]))
    assert not np.allclose(expected, latest)
    # scoring records no training set
    assert services.features.training_sets() == []
    # the same from CSV (ISO text times), with the time column named by --timestamp-column
    csv = tmp_path / "entities.csv"
    entity.rename({"event_timestamp": "at"}).write_csv(csv)
    code, stdout, err = run_main(
        capsys, "predict", "eta", str(csv), "-o", str(out), "--timestamp-column", "at", "--no-keep-inputs"
    )
    assert (code, err) == (0, ""), err
    assert "point-in-time from the offline store at 'at'" in stdout
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), expected)


def test_feature_model_without_a_time_column_scores_the_latest_online_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stats: pl.DataFrame, eta: LinearRegression
) -> None:
    path = tmp_path / "keys.csv"
    pl.DataFrame({"driver_id": [5, 2, 4]}).write_csv(path)
    out = tmp_path / "out.parquet"
    code, stdout, err = run_main(capsys, "predict", "eta", str(path), "-o", str(out))
    assert (code, err) == (0, ""), err
    assert "features: latest online values" in stdout
    expected = eta.predict(np.array([as_of(stats, d, None) for d in (5, 2, 4)]))
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), expected)
    # --online forces the online store even when the input has the time column
    timed = tmp_path / "timed.parquet"
    pl.DataFrame({"driver_id": [5], "event_timestamp": [T0]}).write_parquet(timed)
    code, stdout, err = run_main(capsys, "predict", "eta", str(timed), "-o", str(out), "--online")
    assert (code, err) == (0, ""), err
    assert "latest online values" in stdout
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), expected[:1])


def test_unknown_entities_are_refused_naming_them_unless_allowed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, services: Services, stats: pl.DataFrame
) -> None:
    x = stats.select("rating", "trips").to_numpy()
    model = HistGradientBoostingRegressor(max_iter=10, min_samples_leaf=2).fit(x, x @ np.array([2.0, 0.5]))
    services.registry.register("tolerant", model=model, example_input=x[:3], features=DRIVER_FEATURES)
    path = tmp_path / "keys.parquet"
    pl.DataFrame({"driver_id": [1, 99, 2, 98]}).write_parquet(path)
    out = tmp_path / "out.parquet"
    code, _, err = run_main(capsys, "predict", "tolerant", str(path), "-o", str(out))
    assert code == 2 and err.count("\n") == 1, err
    assert (
        "2 rows (the first is row 1) have no feature values for their entity: driver_id=99; driver_id=98"
        in err
    )
    assert "--allow-missing" in err and not out.exists()
    # before its first row, a driver has no value at that time either
    timed = tmp_path / "timed.parquet"
    pl.DataFrame({"driver_id": [4], "event_timestamp": [T0 - dt.timedelta(days=3)]}).write_parquet(timed)
    code, _, err = run_main(capsys, "predict", "tolerant", str(timed), "-o", str(out))
    assert code == 2 and "driver_id=4 at 2025-12-29" in err, err
    code, _, err = run_main(capsys, "predict", "tolerant", str(path), "-o", str(out), "--allow-missing")
    assert (code, err) == (0, ""), err
    expected = model.predict(
        np.array([as_of(stats, 1, None), [np.nan, np.nan], as_of(stats, 2, None), [np.nan] * 2])
    )
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), expected)


def test_feature_model_bad_inputs_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    services: Services,
    stats: pl.DataFrame,
    eta: LinearRegression,
) -> None:
    path = tmp_path / "rider.parquet"
    pl.DataFrame({"rider_id": [1], "event_timestamp": [T0]}).write_parquet(path)
    keys = tmp_path / "keys.parquet"
    pl.DataFrame({"driver_id": [1, None]}).write_parquet(keys)
    out = tmp_path / "out.parquet"
    cases = [
        ([str(path)], "driver_id: missing column"),
        ([str(keys)], "driver_id: 1 rows have no value"),
        ([str(keys), "--timestamp-column", "when"], "when: no such column (--timestamp-column)"),
        ([str(keys), "--columns", "driver_id"], "takes no columns"),
        ([str(keys), "--online", "--timestamp-column", "x"], "not both"),
    ]
    for argv, needle in cases:
        code, _, err = run_main(capsys, "predict", "eta", *argv, "-o", str(out))
        assert code == 2 and err.startswith("mlbox: error: ") and err.count("\n") == 1, (argv, err)
        assert needle in err, (argv, err)
    # the view of a registered model cannot be deleted; a model registered over a view deleted
    # before it cannot be scored, and says why
    assert "eta/1 takes its features" in run_main(capsys, "features", "delete", "driver_stats", "--yes")[2]
    old = FeatureView(
        "old_stats",
        entities=["driver"],
        source=ParquetSource(str(tmp_path / "stats.parquet")),
        timestamp_field="event_ts",
        features=[Field("trips", "float64")],
    )
    services.features.apply([old])
    services.features.delete_view("old_stats")
    services.registry.register(
        "orphan", model=LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0]), features=["old_stats:trips"]
    )
    code, _, err = run_main(capsys, "predict", "orphan", str(keys), "-o", str(out))
    assert code == 2 and "feature view 'old_stats' was deleted" in err, err


def test_feature_model_with_request_data_reads_it_from_the_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, services: Services, stats: pl.DataFrame
) -> None:
    """An on-demand feature over a request value (Feast's request data): the input carries it."""
    from mlbox.features import OnDemandFeatureView

    view = services.features.get_definition("driver_stats")
    per_trip = OnDemandFeatureView(
        "per_trip",
        [view],
        [Field("tip_share")],
        {"tip_share": "tip / trips"},
        request=[Field("tip", "float64")],
    )
    services.features.apply([per_trip])
    x = np.array([[0.1], [0.2], [0.4]])
    model = LinearRegression().fit(x, 3 * x[:, 0] + 1)
    services.registry.register("tips", model=model, example_input=x, features=["per_trip:tip_share"])
    h = dt.timedelta(hours=1)
    entity = pl.DataFrame(
        {"driver_id": [1, 2], "event_timestamp": [T0 + 2 * h, T0 + 0.5 * h], "tip": [5.0, 2.0]}
    )
    path = tmp_path / "tips.parquet"
    entity.write_parquet(path)
    out = tmp_path / "out.parquet"
    code, stdout, err = run_main(capsys, "predict", "tips", str(path), "-o", str(out))
    assert (code, err) == (0, ""), err
    assert "point-in-time from the offline store" in stdout
    trips = [as_of(stats, d, t)[1] for d, t in entity.select("driver_id", "event_timestamp").rows()]
    expected = model.predict(np.array([[tip / n] for tip, n in zip(entity["tip"], trips, strict=True)]))
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), expected)
    entity.drop("tip").write_parquet(path)
    code, _, err = run_main(capsys, "predict", "tips", str(path), "-o", str(out))
    assert code == 2 and err.startswith("mlbox: error: tip: missing column") and err.count("\n") == 1, err


# -- careless input: text in a numeric column, missing values -------------------------------------


def test_a_text_value_in_a_numeric_column_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, services: Services
) -> None:
    """A wide model (64 pixels, as the digits tour) and a CSV with one word among the numbers: the
    error names the column that is not numeric and the value in it, not only the count."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 64))
    clf = LogisticRegression(max_iter=200).fit(x, (x[:, 0] > 0).astype(np.int64))
    services.registry.register("wide", model=clf, example_input=x[:3])
    columns = {f"p{i}": x[:, i].tolist() for i in range(64)}
    columns["p17"] = [str(v) for v in columns["p17"]]
    columns["p17"][5] = "seven"
    path = tmp_path / "wide.csv"
    pl.DataFrame(columns).write_csv(path)
    out = tmp_path / "out.parquet"
    code, _, err = run_main(capsys, "predict", "wide", str(path), "-o", str(out))
    assert code == 2 and err.startswith("mlbox: error: ") and err.count("\n") == 1, err
    assert "63 numeric columns" in err
    assert "not numeric: p17 ('seven' in row 5)" in err, err
    assert not out.exists()


def test_rows_with_missing_values_are_scored_as_nan_and_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, services: Services
) -> None:
    """The policy: a missing value (an empty CSV cell, a null, a NaN) reaches the model as NaN, as is;
    a model that takes NaN scores the row, one that refuses it fails naming the rows. Either way the
    summary line counts the rows that had one, so none is scored silently."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    model = HistGradientBoostingRegressor(max_iter=10).fit(x, x @ np.array([1.0, 2.0, 3.0]))
    services.registry.register("gbr", model=model, example_input=x[:3])
    path = tmp_path / "holes.csv"
    path.write_text("a,b,c\n1.0,2.0,3.0\n,2.0,3.0\n1.0,NaN,\n4.0,5.0,6.0\n")
    out = tmp_path / "out.parquet"
    code, stdout, err = run_main(capsys, "predict", "gbr", str(path), "-o", str(out), "--batch-size", "2")
    assert (code, err) == (0, ""), err
    assert "scored 4 rows with gbr version 1" in stdout
    assert "2 rows with missing values (passed to the model as NaN)" in stdout, stdout
    expected = model.predict(np.array([[1, 2, 3], [np.nan, 2, 3], [1, np.nan, np.nan], [4, 5, 6.0]]))
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), expected)
    # a complete file says so
    full = tmp_path / "full.csv"
    full.write_text("a,b,c\n1.0,2.0,3.0\n")
    code, stdout, err = run_main(capsys, "predict", "gbr", str(full), "-o", str(out))
    assert (code, err) == (0, ""), err
    assert "no missing values" in stdout, stdout
    # a model that refuses NaN fails naming the first row with a missing value, in one line
    services.registry.register("lin", model=LinearRegression().fit(x, x[:, 0]), example_input=x[:3])
    code, _, err = run_main(capsys, "predict", "lin", str(path), "-o", str(out), "--batch-size", "2")
    assert code == 2 and err.count("\n") == 1 and "failed on row 1 (a missing value, read as NaN)" in err, err
