"""The prediction log: every scored request appended to typed Parquet segments.

Layout (one folder per model and UTC day, for the monitoring service to scan
by window)::

    $MLBOX_HOME/tables/predictions/<model>/<yyyy-mm-dd>/rows-<n>.parquet
                                                         json-<n>.parquet  (only when needed)

Invariants:

* `append` never blocks and never does I/O: it puts a tuple on a bounded
  deque. When the buffer is full the prediction is dropped and counted
  (``dropped``), which slows no response; sizing the buffer (and the flush
  interval) decides whether that ever happens.
* ``rows-<n>.parquet`` holds one row per scored row with **typed columns**: ``request_id``,
  ``row``, ``version``, ``ts``, ``latency_ms``, ``shadow``, one column per input feature as
  ``<input>_<j>`` or by name, one per output as ``out:<name>[_<j>]``. A request is kept as
  the arrays it was served with (`prepare`: no copy, no per-row object); the writer thread
  concatenates them block by block and splits them into columns once per segment, so a
  batched request costs O(columns), not O(rows x Python objects).
* Requests whose values have no columns (images and other tensors past 2-D, ragged lists)
  go to ``json-<n>.parquet`` in `schema`'s JSON layout, so nothing is lost.
* Every ``flush_s`` the writer writes one segment per model and day, atomically (temporary
  file, fsync, rename), so a reader never sees half a segment.
* `close` writes everything still buffered: a clean shutdown loses nothing.
* Older logs are still read: ``seg-<n>.parquet`` (every request as JSON), alone or with the
  typed ``rows-<n>.parquet`` beside it (`log_files`, `read_predictions`).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

if TYPE_CHECKING:  # imported where used: every process builds a (never started) log with `Services`
    import polars as pl
    import pyarrow as pa

log = logging.getLogger("mlbox.serving.predlog")


@functools.cache
def schema() -> pa.Schema:
    """A segment's columns. ``inputs`` and ``outputs`` are JSON text: ``[[...row...], ...]`` for
    one tensor, ``{"name": [...], ...}`` for named inputs or columns, rows in request order."""
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("model", pa.string()),
            ("version", pa.int64()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("latency_ms", pa.float64()),
            ("shadow", pa.bool_()),
            ("inputs", pa.string()),
            ("outputs", pa.string()),
        ]
    )


Entry = tuple[str, str, int, float, float, bool, Any, Any]
"""(request_id, model, version, unix time, latency ms, shadow, inputs, outputs) as served."""

_SEGMENT = re.compile(r"^(?:seg|rows|json)-(\d+)\.parquet$")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "M":
            return np.datetime_as_string(value).tolist()
        if value.dtype.kind == "S":
            return [v.decode("utf-8", "replace") for v in value.ravel().tolist()]
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def to_json(value: Any) -> str:
    return _encoder.encode(_jsonable(value)).decode()


Typed = tuple[int, dict[str, np.ndarray]]
"""A request's rows and its typed columns (inputs by feature, outputs as ``out:<name>``)."""

Prepared = tuple[str, str, int, float, float, bool, "Typed | None", Any, Any]
"""An entry with its typed columns, or None and its inputs and outputs as served (kept for a
JSON segment: values Arrow cannot type, such as images)."""

OUT = "out:"
INPUT = "input"
"""The name a single unnamed input tensor's columns take (``input_0`` ...)."""


def _arrays(value: Any, default: str) -> dict[str, np.ndarray] | None:
    """One request's inputs or outputs as named 1-D or 2-D arrays (rows first), as served: no
    copy, no split into columns (that happens once per segment); None for what has no columns."""
    if type(value) is np.ndarray:  # the served shapes first: no attribute probing per request
        named: Any = {default: value}
    elif type(value) is dict:
        named = value
    elif hasattr(value, "columns") and hasattr(value, "__getitem__"):
        try:
            named = {str(c): np.asarray(value[c]) for c in value.columns}  # a pandas/polars frame
        except Exception:
            return None
    else:
        named = {default: value}
    out: dict[str, np.ndarray] = {}
    for name, item in named.items():
        a = item if type(item) is np.ndarray else np.asarray(item)
        if a.ndim not in (1, 2) or a.dtype.kind in "OV":
            return None  # images, ragged lists and other tensors go to a JSON segment
        out[name if type(name) is str else str(name)] = a
    return out


