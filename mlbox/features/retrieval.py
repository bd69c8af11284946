"""Running the offline join: entity frame checks, reading the sources in batches, on-demand features.

The point-in-time math is `mlbox.features.pointintime` (pure numpy); this
module owns the I/O around it. Each view's source is checked by DuckDB
(`sources.describe`, the footers or a CSV sample), then read in batches that
`BucketJoin.merge` folds into each entity row's best source row so far, keeping
only the chosen rows' feature values. Memory follows the store's
``memory_limit``: a Parquet source whose rows fit half of it is read by polars
(fastest, but its engine reads ahead without bound); bigger ones, CSV and SQL
stream from DuckDB under that limit. So a source larger than memory joins.
`sample` and `event_range` run their SQL on DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.features import sources as src
from mlbox.features.config import DEFAULT_MEMORY_LIMIT, memory_bytes
from mlbox.features.definitions import (
    DUCKDB_TYPES,
    FeatureView,
    OnDemandFeatureView,
    ParquetSource,
    polars_dtype,
)
from mlbox.features.offline import JoinView, event_range_sql, q
from mlbox.features.refs import FeaturePlan, ResolvedView, internal_name
from mlbox.features.request import request_columns
from mlbox.features.schemas import TrainingSetInfo
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import polars as pl

_INT_FAMILIES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


class RetrievalJob:
    """The result of `FeatureStore.get_historical_features` (already computed),
    with its training-set record: ``to_polars()``, ``to_pandas()`` / ``to_df()``
    (Feast's name), ``to_arrow()``, ``training_set_id``."""

    def __init__(self, frame: pl.DataFrame, training_set: TrainingSetInfo) -> None:
        self._frame = frame
        self.training_set = training_set

    @property
    def training_set_id(self) -> int:
        return self.training_set.id

    def to_polars(self) -> pl.DataFrame:
        return self._frame

    def to_pandas(self) -> pd.DataFrame:
        return self._frame.to_pandas()

    def to_df(self) -> pd.DataFrame:
        return self.to_pandas()

    def to_arrow(self) -> Any:
        return self._frame.to_arrow()

    def __len__(self) -> int:
        return self._frame.height

    def __repr__(self) -> str:
        return f"RetrievalJob(training_set_id={self.training_set_id}, rows={self._frame.height})"


_DATABASES: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_DB_LOCK = threading.Lock()


def connect(config: dict[str, Any], sources: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A cursor on this process's in-memory DuckDB for ``config``.

    Opening a DuckDB database costs ~50 ms, more than a small join, so one is
    kept per configuration and each call gets its own cursor (its own session:
    registered frames and settings stay private to it). Close the cursor.
    """
    import duckdb

    key = (os.getpid(), json.dumps(config, sort_keys=True))
    with _DB_LOCK:
        base = _DATABASES.get(key)
        if base is None:
            if len(_DATABASES) >= 16:  # many homes in one process (tests): forget the oldest
                _DATABASES.pop(next(iter(_DATABASES)))
            base = duckdb.connect(":memory:", config=dict(config))
            base.execute("SET preserve_insertion_order = false")
            _DATABASES[key] = base
        con = base.cursor()
    path = src.search_path(sources or [])
    con.execute(f"SET file_search_path = {src.sql_string(path or '')}")
    return con


def join_view(
    con: duckdb.DuckDBPyConnection, view: ResolvedView, features: tuple[str, ...]
) -> tuple[JoinView, dict[str, str]]:
    """The join plan of a view version, after checking its source still fits it."""
    fv = view.feature_view
    schema = src.describe(con, fv.source, f"feature view {fv.name!r} v{view.version}")
    aware = src.check_schema(fv, view.join_keys, schema)
    dtypes = view.dtypes
    ttl_us = None if fv.ttl is None else int(fv.ttl.total_seconds() * 1_000_000)
    return JoinView(
        relation=src.relation_sql(fv.source),
        join_keys=view.join_keys,
        timestamp_field=fv.timestamp_field,
        created_field=fv.created_timestamp_field,
        features=tuple((f, internal_name(fv.name, f), DUCKDB_TYPES[dtypes[f]]) for f in features),
        ttl_us=ttl_us,
        tz_aware=aware,
    ), schema


def entity_frame(entity_df: Any) -> pl.DataFrame:
    import polars as pl

    if isinstance(entity_df, pl.DataFrame):
        return entity_df
    import pandas as pd

    if isinstance(entity_df, pd.DataFrame):
        return pl.from_pandas(entity_df)
    raise InvalidInput("entity_df must be a polars or pandas DataFrame", field="entity_df")


def entity_hash(frame: pl.DataFrame) -> str:
    """A digest of the entity frame's schema and rows (what lineage compares)."""
    h = hashlib.sha256(repr(list(frame.schema.items())).encode())
    if frame.height:
        h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


def historical(
    entity_df: Any,
    plan: FeaturePlan,
    *,
    timestamp_field: str,
    full_feature_names: bool,
    config: dict[str, Any],
    batch_rows: int | None = None,
) -> tuple[pl.DataFrame, str, int]:
    """The point-in-time frame, the entity frame's hash and its row count.

    ``batch_rows`` (default: from ``config['memory_limit']``) is how many source
    rows are in memory at once; tests lower it to force many batches.
    """
    import polars as pl

    frame = entity_frame(entity_df)
    names = plan.output_names(full_feature_names)
    if timestamp_field not in frame.columns:
        raise InvalidInput(
            f"the entity frame has no {timestamp_field!r} column (columns: {', '.join(frame.columns)})",
            field="entity_df",
        )
    ts_dtype = frame.schema[timestamp_field]
    if isinstance(ts_dtype, pl.Date):
        ts_dtype = pl.Datetime("us")
    if not isinstance(ts_dtype, pl.Datetime):
        raise InvalidInput(
            f"entity frame column {timestamp_field!r} is {ts_dtype}, not a datetime", field="entity_df"
        )
    entity_aware = ts_dtype.time_zone is not None
    for view_req in plan.views:
        missing = [k for k in view_req.view.join_keys if k not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the entity frame lacks join key {missing[0]!r} needed by view {view_req.view.name!r}",
                field="entity_df",
            )
    clash = sorted(set(names) & set(frame.columns))
    if clash:
        raise InvalidInput(
            f"entity frame column {clash[0]!r} has the name of a requested feature; rename it"
            + ("" if full_feature_names else " or pass full_feature_names=True"),
            field="entity_df",
        )
    # Entity times as epoch microseconds (absolute for aware columns, wall clock as UTC
    # for naive ones, as DuckDB's epoch_us reads the sources); a NULL time matches nothing.
    times = frame.get_column(timestamp_field).cast(ts_dtype).dt.epoch("us")
    timed = times.is_not_null().to_numpy()
    t_us = times.fill_null(0).to_numpy()

    # The checks only DESCRIBE the sources: the database `apply`'s checks opened serves.
    con = connect(src.DESCRIBE_CONFIG, [r.view.feature_view.source for r in plan.views])
    try:
        checked = []
        for view_req in plan.views:
            jv, schema = join_view(con, view_req.view, view_req.features)
            _check_entity_side(frame, view_req.view, schema, jv.tz_aware, entity_aware, timestamp_field)
            checked.append((view_req.view, jv, schema))
    finally:
        con.close()
    parts = [
        _view_values(config, frame, t_us, timed, view, jv, schema, batch_rows or _batch_rows(config, jv))
        for view, jv, schema in checked
    ]
    result = pl.concat(parts, how="horizontal") if parts else pl.DataFrame()
    if result.width and result.height != frame.height:  # every entity row once; never silently lose rows
        raise AssertionError(f"point-in-time join returned {result.height} rows for {frame.height}")
    out = pl.concat([frame, result], how="horizontal") if result.width else frame
    out = apply_on_demand(out, plan)
    rename = {internal_name(o.view, o.feature): o.name(full_feature_names) for o in plan.outputs}
    final = out.select(*frame.columns, *[pl.col(k).alias(v) for k, v in rename.items()])
    return final, entity_hash(frame), frame.height


def _check_entity_side(
    frame: pl.DataFrame,
    view: ResolvedView,
    schema: dict[str, str],
    source_aware: bool,
    entity_aware: bool,
    timestamp_field: str,
) -> None:
    import polars as pl

    if source_aware != entity_aware:
        kinds = ("timezone-aware", "timezone-naive")
        raise InvalidInput(
            f"entity frame column {timestamp_field!r} is {kinds[not entity_aware]} but view {view.name!r}'s "
            f"timestamps are {kinds[not source_aware]}; make both naive or both aware",
            field="entity_df",
        )
    for key in view.join_keys:
        dtype = frame.schema[key]
        source_is_int = src.family(schema[key]) in _INT_FAMILIES
        entity_is_int = dtype.is_integer()
        entity_is_str = dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)
        if dtype == pl.Null:
            continue
        if (source_is_int and not entity_is_int) or (not source_is_int and not entity_is_str):
            raise InvalidInput(
                f"entity frame join key {key!r} is {dtype} but view {view.name!r}'s source has {schema[key]}",
                field="entity_df",
            )


# -- one view's join: batches of the source folded into `pointintime.BucketJoin` -----------

_EV = "__mlbox_ev"
_CR = "__mlbox_cr"
_SLOT = "__mlbox_slot"
MIN_BATCH_ROWS = 1 << 12
MAX_BATCH_ROWS = 1 << 20  # past a million rows a batch is no faster, only bigger


def _row_bytes(jv: JoinView, int_keys: set[str] | None = None) -> int:
    """Bytes a source row takes once read: keys and features (strings guessed at 32), and
    the event and created times."""
    keys = sum(8 if int_keys is None or k in int_keys else 32 for k in jv.join_keys)
    return 16 + keys + sum(32 if "VARCHAR" in t else 8 for _, _, t in jv.features)


def _batch_rows(config: dict[str, Any], jv: JoinView) -> int:
    """Source rows per batch: a quarter of the memory limit over a row's bytes plus the
    kernel's temporaries (~96 per row)."""
    rows = memory_bytes(config.get("memory_limit") or DEFAULT_MEMORY_LIMIT) // 4 // (_row_bytes(jv) + 96)
    return int(min(MAX_BATCH_ROWS, max(MIN_BATCH_ROWS, rows)))


class _KeyIndex:
    """Slots (dense key numbers, see `pointintime`) of one view's join keys: the
    entity rows', then each source batch's. One integer key over a compact range
    indexes a table directly; anything else (several keys, strings, sparse
    integers) goes through a polars join with the entity rows' distinct keys.
    Integer keys compare as Int64 (a UBIGINT past its range matches nothing),
    the others as strings; a NULL key matches nothing."""

    def __init__(self, frame: pl.DataFrame, keys: tuple[str, ...], int_keys: set[str], usable: Any) -> None:
        import numpy as np
        import polars as pl

        from mlbox.features import pointintime as pit

        self.keys = list(keys)
        cols = [
            frame.get_column(k).cast(pl.Int64 if k in int_keys else pl.String, strict=False) for k in keys
        ]
        ok = usable.copy()
        for col in cols:
            if col.null_count():
                ok &= col.is_not_null().to_numpy()
        self.table: pl.DataFrame | None = None
        self.kmin = 0
        if len(keys) == 1 and keys[0] in int_keys:
            values = cols[0].fill_null(0).to_numpy()
            dense = pit.dense_range(values[ok], len(values))
            if dense is not None:
                self.kmin, self.n_slots = dense
                self.slots = np.where(ok, values - self.kmin, -1)
                return
        ek = pl.DataFrame(cols)
        self.table = ek.filter(pl.Series(ok)).unique().with_row_index(_SLOT)
        self.n_slots = self.table.height
        found = ek.join(self.table, on=self.keys, how="left", maintain_order="left").get_column(_SLOT)
        self.slots = np.where(ok, found.fill_null(0).to_numpy().astype(np.int64), -1)

    def source_slots(self, batch: pl.DataFrame) -> Any:
        """Slots of a batch's rows (``n_slots`` for a key no entity row has)."""
        from mlbox.features import pointintime as pit

        if self.table is None:
            keys = batch.get_column(self.keys[0]).to_numpy()  # writable only when polars copied it
            return pit.dense_slots(keys, self.kmin, self.n_slots, overwrite=keys.flags.writeable)
        joined = batch.select(self.keys).join(self.table, on=self.keys, how="left", maintain_order="left")
        return joined.get_column(_SLOT).fill_null(self.n_slots).to_numpy()


class _Winners:
    """The feature values of each bucket's best source row so far: the rows
    `BucketJoin.merge` picked, appended per batch and compacted (the last per
    bucket kept) once they outgrow twice the buckets, so memory stays
    O(entity rows × features) however many batches change them."""

    def __init__(self, n_buckets: int, schema: dict[str, Any]) -> None:
        self.n_buckets, self.schema, self.rows = n_buckets, schema, 0
        self.buckets: list[Any] = []
        self.frames: list[pl.DataFrame] = []

    def add(self, buckets: Any, values: pl.DataFrame) -> None:
        self.buckets.append(buckets)
        self.frames.append(values)
        self.rows += len(buckets)
        if self.rows > 2 * self.n_buckets + MIN_BATCH_ROWS:
            self._compact()

    def _compact(self) -> None:
        import numpy as np
        import polars as pl

        from mlbox.features import pointintime as pit

        buckets = np.concatenate(self.buckets) if self.buckets else np.zeros(0, dtype=np.int64)
        frame = pl.concat(self.frames) if self.frames else pl.DataFrame(schema=self.schema)
        keep = pit.latest(buckets, self.n_buckets)
        if keep.size != buckets.size:
            buckets, frame = buckets[keep], frame[keep]
        self.buckets, self.frames, self.rows = [buckets], [frame], int(buckets.size)

    def values(self, bucket_of_row: Any) -> pl.DataFrame:
        """One row per entity row: its bucket's values, or NULLs for -1."""
        import numpy as np
        import polars as pl

        self._compact()
        buckets, frame = self.buckets[0], self.frames[0]
        where = np.full(self.n_buckets + 1, -1, dtype=np.int64)  # where[-1]: bucket -1, no row
        where[buckets] = np.arange(buckets.size, dtype=np.int64)
        index = pl.Series(where[bucket_of_row]).cast(pl.get_index_type(), strict=False)  # -1 -> NULL
        return frame.select(pl.all().gather(index))


def _view_values(
    config: dict[str, Any],
    frame: pl.DataFrame,
    t_us: Any,
    timed: Any,
    view: ResolvedView,
    jv: JoinView,
    schema: dict[str, str],
    batch_rows: int,
) -> pl.DataFrame:
    """One view's feature columns (internal names) for every entity row, in input order.

    Parquet sources that fit half the memory limit are read by polars (about
    three times faster than DuckDB here). DuckDB streams the others, CSV and
    SQL sources, and Parquet that polars cannot read as DuckDB's check did (a
    column missing from the first file, files that disagree on a type, hive
    partitions), so values and types are what `sources.describe` validated.
    """
    import numpy as np
    import polars as pl

    from mlbox.features import pointintime as pit

    int_keys = {k for k in jv.join_keys if src.family(schema[k]) in _INT_FAMILIES}
    keys = _KeyIndex(frame, jv.join_keys, int_keys, timed)
    dtypes = {out: polars_dtype(view.dtypes[name]) for name, out, _ in jv.features}

    def run(batches: Callable[[], Iterator[pl.DataFrame]]) -> pl.DataFrame:
        join = pit.BucketJoin(keys.slots, t_us, keys.n_slots, jv.ttl_us)
        winners = _Winners(join.size, dtypes)
        if join.size:  # else no entity row can match anything: the source is not read
            for batch in batches():
                ev = batch.get_column(_EV).to_numpy()
                cr = (
                    batch.get_column(_CR).to_numpy()
                    if jv.created_field
                    else np.broadcast_to(pit.MIN, ev.shape)
                )
                rows, buckets = join.merge(keys.source_slots(batch), ev, cr)
                if rows.size:
                    winners.add(buckets, batch.select(pl.col(list(dtypes)).gather(rows)))
        return winners.values(join.finish())

    max_rows = (
        memory_bytes(config.get("memory_limit") or DEFAULT_MEMORY_LIMIT) // 2 // _row_bytes(jv, int_keys)
    )
    scan = _polars_scan(view, jv, int_keys, dtypes, max_rows)
    if scan is not None:
        try:
            return run(lambda: iter(scan.collect_batches(chunk_size=batch_rows)))
        except pl.exceptions.PolarsError:
            pass  # e.g. files of a folder that disagree on a type: DuckDB's union_by_name reads them
    return run(lambda: _duckdb_batches(config, view, jv, int_keys, dtypes, batch_rows))


def _polars_scan(
    view: ResolvedView, jv: JoinView, int_keys: set[str], dtypes: dict[str, Any], max_rows: int
) -> pl.LazyFrame | None:
    """The source as a polars query yielding keys, event and created microseconds and
    the cast features; None when polars should not read it (see `_view_values`).

    Polars' batches are not bounded: its engine reads ahead of a slow consumer
    until the whole result is buffered. So it reads a source only when the
    whole of it (``max_rows``, from the footers) fits half the memory limit;
    a bigger one goes to DuckDB, whose streamed result stays within its limit.
    """
    import polars as pl

    from mlbox.features import pointintime as pit

    source = view.feature_view.source
    if not isinstance(source, ParquetSource):
        return None
    path = source.path
    if not any(ch in path for ch in "*?[") and Path(path).is_dir():
        path = str(Path(path) / "**" / "*.parquet")
    lf = pl.scan_parquet(path, missing_columns="insert", extra_columns="ignore")
    try:
        schema = lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError):
        return None
    times = [jv.timestamp_field] + ([jv.created_field] if jv.created_field else [])
    needed = [*jv.join_keys, *times, *(name for name, _, _ in jv.features)]
    if any(c not in schema for c in needed) or any(
        not isinstance(schema[c], (pl.Datetime, pl.Date)) for c in times
    ):
        return None
    try:
        if lf.select(pl.len()).collect().item() > max_rows:
            return None
    except (pl.exceptions.PolarsError, OSError):
        return None

    def epoch(col: str) -> pl.Expr:
        e = pl.col(col)
        return (e.cast(pl.Datetime("us")) if isinstance(schema[col], pl.Date) else e).dt.epoch("us")

    cols = [pl.col(k).cast(pl.Int64 if k in int_keys else pl.String, strict=False) for k in jv.join_keys]
    cols.append(epoch(jv.timestamp_field).alias(_EV))
    if jv.created_field:
        cols.append(epoch(jv.created_field).fill_null(pit.MIN).alias(_CR))
    cols += [pl.col(name).cast(dtypes[out]).alias(out) for name, out, _ in jv.features]
    present = [pl.col(c).is_not_null() for c in (*jv.join_keys, _EV)]
    return lf.select(cols).filter(pl.all_horizontal(present))


