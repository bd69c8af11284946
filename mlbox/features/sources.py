"""Sources as DuckDB relations, and the check of a source against its view.

`relation_sql` and `check_schema` are pure: the first says how DuckDB reads a
source (directly from the files, never through Python memory), the second
compares a source's column types with what the view declares. `describe`
is the only read: DuckDB reads Parquet footers / sniffs a CSV sample. `connect`
hands out the DuckDB sessions that check and read sources (one in-memory
database per configuration and process).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.features.definitions import (
    DTYPES,
    CsvSource,
    FeatureView,
    FrameSource,
    ParquetSource,
    Source,
    SqlSource,
)
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb

# DuckDB settings of the database that checks sources (apply) and reads them for a join:
# nothing may be fetched, so no extension beyond the built-in ones loads.
DESCRIBE_CONFIG: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
TIMESTAMPTZ_TYPES = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}
INT_FAMILIES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


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
    path = search_path(sources or [])
    con.execute(f"SET file_search_path = {sql_string(path or '')}")
    return con


def sql_string(text: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _has_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def relation_sql(source: Source) -> str:
    """The FROM-clause text that reads ``source`` in DuckDB."""
    if isinstance(source, ParquetSource):
        path = source.path
        if not _has_glob(path) and Path(path).is_dir():
            path = str(Path(path) / "**" / "*.parquet")
            return f"read_parquet({sql_string(path)}, union_by_name = true)"
        return f"read_parquet({sql_string(path)})"
    if isinstance(source, CsvSource):
        return f"read_csv({sql_string(source.path)}, header = true, delim = {sql_string(source.delimiter)})"
    if isinstance(source, SqlSource):
        return f"({source.query.strip().rstrip(';')})"
    raise InvalidInput("a frame source is read only after `apply` snapshots it", field="source")


def search_path(sources: list[Source]) -> str | None:
    """DuckDB ``file_search_path`` so SQL sources find files relative to their YAML file."""
    dirs = sorted({s.base_dir for s in sources if isinstance(s, SqlSource) and s.base_dir})
    return ",".join(dirs) or None


def check_exists(source: Source, where: str) -> None:
    if (
        isinstance(source, (ParquetSource, CsvSource))
        and not _has_glob(source.path)
        and not Path(source.path).exists()
    ):
        raise InvalidInput(f"{where}: source {source.path!r} does not exist", field="source")
    if isinstance(source, FrameSource):
        raise InvalidInput(f"{where}: a frame source must be applied before it is read", field="source")


def describe(con: duckdb.DuckDBPyConnection, source: Source, where: str) -> dict[str, str]:
    """Column name → DuckDB type of a source; InvalidInput when it cannot be read."""
    import duckdb

    check_exists(source, where)
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql(source)}").fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInput(f"{where}: cannot read source: {first}", field="source") from None
    return {str(r[0]): str(r[1]) for r in rows}


def family(duck_type: str) -> str:
    return duck_type.split("(")[0].strip().upper()


def is_timestamp(duck_type: str) -> bool | None:
    """True when tz-aware, False when naive, None when not a timestamp at all."""
    f = family(duck_type)
    if f in TIMESTAMPTZ_TYPES:
        return True
    if f in TIMESTAMP_TYPES:
        return False
    return None


def check_schema(view: FeatureView, join_keys: tuple[str, ...], schema: dict[str, str]) -> bool:
    """Raise InvalidInput naming the first mismatch; return whether timestamps are tz-aware."""
    where = f"feature view {view.name!r}"
    cols = ", ".join(schema) if len(schema) <= 12 else ", ".join(list(schema)[:12]) + ", …"
    for key in join_keys:
        if key not in schema:
            raise InvalidInput(
                f"{where}: join key {key!r} is not a column of its source ({cols})", field="join_keys"
            )
        if family(schema[key]) not in {
            "VARCHAR",
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
        }:
            raise InvalidInput(
                f"{where}: join key {key!r} has type {schema[key]}; join keys are integers or strings",
                field="join_keys",
            )
    aware: bool | None = None
    for fld, col in (
        ("timestamp_field", view.timestamp_field),
        ("created_timestamp_field", view.created_timestamp_field),
    ):
        if col is None:
            continue
        if col not in schema:
            raise InvalidInput(f"{where}: {fld} {col!r} is not a column of its source ({cols})", field=fld)
        tz = is_timestamp(schema[col])
        if tz is None:
            raise InvalidInput(f"{where}: {fld} {col!r} has type {schema[col]}, not a timestamp", field=fld)
        if aware is not None and tz != aware:
            raise InvalidInput(
                f"{where}: {view.timestamp_field!r} and {col!r} mix timezone-naive and timezone-aware "
                "timestamps",
                field=fld,
            )
        aware = tz
    for f in view.features:
        if f.name in join_keys:
            raise InvalidInput(f"{where}: feature {f.name!r} is also a join key", field="features")
        if f.name not in schema:
            raise InvalidInput(
                f"{where}: feature {f.name!r} is not a column of its source ({cols})", field="features"
            )
        if family(schema[f.name]) not in DTYPES[f.dtype]:
            raise InvalidInput(
                f"{where}: feature {f.name!r} is declared {f.dtype} but the source column is {schema[f.name]}",
                field="features",
            )
    return bool(aware)