def typed(inputs: Any, outputs: Any) -> Typed | None:
    """A request's typed columns, or None (ragged, higher-dimensional, or not arrays)."""
    try:
        ins = _arrays(inputs, INPUT)
        outs = _arrays(outputs, "output")
    except (TypeError, ValueError):
        return None
    if ins is None or outs is None or not ins:
        return None
    for k, v in outs.items():
        ins[OUT + k] = v
    rows = -1
    for a in ins.values():
        if rows != len(a):
            if rows != -1:
                return None
            rows = len(a)
    return rows, ins


PREPARE_EVERY_S = 0.05
PREPARE_CHUNK = 32
YIELD_S = 0.0002


def _yield() -> None:
    """Let the event loop and the inference threads have the GIL between two steps of the writer.

    ``time.sleep(0)`` releases the GIL, but this thread can take it straight back when the
    thread it woke has not run yet, and that thread then waits out Python's switch interval
    (5 ms) to force its turn. A short real sleep hands the GIL over. Measured with the fast model
    at 2x its capacity (`scripts/bench/overload.py --only fast --rate 5000`, four interleaved
    pairs), against ``sleep(0)`` between steps of 128 requests: admitted p99 19.8 / 18.8 / 17.6 /
    21.2 -> 18.3 / 16.3 / 17.0 / 16.8 ms, 503 p99 9.5 / 9.1 / 9.1 / 11.3 -> 8.0 / 7.4 / 7.3 / 7.5 ms.
    With the writer's work dropped altogether the admitted p99 was 15-16 ms: what is left is its
    Python per request (`prepare`, `rows_table`), under the same GIL as the loop."""
    time.sleep(YIELD_S)


def prepare(entry: Entry) -> Prepared:
    """An entry's typed columns (a few microseconds: no copy, no per-row object)."""
    rid, model, version, ts, latency, shadow, inputs, outputs = entry
    columns = typed(inputs, outputs)
    if columns is None:
        return (rid, model, version, ts, latency, shadow, None, inputs, outputs)
    return (rid, model, version, ts, latency, shadow, columns, None, None)