def _duckdb_batches(
    config: dict[str, Any],
    view: ResolvedView,
    jv: JoinView,
    int_keys: set[str],
    dtypes: dict[str, Any],
    batch_rows: int,
) -> Iterator[pl.DataFrame]:
    """The source read by DuckDB in Arrow batches, shaped like `_polars_scan`'s rows."""
    import duckdb
    import polars as pl

    from mlbox.features import pointintime as pit

    ts = "TIMESTAMPTZ" if jv.tz_aware else "TIMESTAMP"
    cols = [f"TRY_CAST({q(k)} AS {'BIGINT' if k in int_keys else 'VARCHAR'}) AS {q(k)}" for k in jv.join_keys]
    cols.append(f"epoch_us(CAST({q(jv.timestamp_field)} AS {ts})) AS {_EV}")
    if jv.created_field:
        cols.append(f"epoch_us(CAST({q(jv.created_field)} AS {ts})) AS {_CR}")
    cols += [f"CAST({q(name)} AS {typ}) AS {q(out)}" for name, out, typ in jv.features]
    present = " AND ".join(f"{q(c)} IS NOT NULL" for c in (*jv.join_keys, _EV))
    sql = f"SELECT * FROM (SELECT {', '.join(cols)} FROM {jv.relation}) WHERE {present}"
    fix = [pl.col(out).cast(dtype) for out, dtype in dtypes.items()]
    if jv.created_field:
        fix.append(pl.col(_CR).fill_null(pit.MIN))
    con = connect(config, [view.feature_view.source])  # under the store's memory limit
    try:
        for batch in con.sql(sql).to_arrow_reader(batch_rows):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame.with_columns(fix)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInput(
            f"feature view {view.name!r} v{view.version}: cannot read source: {first}", field="source"
        ) from None
    finally:
        con.close()


