"""A large window of the typed prediction log evaluated from one pass over Arrow batches
(`mlbox.monitoring.windowscan`) equals the evaluation of the same window read as a pandas frame:
drift verdicts, prediction drift, data quality, outlier rate, rows, performance (late labels,
over time) and the challenger comparison.

300,000 logged rows (past `binned.LARGE_WINDOW`, so both paths compute drift from histograms)
of 6 numeric and 2 text columns, written by the real prediction log as the server appends them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlbox.monitoring import binned
from mlbox.monitoring import service as service_mod
from mlbox.monitoring.schemas import Evaluation, FeedbackItem
from mlbox.services import Services

NUMERIC = [f"x{j}" for j in range(6)]
TEXT = ["c0", "c1"]
CATS = np.array(["a", "b", "c", "d"])
T0 = 1_780_000_000.0
REQUESTS = 60
ROWS_PER_REQUEST = 5_000  # 300,000 rows


def _frame(rng: np.random.Generator, n: int, shifted: bool) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(NUMERIC):
        shift = 0.5 if shifted and j < 2 else 0.0
        cols[name] = rng.normal(shift, 1.0 + j % 3, n)
    p = [0.4, 0.3, 0.2, 0.1]
    cols["c0"] = rng.choice(CATS, n, p=p[::-1] if shifted else p)
    cols["c1"] = rng.choice(CATS, n, p=p)
    if shifted:
        cols["x5"][rng.random(n) < 0.02] = np.nan  # missing values
        cols["x4"][:3] = [np.inf, -np.inf, 1e6]  # infinite values, one far out of range
        cols["c1"][:50] = "z"  # a new category
    return cols


def _proba(cols: dict[str, np.ndarray]) -> np.ndarray:
    p1 = 1 / (1 + np.exp(-(cols["x0"] - cols["x1"] + (cols["c0"] == "a"))))
    return np.column_stack([1 - p1, p1])


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same window evaluated both ways (a module fixture: writing and reading 300,000 rows
    is the expensive part)."""
    from mlbox.settings import Settings

    home = tmp_path_factory.mktemp("stream-home")
    services = Services.open(Settings.from_env({"MLBOX_HOME": str(home)}))
    rng = np.random.default_rng(7)
    train = pd.DataFrame(_frame(rng, 20_000, shifted=False))
    y = (train["x0"] - train["x1"] > 0).astype(int)
    model = make_pipeline(
        ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), TEXT)], remainder="passthrough"),
        LogisticRegression(max_iter=200),
    ).fit(train, y)
    reg = services.registry
    reg.register("m", model=model, example_input=train.head(5), options={"method": "predict_proba"})
    reg.register("m", model=model, example_input=train.head(5), options={"method": "predict_proba"})
    reg.set_alias("m", "champion", 1)
    reg.set_alias("m", "challenger", 2)
    log = services.serving.predlog
    assert log is not None
    truth: dict[tuple[str, int], int] = {}
    for i in range(REQUESTS):
        cols = _frame(rng, ROWS_PER_REQUEST, shifted=i >= REQUESTS // 2)
        proba = _proba(cols)
        ts = T0 + i // 2  # two requests a second: ties in time
        log.append((f"r{i}", "m", 1, ts, 1.0, False, cols, {"output": proba}))
        if i % 7 == 0:  # the challenger answered some requests (in shadow), disagreeing a little
            other = proba.copy()
            other[:100] = other[:100, ::-1]
            log.append((f"r{i}", "m", 2, ts, 1.0, True, cols, {"output": other}))
        for row in rng.choice(ROWS_PER_REQUEST, 40, replace=False).tolist():
            truth[(f"r{i}", row)] = int(cols["x0"][row] - cols["x1"][row] > 0)
        if i % 20 == 19:
            log.flush()  # three typed segments at least (the writer also flushes every second)
    log.flush()
    mon = services.monitoring
    ref_file = home / "train.parquet"
    train.to_parquet(ref_file)
    mon.set_reference("m@champion", path=ref_file)
    items = [FeedbackItem(rid, label, row) for (rid, row), label in truth.items()]
    assert mon.add_feedback(items).stored == len(items)
    rows_files = sorted((home / "tables" / "predictions" / "m").glob("*/rows-*.parquet"))
    assert len(rows_files) >= 3 and not list((home / "tables" / "predictions" / "m").glob("*/json-*"))

    out: dict[str, Any] = {"labels": len(items)}
    kwargs: dict[str, Any] = {"since": T0, "until": T0 + 3600}
    out["streamed"] = mon.evaluate("m@champion", **kwargs)
    out["streamed_last"] = mon.evaluate("m@champion", last=250_000, segment="c0")
    out["html"] = mon.report("m@champion", **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(service_mod, "STREAM_PAST", 10**12)  # the same windows read as frames
        out["framed"] = mon.evaluate("m@champion", **kwargs)
        out["framed_last"] = mon.evaluate("m@champion", last=250_000, segment="c0")
    return out


def _same_verdicts(a: Any, b: Any) -> None:
    assert (a.column, a.test, a.drifted, a.kind, a.n_reference, a.n_current, a.threshold) == (
        b.column, b.test, b.drifted, b.kind, b.n_reference, b.n_current, b.threshold,
    )  # fmt: skip
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9, abs=1e-12)
    assert (a.p_value is None) == (b.p_value is None)
    if a.p_value is not None:
        assert a.p_value == pytest.approx(b.p_value, rel=1e-9, abs=1e-300)


def _same(streamed: Evaluation, framed: Evaluation) -> None:
    assert streamed.rows == framed.rows
    assert len(streamed.drift) == len(framed.drift) == len(NUMERIC) + len(TEXT)
    for a, b in zip(streamed.drift, framed.drift, strict=True):
        _same_verdicts(a, b)
    assert streamed.drift_share == framed.drift_share
    assert streamed.prediction_drift is not None and framed.prediction_drift is not None
    _same_verdicts(streamed.prediction_drift, framed.prediction_drift)
    assert streamed.quality == framed.quality
    assert streamed.outlier_rate == framed.outlier_rate
    assert streamed.performance == framed.performance
    assert streamed.over_time == framed.over_time
    assert streamed.challenger == framed.challenger
    assert streamed.bias == framed.bias


def test_a_streamed_window_equals_the_materialised_one(evaluations: dict[str, Any]) -> None:
    streamed, framed = evaluations["streamed"], evaluations["framed"]
    assert streamed.rows == REQUESTS * ROWS_PER_REQUEST > binned.LARGE_WINDOW
    _same(streamed, framed)
    # and the checks found what the data holds
    assert {v.column for v in streamed.drift if v.drifted} >= {"x0", "x1", "c0"}
    assert "x2" not in {v.column for v in streamed.drift if v.drifted}
    problems = " ".join(streamed.quality.problems)
    assert (
        f"x4: {REQUESTS} infinite values" in problems
    )  # two in each shifted request and "new categories 'z'" in problems
    by_column = {c.column: c for c in streamed.quality.columns}
    assert by_column["x5"].missing_rate == pytest.approx(0.01, abs=0.002)
    assert 0 < streamed.outlier_rate < 0.05
    perf = streamed.performance
    assert perf.labelled == evaluations["labels"] and perf.accuracy is not None and perf.accuracy > 0.8
    assert perf.estimated_accuracy is not None and not math.isnan(perf.estimated_accuracy)
    assert len(streamed.over_time) == service_mod.BUCKETS
    assert sum(b.performance.rows for b in streamed.over_time) == streamed.rows
    assert sum(b.performance.labelled for b in streamed.over_time) == perf.labelled
    ch = streamed.challenger
    assert ch is not None and ch.paired_rows == 9 * ROWS_PER_REQUEST and 0.95 < ch.agreement < 1


def test_the_last_rows_of_a_large_window_its_bias_and_its_report(evaluations: dict[str, Any]) -> None:
    _same(evaluations["streamed_last"], evaluations["framed_last"])
    assert evaluations["streamed_last"].rows == 250_000
    bias = evaluations["streamed_last"].bias
    assert bias is not None and [g.segment for g in bias.segments] == ["a", "b", "c", "d"]
    assert sum(g.rows for g in bias.segments) == 250_000 and bias.demographic_parity_difference > 0.1
    html = evaluations["html"]
    assert "<svg" in html and "x0" in html and "https://" not in html


def test_the_stream_reads_the_log_files_of_a_window(tmp_path: Path) -> None:
    """`windowscan.count_rows` and the window filter: time bounds, champion rows only."""
    import pyarrow as pa

    from mlbox.monitoring import windowscan
    from mlbox.serving.predlog import write_rows

    ts = pa.array([int((T0 + s) * 1e6) for s in (0, 1, 2, 3)], pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "request_id": ["a", "b", "c", "d"],
            "row": [0, 0, 0, 0],
            "version": [1, 1, 2, 1],
            "ts": ts,
            "latency_ms": [1.0] * 4,
            "shadow": [False, True, False, False],
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    write_rows(table, tmp_path / "rows-000001.parquet")
    write_rows(table.drop_columns(["x"]), tmp_path / "rows-000002.parquet")  # a column one file lacks
    files = sorted(tmp_path.glob("rows-*.parquet"))
    assert windowscan.count_rows(files, None) == 8
    assert windowscan.count_rows(files, windowscan.Bounds(T0 + 1, T0 + 3, False, 1)) == 0
    assert windowscan.count_rows(files, windowscan.Bounds(T0, T0 + 4, False, 1)) == 4
    assert windowscan.count_rows(files, windowscan.Bounds(T0 + 3, None, None, None)) == 2
    assert windowscan.window_columns(files, "input", ["x", "y"]) == ["x", "y"]
    bounds = windowscan.Bounds(T0, T0 + 4, False, 1)
    inside = bounds.inside(pa.RecordBatch.from_pandas(table.to_pandas()))
    assert inside is not None and inside.tolist() == [True, False, False, True]
    assert windowscan.Bounds(None, None, None, None).inside(table.to_batches()[0]) is None
    grid = binned.grid([0.0, 5.0])
    plan = windowscan.Plan(
        numeric={
            "x": windowscan.NumericColumn(
                binned.Histogram.empty(grid), np.array([2.5]), np.zeros(2, np.int64), 0.0, 5.0, 2.0, 1.0
            )
        },
        categorical=[],
    )
    found = windowscan.scan(files, plan, input_name="input", features=["x"], bounds=bounds)
    x = found.numeric["x"]
    assert found.rows == 4 and (x.count, x.missing) == (2, 2)  # rows a and d of each file; x absent in one
    assert x.counts.tolist() == [1, 1] and found.ts_us.tolist() == [int(T0 * 1e6), int((T0 + 3) * 1e6)] * 2
    later = windowscan.scan(files, plan, input_name="input", features=["x"], bounds=bounds, skip=3)
    assert later.rows == 1


def test_one_pass_over_a_column_counts_what_the_profile_and_outlier_scores_count() -> None:
    """Profile bins from the fine-bin lookup equal numpy's searchsorted, also for values on and
    one float step either side of the edges and of the reference's range; outliers are the rows
    `profile.outlier_scores` scores past `profile.OUTLIER_Z`."""
    from mlbox.monitoring import stats, windowscan
    from mlbox.monitoring.profile import OUTLIER_Z, outlier_scores, profile

    rng = np.random.default_rng(11)
    ref = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 5000)})
    prof = profile(ref)
    col = prof.columns["x"]
    edges = np.asarray(col.edges)
    assert col.minimum is not None and col.maximum is not None
    special = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    bounds = np.array([col.minimum, col.maximum])
    values = np.concatenate(
        [
            rng.gamma(2.0, 3.5, 200_000),
            special,
            bounds,
            np.nextafter(bounds, np.inf),
            np.nextafter(bounds, -np.inf),
            [np.nan, np.inf, -np.inf, -5.0, 1e9],
        ]
    )
    rng.shuffle(values)
    g = binned.grid(ref["x"])
    numeric = windowscan.NumericColumn(
        binned.Histogram.empty(g), edges, np.zeros(edges.size + 1, np.int64),
        col.minimum, col.maximum, col.median, col.mad,
    )  # fmt: skip
    flags = np.zeros(values.size, bool)
    for part in np.array_split(np.arange(values.size), 3):
        part_flags = np.zeros(part.size, bool)
        numeric.add(values[part], part_flags)
        flags[part] = part_flags
    want = profile(pd.DataFrame({"x": values}), like=prof).columns["x"]
    assert numeric.counts.tolist() == want.counts == stats.binned(values, edges).tolist()
    assert (numeric.count, numeric.missing, numeric.infinite) == (want.count, want.missing, want.infinite)
    assert (numeric.below, numeric.above, numeric.minimum, numeric.maximum) == (
        want.below, want.above, want.minimum, want.maximum,
    )  # fmt: skip
    assert numeric.total == pytest.approx(want.total) and numeric.total_sq == pytest.approx(want.total_sq)
    scores = outlier_scores(pd.DataFrame({"x": values}), prof)
    assert flags.tolist() == (scores > OUTLIER_Z).tolist() and flags.any()
    assert numeric.histogram is not None and numeric.histogram.count == want.count


def test_a_binary_classifiers_answers_read_as_read_outputs_reads_them() -> None:
    """The two-column fast path gives `read_outputs`' classes and probabilities: probabilities,
    ties, logits (softmaxed) and NaN alike."""
    from mlbox.monitoring import windowscan
    from mlbox.monitoring.logframe import read_outputs

    rng = np.random.default_rng(5)
    p1 = rng.random(1000)
    p1[:10] = 0.5  # ties: the first class, as argmax takes it
    cases = [
        {"output_0": 1 - p1, "output_1": p1},
        {"output_0": rng.normal(size=1000), "output_1": rng.normal(size=1000)},  # logits
        {"output_0": np.r_[np.nan, 1 - p1[1:]], "output_1": p1},
        {"output_0": 1 - p1, "output_1": p1 / 2, "output_2": p1 / 2},
    ]
    for outputs in cases:
        pred, top, columns = windowscan._classes(outputs)
        want_pred, want_proba = read_outputs(outputs)
        assert want_pred is not None and want_proba is not None
        assert pred.tolist() == want_pred.tolist()
        np.testing.assert_array_equal(top, want_proba.max(axis=1))
        np.testing.assert_array_equal(np.column_stack(columns), want_proba)
