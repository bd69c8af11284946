"""One view's part of the offline join: its source read in batches and folded
into `pointintime.BucketJoin`.

`view_values` gives one view's feature columns for every entity row, in input
order; `retrieval.historical` calls it per view after checking the sources and
the entity frame. Memory follows the store's ``memory_limit``: a batch holds
`rows_per_batch` source rows, only each entity row's best source row so far is
kept (`_Winners`), and a Parquet source whose rows fit half of the limit is
read by polars (fastest, but its engine reads ahead without bound); bigger
ones, CSV and SQL stream from DuckDB under that limit. So a source larger than
memory joins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.features import sources as src
from mlbox.features.config import DEFAULT_MEMORY_LIMIT, memory_bytes
from mlbox.features.definitions import ParquetSource, polars_dtype
from mlbox.features.offline import JoinView, q
from mlbox.features.refs import ResolvedView
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import polars as pl

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


def rows_per_batch(config: dict[str, Any], jv: JoinView) -> int:
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


def view_values(
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

    int_keys = {k for k in jv.join_keys if src.family(schema[k]) in src.INT_FAMILIES}
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
    the cast features; None when polars should not read it (see `view_values`).

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
    con = src.connect(config, [view.feature_view.source])  # under the store's memory limit
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
