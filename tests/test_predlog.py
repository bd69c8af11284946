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

from mlbox.serving.predlog import PredictionLog, read_predictions, schema

DAY1 = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC).timestamp()


def test_entries_round_trip_through_segments(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    log = PredictionLog(root, flush_s=60)  # only close writes
    x = np.array([[1.5, 2.0], [3.0, -4.25]])
    log.append(("r1", "iris", 3, DAY1, 1.25, False, x, {"predict": np.array([0, 1])}))
    log.append(("r2", "iris", 3, DAY2, 2.5, True, {"a": np.array(["x", "y"])}, {"p": np.array([0.5, 0.25])}))
    log.append(("r3", "other", 1, DAY2, 0.5, False, x[:1], {"predict": np.array([7])}))
    log.close()
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("seg-*.parquet")) == [
        "iris/2026-03-01/seg-000001.parquet",
        "iris/2026-03-02/seg-000001.parquet",
        "other/2026-03-02/seg-000001.parquet",
    ]
    frame = read_predictions(root)
    assert frame["request_id"].to_list() == ["r1", "r2", "r3"]
    assert frame["model"].to_list() == ["iris", "iris", "other"]
    assert frame["shadow"].to_list() == [False, True, False]
    assert json.loads(frame["inputs"][0]) == x.tolist()
    assert json.loads(frame["inputs"][1]) == {"a": ["x", "y"]}
    assert json.loads(frame["outputs"][1]) == {"p": [0.5, 0.25]}
    assert frame["latency_ms"].to_list() == [1.25, 2.5, 0.5]
    assert frame["ts"][0].timestamp() == DAY1

    only = read_predictions(root, "iris", since=DAY2 - 1)
    assert only["request_id"].to_list() == ["r2"]
    assert read_predictions(root, until=DAY2)["request_id"].to_list() == ["r1"]


def test_segments_keep_numbering_across_flushes_and_processes(tmp_path: Path) -> None:
    root = tmp_path / "p"
    log = PredictionLog(root, flush_s=60)
    log.append(("a", "m", 1, DAY1, 1.0, False, [1], [1]))
    assert log.flush() == 1
    log.append(("b", "m", 1, DAY1, 1.0, False, [1], [1]))
    log.close()
    again = PredictionLog(root, flush_s=60)  # a restarted appliance continues the numbering
    again.append(("c", "m", 1, DAY1, 1.0, False, [1], [1]))
    again.close()
    names = sorted(p.name for p in (root / "m" / "2026-03-01").iterdir())
    assert names == [f"{kind}-00000{n}.parquet" for kind in ("rows", "seg") for n in (1, 2, 3)]
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


def test_typed_rows_beside_each_segment(tmp_path: Path) -> None:
    """One row per scored row, a column per feature and per output, typed; a request whose
    values have no columns (an image tensor) is kept in JSON only."""
    root = tmp_path / "p"
    log = PredictionLog(root, flush_s=60)
    x = np.array([[1.5, 2.0], [3.0, -4.25]])
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    log.append(("r1", "iris", 3, DAY1, 1.25, False, x, {"label": np.array([1, 0]), "proba": proba}))
    log.append(("r2", "iris", 3, DAY1 + 0.5, 2.5, True, {"a": np.array(["x"])}, {"label": np.array([7])}))
    log.append(("r3", "iris", 3, DAY1 + 0.6, 2.5, False, np.zeros((1, 2, 2)), {"label": np.array([1])}))
    log.close()
    folder = root / "iris" / "2026-03-01"
    assert sorted(p.name for p in folder.iterdir()) == ["rows-000001.parquet", "seg-000001.parquet"]
    rows = pl.read_parquet(folder / "rows-000001.parquet")
    assert rows.columns == [
        "request_id", "row", "version", "ts", "latency_ms", "shadow",
        "input_0", "input_1", "out:label", "out:proba_0", "out:proba_1", "a",
    ]  # fmt: skip
    assert rows["request_id"].to_list() == ["r1", "r1", "r2"] and rows["row"].to_list() == [0, 1, 0]
    assert rows.schema["input_0"] == pl.Float64 and rows.schema["out:label"] == pl.Int64
    assert rows["input_1"].to_list()[:2] == [2.0, -4.25] and rows["out:proba_1"].to_list()[:2] == [0.8, 0.4]
    assert rows["a"].to_list() == [None, None, "x"] and rows["shadow"].to_list() == [False, False, True]
    assert read_predictions(root)["request_id"].to_list() == ["r1", "r2", "r3"]  # the JSON keeps all
