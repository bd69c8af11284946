"""`mlbox.serving.batch.score_file`: the batch-scoring engine, called directly as the API,
pipelines and labeling's pre-labels call it (no CLI in between).

Models are registered in a real home under tmp_path and loaded through the
registry; inputs are real Parquet and CSV files. Outputs are compared with the
model's own ``predict``; the progress callback is checked for the counts it
reports; bad inputs must fail with an `InvalidInput` naming the field and leave
an earlier output untouched.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlbox.registry.loaded import LoadedModel
from mlbox.registry.signature import SchemaMismatch
from mlbox.services import Services
from mlbox.serving.batch import BatchOptions, prediction_columns, score_file
from mlbox.store.errors import InvalidInput, MlboxError
from tests.driver_stats import apply_driver_stats

ROWS = 1_000
FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(ROWS, len(FEATURES)))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(np.int64)
    return x, y


@pytest.fixture
def by_name(
    services: Services, data: tuple[np.ndarray, np.ndarray]
) -> tuple[LogisticRegression, LoadedModel]:
    """Fitted on a frame: a columns signature (f0..f3 by name), loaded as every caller loads it."""
    x, y = data
    clf = LogisticRegression().fit(pd.DataFrame(x, columns=FEATURES), y)
    services.registry.register("by-name", model=clf, example_input=pd.DataFrame(x[:3], columns=FEATURES))
    return clf, services.registry.load("by-name")


@pytest.fixture
def parquet_in(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> Path:
    x, _ = data
    frame = pl.DataFrame({"id": np.arange(ROWS), **{n: x[:, i] for i, n in enumerate(FEATURES)}})
    path = tmp_path / "in.parquet"
    frame.write_parquet(path, row_group_size=400)
    return path


def test_scores_a_parquet_file_reporting_progress_up_to_the_total(
    tmp_path: Path,
    by_name: tuple[LogisticRegression, LoadedModel],
    parquet_in: Path,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    clf, model = by_name
    calls: list[tuple[int, int | None]] = []
    out = tmp_path / "out.parquet"
    result = score_file(
        parquet_in,
        out,
        model,
        BatchOptions(batch_size=300),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert (result.rows, result.output, result.features) == (ROWS, out, None)
    table = pq.read_table(out)
    assert table.column_names == ["id", *FEATURES, "prediction"]
    assert table.column("id").to_pylist() == list(range(ROWS))
    x, _ = data
    expected = clf.predict(pd.DataFrame(x, columns=FEATURES))
    assert np.array_equal(table.column("prediction").to_numpy(), expected)
    assert len(set(expected)) == 2
    # told the total once the file is open, then after every chunk: strictly increasing, up to it
    assert calls[0] == (0, ROWS)
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[-1] == ROWS
    assert {t for _, t in calls} == {ROWS}
    assert len(calls) >= 1 + ROWS // 300  # chunks of at most 300 rows (row groups of 400 split)
    assert all(b - a <= 300 for a, b in pairwise(done))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in.parquet", "out.parquet"]


def test_scores_a_csv_without_the_inputs_total_unknown_up_front(
    tmp_path: Path, by_name: tuple[LogisticRegression, LoadedModel], data: tuple[np.ndarray, np.ndarray]
) -> None:
    clf, model = by_name
    x, _ = data
    # columns in another order, plus one the model does not take: selected by name
    csv = tmp_path / "in.csv"
    pl.DataFrame(
        {"f3": x[:, 3], "note": ["n"] * ROWS, "f1": x[:, 1], "f0": x[:, 0], "f2": x[:, 2]}
    ).write_csv(csv)
    calls: list[tuple[int, int | None]] = []
    out = tmp_path / "scored.parquet"
    result = score_file(
        csv,
        out,
        model,
        BatchOptions(batch_size=250, keep_inputs=False, prediction_column="p"),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert result.rows == ROWS
    table = pq.read_table(out)
    assert table.column_names == ["p"]
    assert np.array_equal(table.column("p").to_numpy(), clf.predict(pd.DataFrame(x, columns=FEATURES)))
    done = [d for d, _ in calls]
    assert done[0] == 0 and done == sorted(set(done)) and done[-1] == ROWS
    assert {t for _, t in calls} == {None}  # a CSV does not say its row count up front


def test_bad_inputs_name_the_field_and_leave_the_output_alone(
    tmp_path: Path, by_name: tuple[LogisticRegression, LoadedModel], parquet_in: Path
) -> None:
    _, model = by_name
    short = tmp_path / "short.parquet"
    pl.DataFrame({"f0": [1.0], "f1": [2.0], "f3": [3.0]}).write_parquet(short)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(FEATURES) + "\n")
    out = tmp_path / "out.parquet"
    out.write_bytes(b"an earlier result")
    cases: list[tuple[Path, BatchOptions, type[InvalidInput], str, str]] = [
        (short, BatchOptions(), SchemaMismatch, "f2", "f2: missing column"),
        (broken, BatchOptions(), InvalidInput, "input", f"cannot read {broken}"),
        (empty, BatchOptions(), InvalidInput, "input", "has no rows to score"),
        (tmp_path / "missing.csv", BatchOptions(), InvalidInput, "input", "no such file"),
        (parquet_in, BatchOptions(prediction_column="id"), InvalidInput, "id", "the input already has"),
        (parquet_in, BatchOptions(columns=("f0", "nope")), SchemaMismatch, "nope", "nope: no such column"),
    ]
    for path, options, kind, field, needle in cases:
        with pytest.raises(kind) as exc:
            score_file(path, out, model, options)
        assert exc.value.field == field and needle in exc.value.message, (path, exc.value.message)
        assert out.read_bytes() == b"an earlier result"
        assert not list(tmp_path.glob(".out.parquet.*"))
    with pytest.raises(InvalidInput) as exc:
        score_file(parquet_in, tmp_path / "out.csv", model)
    assert exc.value.field == "output"
    with pytest.raises(InvalidInput) as exc:
        BatchOptions(batch_size=0)
    assert exc.value.field == "batch_size"


def test_feature_view_model_looks_its_features_up(tmp_path: Path, services: Services) -> None:
    stats = apply_driver_stats(services, tmp_path, drivers=4, seed=5)
    x = stats.select("rating", "trips").to_numpy()
    reg = LinearRegression().fit(x, x @ np.array([2.0, 0.5]) + 1)
    services.registry.register(
        "eta", model=reg, example_input=x[:3], features=["driver_stats:rating", "driver_stats:trips"]
    )
    model = services.registry.load("eta")
    keys = tmp_path / "keys.parquet"
    pl.DataFrame({"driver_id": [3, 1]}).write_parquet(keys)
    out = tmp_path / "out.parquet"
    result = score_file(keys, out, model, feature_store=services.features)
    assert (result.rows, result.features) == (2, "latest online values")
    newest = stats.sort("event_ts").group_by("driver_id").last()
    rows = [newest.filter(pl.col("driver_id") == d).select("rating", "trips").row(0) for d in (3, 1)]
    np.testing.assert_allclose(pl.read_parquet(out)["prediction"].to_numpy(), reg.predict(np.array(rows)))
    # without a feature store, or with columns, it says why instead of scoring keys as features
    for options, store, field in [
        (BatchOptions(), None, "feature_store"),
        (BatchOptions(columns=("x",)), services.features, "columns"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            score_file(keys, out, model, options, feature_store=store)
        assert exc.value.field == field and "looks its features up by entity" in exc.value.message


def test_several_outputs_become_one_column_each() -> None:
    columns = prediction_columns(
        {"label": np.array([1, 0]), "proba": np.array([[0.2, 0.8], [0.9, 0.1]])}, "p", 2
    )
    assert list(columns) == ["p_label", "p_proba"]
    assert columns["p_proba"].to_pylist() == [[0.2, 0.8], [0.9, 0.1]]


def test_rows_with_missing_values_are_counted_in_the_result(
    tmp_path: Path, by_name: tuple[LogisticRegression, LoadedModel], services: Services
) -> None:
    """Null and NaN both count, in a columns signature's frame and in a one-tensor matrix; a feature-view
    model's entity without values (allowed with allow_missing) counts too."""
    _, model = by_name
    path = tmp_path / "in.parquet"
    pl.DataFrame(
        {"f0": [1.0, None, 3.0], "f1": [1.0, 2.0, float("nan")], "f2": [0.0] * 3, "f3": [0.0] * 3}
    ).write_parquet(path)
    x = np.random.default_rng(1).normal(size=(50, 4))
    tolerant = HistGradientBoostingClassifier(max_iter=5).fit(x, (x[:, 0] > 0).astype(int))
    services.registry.register("tolerant", model=tolerant, example_input=x[:3])
    result = score_file(path, tmp_path / "out.parquet", services.registry.load("tolerant"))
    assert (result.rows, result.rows_with_missing) == (3, 2)
    # a model that refuses NaN fails naming the rows, as an MlboxError
    with pytest.raises(MlboxError) as failed:
        score_file(path, tmp_path / "out.parquet", model)
    assert "failed on row 1 (a missing value" in failed.value.message
    stats = apply_driver_stats(services, tmp_path, drivers=4, seed=5)
    xs = stats.select("rating", "trips").to_numpy()
    reg = HistGradientBoostingRegressor(max_iter=5, min_samples_leaf=2).fit(xs, xs[:, 0])
    services.registry.register(
        "eta", model=reg, example_input=xs[:3], features=["driver_stats:rating", "driver_stats:trips"]
    )
    keys = tmp_path / "keys.parquet"
    pl.DataFrame({"driver_id": [3, 99, 1]}).write_parquet(keys)
    result = score_file(
        keys,
        tmp_path / "out.parquet",
        services.registry.load("eta"),
        BatchOptions(allow_missing=True),
        feature_store=services.features,
    )
    assert (result.rows, result.rows_with_missing) == (3, 1)


