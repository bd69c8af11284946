"""Writing a project's labeled tasks: Parquet, CSV, Label Studio JSON and JSON_MIN.

A file is written beside its destination under a temporary name and then
hard-linked into place, which fails when the destination exists: an export
never overwrites a file, even one that appears while it is being written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mlbox.store.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("parquet", "csv", "json", "json_min")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, made text by a leading apostrophe (OWASP's rule)."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def guess_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    raise InvalidInput(f"{path}: give --format, one of {', '.join(FORMATS)}", field="format")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float, bool)):
        return str(v)
    return msgspec.json.encode(v).decode()


def write_csv(table: dict[str, list[Any]], out: Path) -> None:
    """Columns of equal length as CSV, every text cell neutralised (`neutralise`) by Arrow's compute
    kernels (a million rows in a second, not a Python call per cell); nested values as JSON text."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    arrays = {}
    for name, values in table.items():
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([_cell(v) for v in values], pa.string())
        if pa.types.is_nested(arr.type) or pa.types.is_null(arr.type):
            arr = pa.array([None if v is None else _cell(v) for v in values], pa.string())
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            risky = pc.match_substring_regex(arr, r"^[=+\-@\t\r]")
            arr = pc.if_else(risky, pc.binary_join_element_wise("'", arr, ""), arr)
        arrays[neutralise(name)] = arr
    pacsv.write_csv(pa.table(arrays), out)


def write_csv_table(table: pa.Table, out: Path) -> None:
    """An Arrow table as CSV, neutralised like `write_csv`: nested or all-null columns become JSON
    text first (CSV has no nesting), then every text column goes through Arrow's kernels."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    arrays = {}
    for name, arr in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_nested(arr.type) or pa.types.is_null(arr.type):
            arr = pa.array([None if v is None else _cell(v) for v in arr.to_pylist()], pa.string())
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            risky = pc.match_substring_regex(arr, r"^[=+\-@\t\r]")
            arr = pc.if_else(risky, pc.binary_join_element_wise("'", arr, ""), arr)
        arrays[neutralise(name)] = arr
    pacsv.write_csv(pa.table(arrays), out)


def write_parquet_table(table: pa.Table, out: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, out)


def write_parquet(table: dict[str, list[Any]], out: Path) -> None:
    """Columns of equal length as Parquet (types inferred per column by Arrow; a column whose
    values differ in type is written as text, JSON for the non-strings)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def column(values: list[Any]) -> pa.Array:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types across tasks: kept as text
            return pa.array([None if v is None else _cell(v) for v in values], pa.string())

    pq.write_table(pa.table({c: column(v) for c, v in table.items()}), out)


def write_json(doc: Any, out: Path) -> None:
    out.write_bytes(msgspec.json.encode(doc))


def place(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write`` to a temporary file beside ``path``, then link it there (never over a file)."""
    if path.exists() or path.is_symlink():
        raise Conflict(f"{path} exists: an export never overwrites; choose another path", field="path")
    if not path.parent.is_dir():
        raise InvalidInput(f"{path.parent}: no such folder", field="path")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise Conflict(
                f"{path} exists: an export never overwrites; choose another path", field="path"
            ) from None
    finally:
        tmp.unlink(missing_ok=True)


def labelstudio_result(value: dict[str, Any]) -> list[dict[str, Any]]:
    """An mlbox value as a Label Studio ``result`` list (the inverse of `imports.from_labelstudio_result`)."""
    out: list[dict[str, Any]] = []
    if "label" in value or "labels" in value:
        choices = [value["label"]] if "label" in value else list(value["labels"])
        out.append(
            {"from_name": "label", "to_name": "data", "type": "choices", "value": {"choices": choices}}
        )
    for s in value.get("spans", []):
        out.append(
            {
                "from_name": "spans",
                "to_name": "data",
                "type": "labels",
                "value": {"start": s["start"], "end": s["end"], "labels": [s["label"]]},
            }
        )
    for b in value.get("boxes", []):
        out.append(
            {
                "from_name": "boxes",
                "to_name": "data",
                "type": "rectanglelabels",
                "value": {
                    "x": b["x"],
                    "y": b["y"],
                    "width": b["w"],
                    "height": b["h"],
                    "rectanglelabels": [b["label"]],
                },
            }
        )
    if "rating" in value:
        out.append(
            {"from_name": "rating", "to_name": "data", "type": "rating", "value": {"rating": value["rating"]}}
        )
    if "note" in value:
        out.append(
            {"from_name": "note", "to_name": "data", "type": "textarea", "value": {"text": [value["note"]]}}
        )
    return out
