"""Materialization: DuckDB finds the latest row per entity in a window, the
online store upserts it.

Windows are processed oldest first and each commits on its own (rows and
record together), so an interrupted backfill resumes from its last finished
window and a re-run changes nothing (upserts only move forward in time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mlbox.features import sources as src
from mlbox.features.offline import latest_sql
from mlbox.features.online import OnlineStore
from mlbox.features.refs import ResolvedView
from mlbox.features.retrieval import event_range, join_view
from mlbox.features.schemas import MaterializeProgress, MaterializeResult
from mlbox.store.errors import InvalidInput

BATCH_ROWS = 50_000
_INT_FAMILIES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{value!r} is not a datetime", field="start")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def windows(start: datetime, end: datetime, chunk: timedelta | None) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end]`` into consecutive windows of at most ``chunk``."""
    if end < start:
        raise InvalidInput(f"materialization end {end} is before its start {start}", field="end")
    if chunk is None:
        return [(start, end)]
    if chunk <= timedelta(0):
        raise InvalidInput("chunk must be a positive duration", field="chunk")
    out = []
    cursor = start
    while True:
        nxt = min(cursor + chunk, end)
        out.append((cursor, nxt))
        if nxt >= end:
            return out
        cursor = nxt


def materialize(
    online: OnlineStore,
    targets: Sequence[ResolvedView],
    start: datetime,
    end: datetime,
    *,
    chunk: timedelta | None,
    progress: Callable[[MaterializeProgress], None] | None,
    config: dict[str, Any],
) -> list[MaterializeResult]:
    start, end = as_utc(start), as_utc(end)
    return [_one(online, view, start, end, chunk, progress, config) for view in targets]


def materialize_incremental(
    online: OnlineStore,
    targets: Sequence[ResolvedView],
    end: datetime | None,
    *,
    chunk: timedelta | None,
    progress: Callable[[MaterializeProgress], None] | None,
    config: dict[str, Any],
) -> list[MaterializeResult]:
    stop = as_utc(end) if end is not None else datetime.now(UTC)
    results = []
    for view in targets:
        last = online.last_window_end(view.name, view.version)
        fv = view.feature_view
        if last is not None:
            begin = datetime.fromtimestamp(last, UTC)
        elif fv.ttl is not None:
            begin = stop - fv.ttl
        else:
            oldest, _ = event_range(view, config)
            if oldest is None:
                begin = stop
            else:
                begin = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=oldest)
        results.append(_one(online, view, min(begin, stop), stop, chunk, progress, config))
    return results


def _one(
    online: OnlineStore,
    view: ResolvedView,
    start: datetime,
    end: datetime,
    chunk: timedelta | None,
    progress: Callable[[MaterializeProgress], None] | None,
    config: dict[str, Any],
) -> MaterializeResult:
    t0 = time.perf_counter()
    spans = windows(start, end, chunk)
    fv = view.feature_view
    con = src.connect(config, [fv.source])
    total = 0
    try:
        jv, schema = join_view(con, view, tuple(fv.feature_names))
        key_types = tuple("int" if src.family(schema[k]) in _INT_FAMILIES else "str" for k in view.join_keys)
        layout = online.ensure_table(view, key_types)
        for i, (ws, we) in enumerate(spans):
            cursor = con.execute(latest_sql(jv, ws, we))
            rows, _ = online.write_window(
                layout,
                _batches(cursor),
                window_start=ws.timestamp(),
                window_end=we.timestamp(),
                now=time.time(),
            )
            total += rows
            if progress is not None:
                progress(
                    MaterializeProgress(
                        view.name, view.version, i + 1, len(spans), ws.timestamp(), we.timestamp(), rows
                    )
                )
    finally:
        con.close()
    return MaterializeResult(
        view.name,
        view.version,
        start.timestamp(),
        end.timestamp(),
        total,
        len(spans),
        time.perf_counter() - t0,
    )


def _batches(cursor: Any) -> Iterator[list[tuple[Any, ...]]]:
    while True:
        batch = cursor.fetchmany(BATCH_ROWS)
        if not batch:
            return
        yield batch
