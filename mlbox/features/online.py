"""The online store: the latest feature values per entity, in their own SQLite file.

One table per view version (``fv_<view>_v<version>``), keyed by the join
keys, holding the event time (``__ev``), created time (``__cr``, epoch µs) and
the features. Invariants:

* A stored row is only ever replaced by a newer one (greater event time, or the
  same event time and a created time at least as new), so materializations may
  overlap, repeat or run concurrently and the result is the same.
* A window's upserts and its ``online_materializations`` record commit in one
  transaction: freshness never claims rows that are not there.
* Reads are one indexed SQLite query per view on this thread's connection
  (WAL: never blocked by a materialization), with the SQL built once per
  view version; the TTL is applied at read time against ``now``.
* Deleting a view drops its tables and its records in one transaction; a
  reader that still had the table's SQL prepared gets NotFound, never a
  value of the deleted view.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlbox.features.migrations import online_migrations
from mlbox.features.offline import q
from mlbox.features.refs import FeaturePlan, ResolvedView, internal_name
from mlbox.features.request import request_values
from mlbox.features.schemas import Freshness
from mlbox.store.db import Database
from mlbox.store.errors import InvalidInput, NotFound

_SQLITE_TYPES = {"int8": "INTEGER", "int16": "INTEGER", "int32": "INTEGER", "int64": "INTEGER",
                 "float32": "REAL", "float64": "REAL", "string": "TEXT", "bool": "INTEGER"}  # fmt: skip


READ_MMAP_BYTES = 1 << 30
READ_CACHE_KIB = 64 * 1024


def table_name(view: str, version: int) -> str:
    return f"fv_{view}_v{version}"


@dataclass(frozen=True)
class Layout:
    """What a reader needs to know about one online table, stored beside it."""

    view: str
    version: int
    table: str
    join_keys: tuple[str, ...]
    key_types: tuple[str, ...]  # "int" or "str" per join key
    features: tuple[tuple[str, str], ...]  # (name, dtype)
    ttl_us: int | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "join_keys": self.join_keys,
                "key_types": self.key_types,
                "features": self.features,
                "ttl_us": self.ttl_us,
            }
        )


class _Reader:
    """Prepared lookups of one view version's table for a fixed feature list."""

    def __init__(self, layout: Layout, features: tuple[str, ...]) -> None:
        self.layout = layout
        self.features = features
        self.internal = tuple(internal_name(layout.view, f) for f in features)
        dtypes = dict(layout.features)
        self.bools = tuple(i for i, f in enumerate(features) if dtypes[f] == "bool")
        cols = ", ".join([*(q(k) for k in layout.join_keys), "__ev", *(q(f) for f in features)])
        nk = len(layout.join_keys)
        self.nk = nk
        self.int_keys = tuple(t == "int" for t in layout.key_types)
        where_one = " AND ".join(f"{q(k)} = ?" for k in layout.join_keys)
        self.sql_one = f"SELECT {cols} FROM {q(layout.table)} WHERE {where_one}"
        if nk == 1:
            match = f"{q(layout.join_keys[0])} IN (SELECT value FROM json_each(?))"
        else:
            parts = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(nk))
            match = f"({', '.join(q(k) for k in layout.join_keys)}) IN (SELECT {parts} FROM json_each(?))"
        self.sql_many = f"SELECT {cols} FROM {q(layout.table)} WHERE {match}"