def apply_on_demand(frame: pl.DataFrame, plan: FeaturePlan) -> pl.DataFrame:
    """Add each requested on-demand feature (as ``view__feature``) computed from its
    source views' fetched features and its request fields (the entity frame's
    columns of those names), which the expressions know by plain names."""
    import polars as pl

    for req in plan.on_demand:
        odfv = req.view.definition
        assert isinstance(odfv, OnDemandFeatureView)
        inputs = request_columns(frame, req.view.name, req.request)
        for src_name, src_version in req.view.source_versions:
            source_req = next(
                v for v in plan.views if v.view.name == src_name and v.view.version == src_version
            )
            inputs += [pl.col(internal_name(src_name, f)).alias(f) for f in source_req.features]
        dtypes = {f.name: f.dtype for f in odfv.features}
        exprs = odfv.polars_exprs()
        computed = frame.select(inputs).select(
            [exprs[f].cast(polars_dtype(dtypes[f])).alias(internal_name(odfv.name, f)) for f in req.features]
        )
        frame = pl.concat([frame, computed], how="horizontal")
    return frame


def sample(view: ResolvedView, n: int, config: dict[str, Any]) -> pl.DataFrame:
    """The newest ``n`` rows of a feature view's source, declared columns only."""
    import polars as pl

    if not isinstance(view.definition, FeatureView):
        raise InvalidInput(f"{view.name!r} is an on-demand view: it has no rows of its own", field="view")
    fv = view.definition
    con = connect(config, [fv.source])
    try:
        jv, _ = join_view(con, view, tuple(fv.feature_names))
        cols = [*view.join_keys, fv.timestamp_field]
        if fv.created_timestamp_field:
            cols.append(fv.created_timestamp_field)
        cols += fv.feature_names
        sql = (
            f"SELECT {', '.join(q(c) for c in cols)} FROM {jv.relation} "
            f"ORDER BY {q(fv.timestamp_field)} DESC NULLS LAST LIMIT {int(n)}"
        )
        frame = pl.from_arrow(con.sql(sql).to_arrow_table())
    finally:
        con.close()
    assert isinstance(frame, pl.DataFrame)
    return frame


def event_range(view: ResolvedView, config: dict[str, Any]) -> tuple[int | None, int | None]:
    """Oldest and newest event time of a view's source (epoch microseconds)."""
    con = connect(config, [view.feature_view.source])
    try:
        jv, _ = join_view(con, view, ())
        row = con.execute(event_range_sql(jv)).fetchone()
    finally:
        con.close()
    return (None, None) if row is None else (row[0], row[1])