def test_text_in_a_numeric_column_is_named_with_its_value() -> None:
    """Columns that are mostly numbers come first, with the first value that is not one (its row in the
    file); columns of text only (ids riding along) are named after them."""
    from mlbox.registry.signature import infer_schema
    from mlbox.serving.batch_inputs import model_inputs

    frame = pl.DataFrame({"id": ["r1", "r2"], "a": [1.0, 2.0], "b": ["3.5", "x"], "c": [1.0, 2.0]})
    with pytest.raises(SchemaMismatch) as exc:
        model_inputs(frame, infer_schema(np.zeros((2, 3))), first_row=10)
    assert exc.value.field == "b"
    assert "not numeric: b ('x' in row 11), id" in exc.value.message, exc.value.message


def test_a_tree_model_scores_a_file_on_the_compiled_walk_and_floats_are_written_plain(
    tmp_path: Path, services: Services, parquet_in: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    """The same answers as the estimator through `mlbox predict`'s engine, and the output's
    float columns without Parquet dictionary
    pages (pyarrow's dictionary attempt on floats cost 12x the rest of the write), the id and
    the predictions with them."""
    from sklearn.ensemble import GradientBoostingClassifier

    from mlbox.registry.flavors.sklearn import CompiledTreesPredictor

    x, y = data
    gbc = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y)
    services.registry.register("trees", model=gbc, example_input=x[:5])
    model = services.registry.load("trees")
    assert isinstance(model.predictor, CompiledTreesPredictor)
    out = tmp_path / "out.parquet"
    result = score_file(parquet_in, out, model, BatchOptions(batch_size=ROWS, columns=tuple(FEATURES)))
    assert result.rows == ROWS
    table = pq.read_table(out)
    assert np.array_equal(table.column("prediction").to_numpy(), gbc.predict(x))
    meta = pq.ParquetFile(out).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    for name in FEATURES:
        assert not any("DICTIONARY" in e for e in encodings[name]), encodings[name]
    assert any("DICTIONARY" in e for e in encodings["prediction"]), encodings["prediction"]


