"""The metric tables: each series in chunks, and the latest value per key.

A batch of points is appended as one row per key to ``metric_chunks`` (the
steps, times and values encoded by `series.Chunk`), and ``latest_metrics``
keeps each key's point with the greatest step and its count; both are written
in one ``BEGIN IMMEDIATE`` transaction with the run's heartbeat, so a reader
never sees a chunk without its latest value.

Metric values may be NaN or ±inf: training that diverges must not crash on
logging, and the user wants to see the divergence. NaN is stored as NULL
(SQLite has no NaN) and read back as NaN in series and `MetricSummary.last`;
in `Run.metrics` (latest values, `latest_values`) a NaN shows as None and
±inf as ±inf. A NaN never matches a filter and sorts last. JSON front ends
render both NaN and ±inf as null.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from mlbox.store.db import Database
from mlbox.store.errors import NotFound
from mlbox.tracking.schemas import MetricSummary
from mlbox.tracking.series import Chunk


def _stored(value: float) -> float | None:
    return None if math.isnan(value) else value


def _read(value: float | None) -> float:
    return math.nan if value is None else value


def latest_values(text: str | None) -> dict[str, float | None]:
    """Latest values from SQL JSON: NULL is NaN (kept as None), numbers arrive as exact text."""
    if not text:
        return {}
    return {k: float(v) if isinstance(v, str) else v for k, v in json.loads(text).items()}


def append(db: Database, run_id: int, series: Mapping[str, Chunk], *, now: float | None = None) -> None:
    """Append already-validated points, one chunk per key, in one transaction
    (NotFound when there is no run ``run_id``)."""
    rows = []
    latest = []
    for key, chunk in series.items():
        if not len(chunk):
            continue
        steps, ts, vals = chunk.encode()
        rows.append((run_id, key, len(chunk), min(chunk.steps), max(chunk.steps), steps, ts, vals))
        i = chunk.latest()
        latest.append((run_id, key, chunk.steps[i], chunk.ts[i], _stored(chunk.values[i]), len(chunk)))
    if not rows:
        return
    try:
        with db.atomic() as conn:
            conn.executemany(
                "INSERT INTO metric_chunks (run_id, key, n, first_step, last_step, steps, ts, vals)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO latest_metrics (run_id, key, step, ts, value, count)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET"
                " ts = CASE WHEN excluded.step >= step THEN excluded.ts ELSE ts END,"
                " value = CASE WHEN excluded.step >= step THEN excluded.value ELSE value END,"
                " step = MAX(step, excluded.step),"
                " count = count + excluded.count",
                latest,
            )
            conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE id = ?",
                (time.time() if now is None else now, run_id),
            )
    except sqlite3.IntegrityError:
        raise NotFound(f"no run {run_id}", field="run_id") from None


def summaries(db: Database, run_id: int) -> list[MetricSummary]:
    """Each key's latest value, step and point count, by key (empty for an unknown run too)."""
    rows = db.query(
        "SELECT key, value, step, count FROM latest_metrics WHERE run_id = ? ORDER BY key",
        (run_id,),
    )
    return [MetricSummary(r["key"], _read(r["value"]), r["step"], r["count"]) for r in rows]


def read_series(db: Database, run_id: int, key: str) -> Chunk | None:
    """A whole series in step order; None when the run has no such metric (or no run)."""
    rows = db.query(
        "SELECT steps, ts, vals FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY id",
        (run_id, key),
    )
    if not rows:
        return None
    chunk = Chunk()
    for r in rows:
        chunk.extend(Chunk.decode(r[0], r[1], r[2]))
    return chunk.sorted_by_step()


def write_parquet(series: Iterable[tuple[str, Chunk]], path: str | Path) -> int:
    """Write (key, series) pairs to one Parquet table of points; returns the number of points."""
    import pyarrow as pa

    from mlbox.store.tables import write_parquet as write_table

    keys: list[str] = []
    steps: list[int] = []
    ts: list[float] = []
    values: list[float] = []
    for key, c in series:
        keys.extend([key] * len(c))
        steps.extend(c.steps)
        ts.extend(c.ts)
        values.extend(c.values)
    table = pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "step": pa.array(steps, pa.int64()),
            "timestamp": pa.array(ts, pa.float64()),
            "value": pa.array(values, pa.float64()),
        }
    )
    write_table(table, path)
    return len(keys)
