"""Parquet files for bulk data, DuckDB as the query engine over them.

DuckDB runs in memory here and reads Parquet directly: no process holds a
DuckDB database file lock that another one needs, which keeps the stores
shareable between the appliance, jobs and notebooks. Writes go to a temporary
file and are renamed into place, so a reader never sees half a file. Files are created 0600
and the folders on the way 0700 (`mlbox.store.private`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlbox.store import private, tempfiles

TEMP_PREFIX = ".tmp-"
"""A Parquet file being written: ``.tmp-<pid>-<start>-<hex>`` beside its target."""

if TYPE_CHECKING:  # imported where used: the scoring path writes Parquet and must start fast
    import duckdb
    import polars as pl


def write_parquet(data: pl.DataFrame | pa.Table, path: Path | str) -> Path:
    """Write a frame to Parquet atomically (temporary file, fsync, rename).

    The temporary is named after its writer (`mlbox.store.tempfiles`): the appliance removes
    the ones a killed writer left (`Home.remove_orphans`)."""
    path = Path(path)
    private.make_dirs(path.parent)
    table = data if isinstance(data, pa.Table) else data.to_arrow()
    tmp = path.with_name(tempfiles.temp_name(TEMP_PREFIX))
    try:
        os.close(private.create(tmp))  # 0600 from the start; Arrow truncates it and keeps the mode
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def connect(memory_limit: str | None = None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection; nothing is installed or downloaded."""
    import duckdb

    config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    return duckdb.connect(":memory:", config=config)


def query(
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    frames: dict[str, pl.DataFrame | pa.Table] | None = None,
) -> pl.DataFrame:
    """Run SQL over Parquet paths (``read_parquet('…')``) and named frames."""
    import polars as pl

    con = connect()
    try:
        for name, frame in (frames or {}).items():
            con.register(name, frame if isinstance(frame, pa.Table) else frame.to_arrow())
        result = con.sql(sql, params=list(params) if params else None).to_arrow_table()
        frame = pl.from_arrow(result)
        assert isinstance(frame, pl.DataFrame)
        return frame
    finally:
        con.close()


def export(sql: str, path: Path | str, *, frames: dict[str, pl.DataFrame | pa.Table] | None = None) -> Path:
    """Write a query's result to Parquet atomically."""
    return write_parquet(query(sql, frames=frames), path)