class OnlineStore:
    def __init__(self, path: Path) -> None:
        self.db = Database(path)
        self._migrated = False
        self._layouts: dict[tuple[str, int], Layout] = {}
        self._readers: dict[tuple[str, int, tuple[str, ...]], _Reader] = {}
        self._lock = threading.Lock()
        self._tuned = threading.local()

    def _read_conn(self) -> sqlite3.Connection:
        """This thread's connection, with memory-mapped reads and a bigger page cache:
        a batch lookup touches pages all over the table, and syscalls per page
        would dominate it."""
        conn = self.db.conn
        if getattr(self._tuned, "conn", None) is not conn:
            conn.execute(f"PRAGMA mmap_size = {READ_MMAP_BYTES}")
            conn.execute(f"PRAGMA cache_size = -{READ_CACHE_KIB}")
            self._tuned.conn = conn
        return conn

    def _ready(self) -> Database:
        if not self._migrated:
            online_migrations.apply(self.db)
            self._migrated = True
        return self.db

    # -- writing -------------------------------------------------------------------------

    def ensure_table(self, view: ResolvedView, key_types: tuple[str, ...]) -> Layout:
        """The online table of a view version, created on first materialization."""
        fv = view.feature_view
        layout = Layout(
            view.name, view.version, table_name(view.name, view.version), view.join_keys, key_types,
            tuple((f.name, f.dtype) for f in fv.features),
            None if fv.ttl is None else int(fv.ttl.total_seconds() * 1_000_000),
        )  # fmt: skip
        db = self._ready()
        keys = [
            f"{q(k)} {'INTEGER' if t == 'int' else 'TEXT'} NOT NULL"
            for k, t in zip(view.join_keys, key_types, strict=True)
        ]
        feats = [f"{q(n)} {_SQLITE_TYPES[d]}" for n, d in layout.features]
        with db.atomic() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {q(layout.table)} ({', '.join(keys)}, __ev INTEGER NOT NULL, __cr INTEGER,"
                f" {', '.join(feats)}, PRIMARY KEY ({', '.join(q(k) for k in view.join_keys)})) WITHOUT ROWID"
            )
            conn.execute(
                "INSERT OR IGNORE INTO online_tables (view, version, table_name, layout, created_at) VALUES (?,?,?,?,?)",
                (view.name, view.version, layout.table, layout.to_json(), time.time()),
            )
        return layout

    def write_window(
        self,
        layout: Layout,
        batches: Iterable[Sequence[tuple[Any, ...]]],
        *,
        window_start: float,
        window_end: float,
        now: float,
    ) -> tuple[int, float | None]:
        """Upsert rows ``(keys…, ev_us, cr_us, features…)`` and record the window, in
        one transaction. Returns (rows offered, newest event time in seconds)."""
        names = [*layout.join_keys, "__ev", "__cr", *(n for n, _ in layout.features)]
        updates = ", ".join(f"{q(n)} = excluded.{q(n)}" for n in names[len(layout.join_keys) :])
        t = q(layout.table)
        sql = (
            f"INSERT INTO {t} ({', '.join(q(n) for n in names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({', '.join(q(k) for k in layout.join_keys)}) DO UPDATE SET {updates} "
            f"WHERE excluded.__ev > {t}.__ev OR (excluded.__ev = {t}.__ev "
            f"AND coalesce(excluded.__cr, -9223372036854775807) >= coalesce({t}.__cr, -9223372036854775807))"
        )
        ev_col = len(layout.join_keys)
        rows = 0
        newest: int | None = None
        with self._ready().atomic() as conn:
            for batch in batches:
                if not batch:
                    continue
                conn.executemany(sql, batch)
                rows += len(batch)
                top = max(r[ev_col] for r in batch)
                newest = top if newest is None else max(newest, top)
            newest_s = None if newest is None else newest / 1e6
            conn.execute(
                "INSERT INTO online_materializations (view, version, window_start, window_end, rows, newest_event_ts,"
                " finished_at) VALUES (?,?,?,?,?,?,?)",
                (layout.view, layout.version, window_start, window_end, rows, newest_s, now),
            )
        return rows, newest_s

    def write_lock(self) -> AbstractContextManager[sqlite3.Connection]:
        """This file's write transaction; writes made inside it (`drop_view`) join it."""
        return self._ready().atomic()

    def drop_view(self, view: str, *, dry_run: bool = False) -> int:
        """Remove every online table and materialization record of ``view`` (all its
        versions) in one transaction; returns how many rows the tables held."""
        db = self._ready()
        rows = 0
        with db.atomic() as conn:
            tables = [
                r["table_name"]
                for r in conn.execute("SELECT table_name FROM online_tables WHERE view = ?", (view,))
            ]
            for table in tables:
                found = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                if found[0]:
                    rows += int(conn.execute(f"SELECT count(*) FROM {q(table)}").fetchone()[0])
                    if not dry_run:
                        conn.execute(f"DROP TABLE {q(table)}")
            if not dry_run:
                conn.execute("DELETE FROM online_tables WHERE view = ?", (view,))
                conn.execute("DELETE FROM online_materializations WHERE view = ?", (view,))
        if not dry_run:
            self._forget(view)
        return rows

    def _forget(self, view: str) -> None:
        with self._lock:
            for key in [k for k in self._layouts if k[0] == view]:
                self._layouts.pop(key, None)
            for rkey in [k for k in self._readers if k[0] == view]:
                self._readers.pop(rkey, None)

    def last_window_end(self, view: str, version: int) -> float | None:
        row = self._ready().query_one(
            "SELECT max(window_end) AS e FROM online_materializations WHERE view = ? AND version = ?",
            (view, version),
        )
        return None if row is None else row["e"]

    def freshness(self) -> list[Freshness]:
        db = self._ready()
        out = []
        for t in db.query("SELECT view, version, table_name FROM online_tables ORDER BY view, version"):
            m = db.query_one(
                "SELECT max(window_end) AS e, max(newest_event_ts) AS n, max(finished_at) AS f"
                " FROM online_materializations WHERE view = ? AND version = ?",
                (t["view"], t["version"]),
            )
            try:
                count = db.query_one(f"SELECT count(*) AS c FROM {q(t['table_name'])}")
            except sqlite3.OperationalError as exc:  # dropped since listed: the view was deleted
                if "no such table" in str(exc):
                    continue
                raise
            out.append(
                Freshness(
                    t["view"],
                    t["version"],
                    m["e"] if m else None,
                    m["n"] if m else None,
                    m["f"] if m else None,
                    int(count["c"]) if count else 0,
                )
            )
        return out

    # -- reading -------------------------------------------------------------------------

    def layout(self, view: str, version: int) -> Layout:
        hit = self._layouts.get((view, version))
        if hit is not None:
            return hit
        row = self._ready().query_one(
            "SELECT layout, table_name FROM online_tables WHERE view = ? AND version = ?", (view, version)
        )
        if row is None:
            raise NotFound(
                f"feature view {view!r} v{version} has no online values; materialize it first",
                field="features",
            )
        d = json.loads(row["layout"])
        layout = Layout(
            view, version, row["table_name"], tuple(d["join_keys"]), tuple(d["key_types"]),
            tuple((n, t) for n, t in d["features"]), d["ttl_us"],
        )  # fmt: skip
        self._layouts[(view, version)] = layout
        return layout

    def _reader(self, view: ResolvedView, features: tuple[str, ...]) -> _Reader:
        key = (view.name, view.version, features)
        reader = self._readers.get(key)
        if reader is None:
            reader = _Reader(self.layout(view.name, view.version), features)
            with self._lock:
                self._readers[key] = reader
        return reader

    def get(
        self,
        entity_rows: Sequence[Mapping[str, Any]],
        plan: FeaturePlan,
        *,
        with_event_time: bool = False,
        full_feature_names: bool = False,
        now: float | None = None,
    ) -> dict[str, list[Any]]:
        n = len(entity_rows)
        names = plan.output_names(full_feature_names)
        out: dict[str, list[Any]] = {}
        for k in plan.join_keys:
            try:
                out[k] = [row[k] for row in entity_rows]
            except KeyError:
                raise InvalidInput(f"an entity row lacks join key {k!r}", field="entity_rows") from None
            except TypeError:
                raise InvalidInput("entity_rows must be a list of objects", field="entity_rows") from None
        now_us = int((time.time() if now is None else now) * 1_000_000)
        values: dict[str, list[Any]] = {}
        events: dict[str, list[int | None]] = {}
        conn = self._read_conn()
        for req in plan.views:
            r = self._reader(req.view, req.features)
            keys = [_coerce(out[k], is_int) for k, is_int in zip(r.layout.join_keys, r.int_keys, strict=True)]
            try:
                if n == 1:
                    found = conn.execute(r.sql_one, [col[0] for col in keys]).fetchall()
                else:
                    packed = json.dumps(keys[0] if r.nk == 1 else [list(t) for t in zip(*keys, strict=True)])
                    found = conn.execute(r.sql_many, (packed,)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                self._forget(req.view.name)  # deleted by another process since this plan was made
                raise NotFound(
                    f"feature view {req.view.name!r} v{req.view.version} has no online values"
                    " (it was deleted, or never materialized)",
                    field="features",
                ) from None
            nk = r.nk
            by_key = {(row[0] if nk == 1 else tuple(row[:nk])): row for row in found}
            wanted = keys[0] if nk == 1 else list(zip(*keys, strict=True))
            rows = [by_key.get(k) for k in wanted]
            ttl = r.layout.ttl_us
            live = [row is not None and (ttl is None or row[nk] >= now_us - ttl) for row in rows]
            for j, name in enumerate(r.internal):
                col = nk + 1 + j
                vals = [row[col] if ok else None for row, ok in zip(rows, live, strict=True)]  # type: ignore[index]
                if j in r.bools:
                    vals = [None if v is None else bool(v) for v in vals]
                values[name] = vals
            evs = [None if row is None else row[nk] for row in rows]
            for name in r.internal:
                events[name] = evs
        if plan.on_demand:
            _on_demand_online(plan, entity_rows, values, events, n)
        for o, name in zip(plan.outputs, names, strict=True):
            iname = internal_name(o.view, o.feature)
            out[name] = values[iname]
            if with_event_time:
                evs = events[iname]
                out[f"{name}__event_ts"] = [None if e is None else e / 1e6 for e in evs]
                out[f"{name}__age_s"] = [None if e is None else (now_us - e) / 1e6 for e in evs]
        return out


def _coerce(values: list[Any], is_int: bool) -> list[Any]:
    """Keys as the table stores them: JSON clients may send ``"42"`` for an int key."""
    if not is_int:
        return [v if v is None or isinstance(v, str) else str(v) for v in values]
    if all(type(v) is int for v in values):
        return values
    out = []
    for v in values:
        try:
            out.append(None if v is None else int(v))
        except (TypeError, ValueError):
            raise InvalidInput(f"join key value {v!r} is not an integer", field="entity_rows") from None
    return out


def _on_demand_online(
    plan: FeaturePlan,
    entity_rows: Sequence[Mapping[str, Any]],
    values: dict[str, list[Any]],
    events: dict[str, list[int | None]],
    n: int,
) -> None:
    """Compute on-demand features from fetched values and the rows' request values
    (their event time: the oldest fetched input's; request values have none)."""
    import polars as pl

    from mlbox.features.definitions import OnDemandFeatureView, polars_dtype

    for req in plan.on_demand:
        odfv = req.view.definition
        assert isinstance(odfv, OnDemandFeatureView)
        data: dict[str, pl.Series] = {}
        for name, dtype in req.request:
            try:
                data[name] = pl.Series(
                    name, request_values(entity_rows, name, dtype, odfv.name), dtype=polars_dtype(dtype)
                )
            except (OverflowError, pl.exceptions.PolarsError):  # e.g. 300 for an int8
                raise InvalidInput(
                    f"request field {name!r} of on-demand view {odfv.name!r}: a value does not fit {dtype}",
                    field=name,
                ) from None
        ev_cols: list[list[int | None]] = []
        for src_name, _ in req.view.source_versions:
            source = next(v for v in plan.views if v.view.name == src_name)
            dtypes = source.view.dtypes
            for f in source.features:
                iname = internal_name(src_name, f)
                data[f] = pl.Series(f, values[iname], dtype=polars_dtype(dtypes[f]))
            if source.features:
                ev_cols.append(events[internal_name(src_name, source.features[0])])
        frame = pl.DataFrame(data, height=n)
        exprs = odfv.polars_exprs()
        declared = {f.name: f.dtype for f in odfv.features}
        result = frame.select([exprs[f].cast(polars_dtype(declared[f])) for f in req.features])
        oldest = (
            [None if any(e is None for e in col) else min(col) for col in zip(*ev_cols, strict=True)]
            if ev_cols
            else [None] * n
        )
        for f in req.features:
            values[internal_name(odfv.name, f)] = result[f].to_list()
            events[internal_name(odfv.name, f)] = oldest  # type: ignore[assignment]