def test_plain_float_columns_are_shaped_from_arrow_as_polars_shapes_them() -> None:
    """`float_matrix` (Arrow straight into a column-major matrix) gives `model_inputs`' matrix for
    float64 columns without nulls, text riding along, with or without ``--columns``; anything
    else it leaves to `model_inputs` (None)."""
    from mlbox.registry.signature import Schema, TensorSpec
    from mlbox.serving.batch_inputs import float_matrix, model_inputs

    rng = np.random.default_rng(4)
    frame = pl.DataFrame({"id": ["a", "b", "c"], **{f"f{i}": rng.normal(size=3) for i in range(4)}})
    rows = Schema("tensor", [TensorSpec("float64", [-1, 4])])
    for schema, columns in (
        (rows, None),
        (None, None),
        (Schema("tensor", [TensorSpec("float64", [-1, 2])]), ("f3", "f1")),
    ):
        chosen = frame if columns is None else frame.select(columns)
        got = float_matrix(frame.to_arrow().to_batches()[0], schema, columns)
        assert got is not None and got.flags.f_contiguous
        assert np.array_equal(got, model_inputs(chosen, schema))
    batch = frame.to_arrow().to_batches()[0]
    assert float_matrix(batch, Schema("tensor", [TensorSpec("float64", [-1, 3])]), None) is None  # count
    assert float_matrix(batch, Schema("tensor", [TensorSpec("float64", [-1])]), None) is None  # one value
    assert float_matrix(batch, rows, ("f0", "nope", "f1", "f2")) is None  # missing: model_inputs words it
    for other in (
        frame.with_columns(pl.col("f2").cast(pl.Int64)),
        frame.with_columns(pl.when(pl.col("f1") > 0).then(pl.col("f1")).otherwise(None).alias("f1")),
    ):
        assert float_matrix(other.to_arrow().to_batches()[0], rows, None) is None