class PredictionLog:
    """The writer of one home's prediction log; its thread starts with `start` or the first `append`."""

    def __init__(self, root: Path, *, flush_s: float = 1.0, max_buffer: int = 200_000) -> None:
        self.root = root
        self.flush_s = flush_s
        self.max_buffer = max_buffer
        self.dropped = 0
        self.written = 0
        self._buffer: deque[Entry] = deque()
        self._prepared: list[Prepared] = []
        self._next_segment: dict[Path, int] = {}
        self._wake = threading.Event()
        self._warm = threading.Event()
        self.warmed = threading.Event()
        """Set once the writer has paid its first-use imports (`warm`)."""
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread (once; safe from any thread)."""
        with self._start_lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="mlbox-predlog", daemon=True)
                self._thread.start()

    def append(self, entry: Entry) -> None:
        """Buffer one prediction (from any thread); drops it when the buffer is full."""
        if self._thread is None:
            self.start()
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append(entry)

    def warm(self) -> None:
        """Start the writer and load what its first write needs now (`warmed` says when): the
        appliance calls this once its models are loaded, before it announces itself."""
        self._warm.set()
        self.start()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write what is buffered now; returns the rows written."""
        with self._write_lock:
            self._prepare(chunk=None)
            prepared, self._prepared = self._prepared, []
            if prepared:
                self._write(prepared)
            return len(prepared)

    def _prepare(self, chunk: int | None) -> None:
        """Take buffered entries' typed columns (`prepare`), ``chunk`` at a time, yielding the GIL
        between chunks.

        The writer converts a little every `PREPARE_EVERY_S` rather than all at once per
        segment: a burst of conversion holding the GIL showed as p99 spikes of the event loop
        and the inference threads this thread shares the process with.
        """
        while self._buffer:
            for _ in range(chunk or PREPARE_CHUNK):
                try:
                    entry = self._buffer.popleft()
                except IndexError:
                    break
                self._prepared.append(prepare(entry))
            _yield()
            if chunk is not None:
                return

    def close(self) -> None:
        """Stop the writer and write everything still buffered."""
        self._stop.set()
        self._wake.set()
        with self._start_lock:
            if self._thread is not None:
                self._thread.join(timeout=60)
                self._thread = None
        self.flush()

    def _run(self) -> None:
        # pyarrow imports pandas on its first conversion (~0.3 s holding the GIL): pay that once the
        # appliance is up (`warm`) or traffic starts, not in the middle of it at the first flush
        while not self._buffer and not self._warm.is_set() and not self._stop.wait(0.05):
            pass
        import pyarrow as pa

        pa.array(["warm"], type=pa.string())
        self.warmed.set()
        last_write = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(PREPARE_EVERY_S)
            try:
                if self._wake.is_set() or time.monotonic() - last_write >= self.flush_s:
                    self._wake.clear()
                    last_write = time.monotonic()
                    self.flush()
                else:
                    with self._write_lock:
                        while self._buffer and not self._stop.is_set():
                            self._prepare(chunk=PREPARE_CHUNK)
            except Exception:  # a full disk must not kill the writer; the next pass retries new rows
                log.exception("writing the prediction log failed")

    def _write(self, entries: list[Prepared]) -> None:
        groups: dict[tuple[str, str], list[Prepared]] = defaultdict(list)
        days: dict[int, str] = {}  # UTC day number -> its folder name: one strftime per day
        for e in entries:
            number = int(e[3] // 86400)
            day = days.get(number)
            if day is None:
                day = days[number] = datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")
            groups[(e[1], day)].append(e)
        import pyarrow as pa

        from mlbox.store import tables

        for (model, day), rows in groups.items():
            folder = self.root / model / day
            number = self._segment_number(folder)
            untyped = [r for r in rows if r[6] is None]
            try:
                typed_table = rows_table(rows)
            except Exception:  # values Arrow cannot store typed: kept as JSON instead, nothing lost
                log.exception("typing the prediction log of %s failed; kept as JSON", model)
                typed_table, untyped = None, rows
            if typed_table is not None:
                write_rows(typed_table, folder / f"rows-{number:06d}.parquet")
            if untyped:
                table = pa.Table.from_pydict(
                    {
                        "request_id": [r[0] for r in untyped],
                        "model": [r[1] for r in untyped],
                        "version": [r[2] for r in untyped],
                        "ts": [int(r[3] * 1_000_000) for r in untyped],
                        "latency_ms": [r[4] for r in untyped],
                        "shadow": [r[5] for r in untyped],
                        "inputs": [to_json(r[7]) for r in untyped],
                        "outputs": [to_json(r[8]) for r in untyped],
                    },
                    schema=schema(),
                )
                tables.write_parquet(table, folder / f"json-{number:06d}.parquet")
            self.written += len(rows)

    def _segment_number(self, folder: Path) -> int:
        n = self._next_segment.get(folder)
        if n is None:
            existing = [int(m.group(1)) for p in folder.glob("*-*.parquet") if (m := _SEGMENT.search(p.name))]
            n = max(existing, default=0) + 1
        self._next_segment[folder] = n + 1
        return n


COMPRESSION = "snappy"


def write_rows(table: pa.Table, path: Path) -> None:
    """`mlbox.store.tables.write_parquet` (temporary file, fsync, rename) with dictionary encoding
    for text columns only: trying it on every float column of random-looking features was half
    of a batched request's writing time, for no smaller file. Snappy, not zstd: features
    compress little either way (100-row requests of 20 random floats: 17.9 kB a request against
    zstd's 16.8 kB, 21.6 kB plain), and zstd took 64-112 µs of CPU a request to snappy's 27-36,
    CPU the scoring threads of the same process share."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlbox.store import private, tempfiles
    from mlbox.store.tables import TEMP_PREFIX

    private.make_dirs(path.parent)
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    tmp = path.with_name(tempfiles.temp_name(TEMP_PREFIX))
    try:
        os.close(private.create(tmp))
        pq.write_table(table, tmp, compression=COMPRESSION, use_dictionary=text)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _layout(columns: dict[str, np.ndarray]) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    return tuple((name, a.shape[1:], a.dtype.kind) for name, a in columns.items())


COPY_CHUNK = 64
"""Requests whose blocks one step of `_columns` copies; the writer yields the GIL between steps."""


def _columns(
    name: str, blocks: list[np.ndarray], starts: np.ndarray, total: int
) -> Iterable[tuple[str, np.ndarray]]:
    """One value's blocks (a request's rows each) as its columns over all ``total`` rows: 1-D
    blocks as one column ``name``, 2-D ones as ``name_<j>``, each column contiguous.

    The blocks are copied straight into a column-major array, transposed block by block (a
    request's block fits in cache), ``COPY_CHUNK`` requests per step, and the thread yields the
    GIL between steps: one ``np.concatenate`` and one transpose of a whole segment (~50 MB at
    2,000 100-row requests a second) held the GIL for tens of milliseconds, and the event loop
    and the inference thread of the same process waited that long (the 100-row p99)."""
    first = blocks[0]
    dtype = first.dtype if len(blocks) == 1 else np.result_type(*{b.dtype for b in blocks})
    if first.ndim == 1:
        flat = np.empty(total, dtype=dtype)
        for a in range(0, len(blocks), COPY_CHUNK):
            chunk = blocks[a : a + COPY_CHUNK]
            end = int(starts[a + len(chunk)]) if a + len(chunk) < len(blocks) else total
            np.concatenate(chunk, out=flat[int(starts[a]) : end])
            _yield()
        yield name, flat
        return
    by_column = np.empty((first.shape[1], total), dtype=dtype)  # Arrow copies a strided column slowly
    for a in range(0, len(blocks), COPY_CHUNK):
        chunk = blocks[a : a + COPY_CHUNK]
        end = int(starts[a + len(chunk)]) if a + len(chunk) < len(blocks) else total
        np.concatenate([b.T for b in chunk], axis=1, out=by_column[:, int(starts[a]) : end])
        _yield()
    for j in range(by_column.shape[0]):
        yield f"{name}_{j}", by_column[j]


def _arrow(values: np.ndarray) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values.tolist()], pa.string())


def rows_table(rows: list[Prepared]) -> pa.Table | None:
    """The typed rows of one segment's predictions (those that have typed columns).

    Requests with the same layout (names, widths, kinds: nearly always all of them) are
    concatenated block by block, then split into columns once; per-request values (id, version,
    time, latency, shadow) are repeated by Arrow's ``take``, so a request costs the same few
    microseconds whatever its rows: no Python object per row. Layouts that differ are separate
    tables joined with nulls where a column is missing."""
    import pyarrow as pa

    groups: dict[Any, list[Prepared]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r[6] is not None:
            groups[_layout(r[6][1])].append(r)
        if i % PREPARE_CHUNK == PREPARE_CHUNK - 1:
            _yield()  # ~2 us a request in bytecode
    if not groups:
        return None
    parts = []
    for layout, kept in groups.items():
        counts = np.fromiter((r[6][0] for r in kept), np.int64, len(kept))  # type: ignore[index]
        which = pa.array(np.repeat(np.arange(len(kept)), counts))
        starts = np.cumsum(counts) - counts
        total = int(counts.sum())

        def per_request(values: Any, kind: pa.DataType, which: pa.Array = which) -> pa.Array:
            return pa.array(values, kind).take(which)

        data: dict[str, Any] = {
            "request_id": per_request([r[0] for r in kept], pa.string()),
            "row": pa.array(np.arange(total, dtype=np.int64) - np.repeat(starts, counts)),
            "version": per_request([r[2] for r in kept], pa.int64()),
            "ts": per_request([int(r[3] * 1_000_000) for r in kept], pa.timestamp("us", tz="UTC")),
            "latency_ms": per_request([r[4] for r in kept], pa.float64()),
            "shadow": per_request([r[5] for r in kept], pa.bool_()),
        }
        for name, _, _ in layout:
            blocks = [r[6][1][name] for r in kept]  # type: ignore[index]
            for column, values in _columns(name, blocks, starts, total):
                data[column] = _arrow(values)
        parts.append(pa.table(data))
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables(parts, promote_options="permissive")


def log_files(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """One model's log files under ``folder`` (its day folders), oldest first, as
    (typed rows files, JSON segments that hold every request, JSON remainders).

    Three generations share the layout: ``seg-<n>`` alone (JSON only, the oldest), ``seg-<n>``
    with ``rows-<n>`` beside it (the same requests twice: JSON for all, typed for those that
    could be), and now ``rows-<n>`` with, when some requests could not be typed, ``json-<n>``
    holding those alone."""
    typed: list[Path] = []
    whole: list[Path] = []
    rest: list[Path] = []
    days = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    for day in days:
        names = {p.name for p in day.iterdir()}
        for name in sorted(names):
            m = _SEGMENT.search(name)
            if m is None:
                continue
            kind = name.split("-", 1)[0]
            if kind == "rows":
                typed.append(day / name)
            elif kind == "seg":
                whole.append(day / name)
            else:
                rest.append(day / name)
    return typed, whole, rest


def _groups(names: list[str]) -> dict[str, list[str]]:
    """Typed columns back to the values they came from: ``x_0, x_1`` -> ``x`` (a 2-D one).

    Only a full run ``_0`` to ``_k`` of two or more columns is a 2-D value: a lone ``output_0``
    is the 1-D output of that name (OIP names outputs so), not a one-column ``output``."""
    split: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        base, sep, idx = name.rpartition("_")
        if sep and idx.isdigit():
            split.setdefault(base, []).append((int(idx), name))
    two_d = {
        base: [name for _, name in sorted(cols)]
        for base, cols in split.items()
        if len(cols) >= 2 and sorted(i for i, _ in cols) == list(range(len(cols)))
    }
    member = {name: base for base, cols in two_d.items() for name in cols}
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(member.get(name, name), []).append(name)
    return out


def _values_json(request: dict[str, Any], groups: dict[str, list[str]], default: str) -> str:
    """One request's values in the JSON an older segment held (a bare list for the default name)."""
    named: dict[str, Any] = {}
    for name, cols in groups.items():
        if all(request[c] is None or all(v is None for v in request[c]) for c in cols):
            continue  # a column of another layout in the same files
        if len(cols) == 1 and cols[0] == name:
            named[name] = request[name]
        else:
            named[name] = [list(row) for row in zip(*(request[c] for c in cols), strict=True)]
    if list(named) == [default]:
        return to_json(named[default])
    return to_json(named)


def _request_rows(files: list[Path], model: str, meta_only: bool) -> pl.DataFrame:
    """Typed rows files as one row per request in `schema`'s columns, inputs and outputs as the
    JSON an older segment held (null with ``meta_only``)."""
    import polars as pl

    scan = pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed")
    meta = ["request_id", "version", "ts", "latency_ms", "shadow"]
    if meta_only:
        frame = scan.filter(pl.col("row") == 0).select(meta).collect()
        return frame.with_columns(
            pl.lit(model).alias("model"),
            pl.lit(None, pl.String).alias("inputs"),
            pl.lit(None, pl.String).alias("outputs"),
        ).select(schema().names)
    names = [n for n in scan.collect_schema().names() if n not in (*meta, "row")]
    grouped = (
        scan.sort(["ts", "request_id", "row"])
        .group_by([*meta], maintain_order=True)
        .agg([pl.col(n) for n in names])
        .collect()
    )
    ins = _groups([n for n in names if not n.startswith(OUT)])
    outs = _groups([n[len(OUT) :] for n in names if n.startswith(OUT)])
    inputs, outputs = [], []
    for request in grouped.iter_rows(named=True):
        inputs.append(_values_json(request, ins, INPUT))
        shown = {n[len(OUT) :]: v for n, v in request.items() if n.startswith(OUT)}
        outputs.append(_values_json(shown, outs, "output"))
    return (
        grouped.select(meta)
        .with_columns(
            pl.lit(model).alias("model"),
            pl.Series("inputs", inputs, pl.String),
            pl.Series("outputs", outputs, pl.String),
        )
        .select(schema().names)
    )


def read_predictions(
    root: Path,
    model: str | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    values: bool = True,
) -> pl.DataFrame:
    """Logged requests (oldest first), one row each in `schema`'s columns, optionally for one
    model and a time window. Requests written typed get their ``inputs`` and ``outputs`` back as
    the JSON older segments held (a Python object per value: with ``values=False`` they are null,
    for a reader that wants requests alone; `mlbox.monitoring.logframe` reads the columns)."""
    import polars as pl

    empty: pl.DataFrame = pl.from_arrow(schema().empty_table())  # type: ignore[assignment]
    parts: list[pl.LazyFrame] = []
    for name in [model] if model is not None else iter_models(root):
        typed_files, whole, rest = log_files(root / name)
        covered = {p.name[len("seg-") :] for p in whole}
        typed_files = [p for p in typed_files if p.name[len("rows-") :] not in covered]
        if whole or rest:
            parts.append(read_segments(whole + rest).lazy())
        if typed_files:
            parts.append(_request_rows(typed_files, name, meta_only=not values).lazy())
    if not parts:
        return empty
    frame = pl.concat([empty.lazy(), *parts], how="vertical_relaxed")
    if since is not None:
        frame = frame.filter(pl.col("ts") >= datetime.fromtimestamp(since, UTC))
    if until is not None:
        frame = frame.filter(pl.col("ts") < datetime.fromtimestamp(until, UTC))
    return frame.sort(["ts", "request_id"], maintain_order=True).collect()


def read_segments(files: list[Path]) -> pl.DataFrame:
    """The rows of these JSON segments (an empty frame of `schema` for none)."""
    import polars as pl

    if not files:
        return pl.from_arrow(schema().empty_table())  # type: ignore[return-value]
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def iter_models(root: Path) -> Iterable[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
