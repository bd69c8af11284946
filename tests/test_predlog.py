"""The prediction log: what is appended is what is read back, in per-model, per-day segments;
appending never waits on the disk; close writes everything."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from mlbox.serving.predlog import PredictionLog, prepare, read_predictions, rows_table, schema
from mlbox.store.tables import write_parquet

DAY1 = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC).timestamp()


def test_entries_round_trip_through_typed_segments(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    log = PredictionLog(root, flush_s=60)  # only close writes
    x = np.array([[1.5, 2.0], [3.0, -4.25]])
    log.append(("r1", "iris", 3, DAY1, 1.25, False, x, {"predict": np.array([0, 1])}))
    log.append(("r2", "iris", 3, DAY2, 2.5, True, {"a": np.array(["x", "y"])}, {"p": np.array([0.5, 0.25])}))
    log.append(("r3", "other", 1, DAY2, 0.5, False, x[:1], {"predict": np.array([7])}))
    log.close()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet")) == [
        "iris/2026-03-01/rows-000001.parquet",
        "iris/2026-03-02/rows-000001.parquet",
        "other/2026-03-02/rows-000001.parquet",
    ]  # typed only: no JSON segment beside them
    frame = read_predictions(root)  # one row per request
    assert frame["request_id"].to_list() == ["r1", "r2", "r3"]
    assert frame["model"].to_list() == ["iris", "iris", "other"]
    assert frame["version"].to_list() == [3, 3, 1]
    assert frame["shadow"].to_list() == [False, True, False]
    assert frame["latency_ms"].to_list() == [1.25, 2.5, 0.5]
    assert frame["ts"][0].timestamp() == DAY1
    assert frame.columns == schema().names
    # the values come back as the JSON older segments held
    assert json.loads(frame["inputs"][0]) == x.tolist()
    assert json.loads(frame["outputs"][0]) == {"predict": [0, 1]}
    assert json.loads(frame["inputs"][1]) == {"a": ["x", "y"]}
    assert json.loads(frame["outputs"][1]) == {"p": [0.5, 0.25]}
    assert read_predictions(root, values=False)["inputs"].to_list() == [None] * 3
    day2 = pl.read_parquet(root / "iris" / "2026-03-02" / "rows-000001.parquet")
    assert day2["a"].to_list() == ["x", "y"] and day2["out:p"].to_list() == [0.5, 0.25]
    assert day2["row"].to_list() == [0, 1] and day2["request_id"].to_list() == ["r2", "r2"]

    only = read_predictions(root, "iris", since=DAY2 - 1)
    assert only["request_id"].to_list() == ["r2"]
    assert read_predictions(root, until=DAY2)["request_id"].to_list() == ["r1"]


def test_segments_keep_numbering_across_flushes_and_processes(tmp_path: Path) -> None:
    root = tmp_path / "p"
    log = PredictionLog(root, flush_s=60)
    log.append(("a", "m", 1, DAY1, 1.0, False, [1], [1]))
    assert log.flush() == 1
    log.append(("b", "m", 1, DAY1, 1.0, False, np.zeros((1, 2, 2)), [1]))  # JSON only
    log.close()
    again = PredictionLog(root, flush_s=60)  # a restarted appliance continues the numbering
    again.append(("c", "m", 1, DAY1, 1.0, False, [1], [1]))
    again.close()
    names = sorted(p.name for p in (root / "m" / "2026-03-01").iterdir())
    assert names == ["json-000002.parquet", "rows-000001.parquet", "rows-000003.parquet"]
    assert read_predictions(root)["request_id"].to_list() == ["a", "b", "c"]


def test_background_flush_and_many_writers_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "p"
    log = PredictionLog(root, flush_s=0.02)

    def writer(k: int) -> None:
        for i in range(500):
            log.append((f"{k}-{i}", "m", 1, time.time(), 0.1, False, [[i]], [i]))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 5
    while log.written < 2000 and time.monotonic() < deadline:  # the writer thread gets there alone
        time.sleep(0.01)
    assert log.written == 2000
    log.close()
    frame = read_predictions(root)
    assert frame.height == 2000 and frame["request_id"].n_unique() == 2000


def test_a_full_buffer_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "p", flush_s=60, max_buffer=10)
    t0 = time.perf_counter()
    for i in range(1000):
        log.append((str(i), "m", 1, DAY1, 0.1, False, [i], [i]))
    assert time.perf_counter() - t0 < 0.5
    assert log.pending == 10 and log.dropped == 990
    log.close()
    assert read_predictions(tmp_path / "p").height == 10


def test_reading_an_empty_log_gives_an_empty_frame_with_the_schema(tmp_path: Path) -> None:
    frame = read_predictions(tmp_path / "nothing")
    assert isinstance(frame, pl.DataFrame) and frame.height == 0
    assert frame.columns == schema().names


def test_typed_rows_with_json_only_for_what_has_no_columns(tmp_path: Path) -> None:
    """One row per scored row, a column per feature and per output, typed; a request whose
    values have no columns (an image tensor) is kept in a JSON remainder beside it."""
    root = tmp_path / "p"
    log = PredictionLog(root, flush_s=60)
    x = np.array([[1.5, 2.0], [3.0, -4.25]])
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    image = np.zeros((1, 2, 2))
    log.append(("r1", "iris", 3, DAY1, 1.25, False, x, {"label": np.array([1, 0]), "proba": proba}))
    log.append(("r2", "iris", 3, DAY1 + 0.5, 2.5, True, {"a": np.array(["x"])}, {"label": np.array([7])}))
    log.append(("r3", "iris", 3, DAY1 + 0.6, 2.5, False, image, {"label": np.array([1])}))
    log.close()
    folder = root / "iris" / "2026-03-01"
    assert sorted(p.name for p in folder.iterdir()) == ["json-000001.parquet", "rows-000001.parquet"]
    rows = pl.read_parquet(folder / "rows-000001.parquet")
    assert rows.columns == [
        "request_id", "row", "version", "ts", "latency_ms", "shadow",
        "input_0", "input_1", "out:label", "out:proba_0", "out:proba_1", "a",
    ]  # fmt: skip
    assert rows["request_id"].to_list() == ["r1", "r1", "r2"] and rows["row"].to_list() == [0, 1, 0]
    assert rows.schema["input_0"] == pl.Float64 and rows.schema["out:label"] == pl.Int64
    assert rows["input_1"].to_list()[:2] == [2.0, -4.25] and rows["out:proba_1"].to_list()[:2] == [0.8, 0.4]
    assert rows["a"].to_list() == [None, None, "x"] and rows["shadow"].to_list() == [False, False, True]
    rest = pl.read_parquet(folder / "json-000001.parquet")
    assert rest["request_id"].to_list() == ["r3"]
    assert json.loads(rest["inputs"][0]) == image.tolist()
    assert json.loads(rest["outputs"][0]) == {"label": [1]}
    frame = read_predictions(root)
    assert frame["request_id"].to_list() == ["r1", "r2", "r3"]
    assert json.loads(frame["inputs"][2]) == image.tolist()


def test_a_batched_request_is_kept_as_its_arrays(tmp_path: Path) -> None:
    """What the writer keeps of a request is the served arrays themselves (no copy, no object per
    row); its rows become columns once per segment, in request order, row numbers per request."""
    x = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    label = np.arange(1000) % 2
    prepared = prepare(("big", "m", 1, DAY1, 1.0, False, x, {"label": label}))
    assert prepared[6] is not None and prepared[7] is None and prepared[8] is None
    count, columns = prepared[6]
    assert count == 1000 and columns["input"] is x and columns["out:label"] is label
    small = prepare(("small", "m", 1, DAY1 + 1, 1.0, False, x[:2], {"label": label[:2]}))
    table = rows_table([prepared, small])
    assert table is not None and table.num_rows == 1002
    assert table.column("request_id").to_pylist() == ["big"] * 1000 + ["small"] * 2
    assert table.column("row").to_pylist() == [*range(1000), 0, 1]
    assert table.column("input_2").to_pylist() == x[:, 2].tolist() + x[:2, 2].tolist()
    assert table.schema.field("input_0").type == pa.float32()


def _old_segment(path: Path, rows: list[tuple[str, float, bool, object, object]]) -> None:
    """A JSON segment as logs before the typed layout wrote it."""
    table = pa.Table.from_pydict(
        {
            "request_id": [r[0] for r in rows],
            "model": ["m"] * len(rows),
            "version": [1] * len(rows),
            "ts": [int(r[1] * 1_000_000) for r in rows],
            "latency_ms": [1.0] * len(rows),
            "shadow": [r[2] for r in rows],
            "inputs": [json.dumps(r[3]) for r in rows],
            "outputs": [json.dumps(r[4]) for r in rows],
        },
        schema=schema(),
    )
    write_parquet(table, path)


def test_older_json_segments_are_read_beside_typed_ones(tmp_path: Path) -> None:
    """A log that began JSON-only (``seg-1``), then wrote both (``seg-2`` with ``rows-2``), then
    typed only (``rows-3``): every request read once, by requests and by rows, new numbers
    continuing after the old."""
    from mlbox.monitoring.logframe import read_window

    root = tmp_path / "p"
    folder = root / "m" / "2026-03-01"
    _old_segment(folder / "seg-000001.parquet", [("old", DAY1 - 10, False, [[1.0, 2.0]], {"p": [5]})])
    both = PredictionLog(root, flush_s=60)
    both.append(("mid", "m", 1, DAY1 - 5, 1.0, False, np.array([[3.0, 4.0]]), {"p": np.array([6])}))
    both.close()
    (folder / "rows-000002.parquet").rename(folder / "keep.tmp")
    _old_segment(folder / "seg-000002.parquet", [("mid", DAY1 - 5, False, [[3.0, 4.0]], {"p": [6]})])
    (folder / "keep.tmp").rename(folder / "rows-000002.parquet")
    log = PredictionLog(root, flush_s=60)
    log.append(("new", "m", 1, DAY1, 1.0, False, np.array([[5.0, 6.0], [7.0, 8.0]]), {"p": np.array([7, 8])}))
    log.close()
    assert (folder / "rows-000003.parquet").is_file()
    assert read_predictions(root)["request_id"].to_list() == ["old", "mid", "new"]
    window = read_window(root, "m", None)
    assert window["request_id"].tolist() == ["old", "mid", "new", "new"]
    assert window["input_0"].tolist() == [1.0, 3.0, 5.0, 7.0]
    assert window["prediction"].astype(int).tolist() == [5, 6, 7, 8]


def test_a_named_output_ending_in_a_digit_is_not_read_as_a_column_of_a_2d_one(tmp_path: Path) -> None:
    """OIP names a model's output ``output_0``; its typed column must come back as that 1-D output
    (as served), not as column 0 of a 2-D ``output``; a 2-D output (``_0`` to ``_k``) stays 2-D."""
    log = PredictionLog(tmp_path, flush_s=0.05)
    now = time.time()
    log.append(("named", "m", 1, now, 1.0, False, np.zeros((2, 3)), {"output_0": np.array([1, 0])}))
    log.append(("wide", "w", 1, now, 1.0, False, np.zeros((1, 3)), np.array([[0.25, 0.75]])))
    log.close()
    for model, rid, outputs in (("m", "named", {"output_0": [1, 0]}), ("w", "wide", [[0.25, 0.75]])):
        (row,) = read_predictions(tmp_path, model).iter_rows(named=True)
        assert (row["request_id"], json.loads(row["outputs"])) == (rid, outputs)


def test_batched_requests_logged_by_the_writer_thread_equal_what_was_served(tmp_path: Path) -> None:
    """Many batched requests (more than one copying step of the writer, row counts from 0 to 130,
    float32 beside float64 inputs) appended while the writer thread runs: the segment its own
    flush wrote (no close: what a crash after that flush keeps) holds each request's inputs and
    outputs column by column, in request order, with its id and row numbers, and no temporary
    file is left beside it."""
    root = tmp_path / "predictions"
    log = PredictionLog(root, flush_s=0.2)
    rng = np.random.default_rng(7)
    served: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for i in range(300):
        n = int(rng.integers(0, 131))
        x = rng.normal(size=(n, 4)).astype(np.float32 if i % 7 == 0 else np.float64)
        label, proba = rng.integers(0, 2, n), rng.random((n, 2))
        served.append((f"r{i:03d}", x, label, proba))
    for i, (rid, x, label, proba) in enumerate(served):  # in one go: one segment
        log.append((rid, "m", 2, DAY1 + i * 1e-3, 1.0, False, x, {"label": label, "proba": proba}))
    deadline = time.monotonic() + 30
    while (log.pending or log.written < len(served)) and time.monotonic() < deadline:
        time.sleep(0.02)
    files = sorted((root / "m").rglob("*"))
    assert [p.name for p in files if p.is_file()] == ["rows-000001.parquet"]
    rows = pl.read_parquet(files[-1])
    assert rows.height == sum(len(s[1]) for s in served)
    assert rows["request_id"].to_list() == [rid for rid, x, _, _ in served for _ in range(len(x))]
    assert rows["row"].to_list() == [j for _, x, _, _ in served for j in range(len(x))]
    every_x = np.concatenate([s[1].astype(np.float64) for s in served])
    for j in range(4):
        assert np.array_equal(rows[f"input_{j}"].to_numpy(), every_x[:, j])
    assert np.array_equal(rows["out:label"].to_numpy(), np.concatenate([s[2] for s in served]))
    every_p = np.concatenate([s[3] for s in served])
    assert np.array_equal(rows["out:proba_1"].to_numpy(), every_p[:, 1])
    log.close()
