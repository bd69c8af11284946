"""Data versions: a content hash for files, folders and in-memory frames.

The digest identifies the data, not where it lies: the same bytes give the same
version wherever they are copied. Frames hash their Arrow IPC encoding, which
covers both values and schema.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlbox.store.errors import InvalidInput, NotFound

CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetVersion:
    digest: str
    source: str
    rows: int | None
    schema: dict[str, str]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _parquet_meta(path: Path) -> tuple[int | None, dict[str, str]]:
    if path.suffix != ".parquet":
        return None, {}
    import pyarrow.parquet as pq

    meta = pq.read_schema(path)
    return pq.ParquetFile(path).metadata.num_rows, {f.name: str(f.type) for f in meta}


def _arrow_version(table: Any, source: str) -> DatasetVersion:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest = hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    return DatasetVersion(digest, source, table.num_rows, {f.name: str(f.type) for f in table.schema})


def version_of(data: object, source: str | None = None) -> DatasetVersion:
    """Digest, rows and schema of a path, a polars/pandas frame, an Arrow table or a numpy array."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise NotFound(f"no such dataset file or folder: {path}", field="data")
        if path.is_dir():
            h = hashlib.sha256()
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                h.update(f.relative_to(path).as_posix().encode() + b"\0")
                h.update(_file_digest(f).encode())
            return DatasetVersion(h.hexdigest(), source or str(path.resolve()), None, {})
        rows, schema = _parquet_meta(path)
        return DatasetVersion(_file_digest(path), source or str(path.resolve()), rows, schema)
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        return _arrow_version(data.to_arrow(), source or "polars.DataFrame")  # type: ignore[attr-defined]
    if module == "pandas":
        import pyarrow as pa

        return _arrow_version(pa.Table.from_pandas(data), source or "pandas.DataFrame")
    if module == "pyarrow" and hasattr(data, "schema"):
        return _arrow_version(data, source or "pyarrow.Table")
    if module == "numpy":
        import numpy as np

        arr = np.ascontiguousarray(data)
        h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
        rows = int(arr.shape[0]) if arr.ndim else 1
        return DatasetVersion(
            h.hexdigest(), source or "numpy.ndarray", rows, {"dtype": arr.dtype.str, "shape": str(arr.shape)}
        )
    raise InvalidInput(
        f"cannot version a {type(data).__name__}: give a path, a polars/pandas frame, "
        "an Arrow table or a numpy array",
        field="data",
    )
