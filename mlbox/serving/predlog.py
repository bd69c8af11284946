"""The prediction log: every scored request appended to Parquet segments.

Layout (one folder per model and UTC day, for the monitoring service to scan
by window)::

    $MLBOX_HOME/tables/predictions/<model>/<yyyy-mm-dd>/seg-<n>.parquet

Invariants:

* `append` never blocks and never does I/O: it puts a tuple on a bounded
  deque. When the buffer is full the prediction is dropped and counted
  (``dropped``), which slows no response; sizing the buffer (and the flush
  interval) decides whether that ever happens.
* A background thread turns buffered entries into JSON text a little at a
  time, and every ``flush_s`` writes one segment per model and day,
  atomically (`write_parquet`: temporary file, fsync, rename), so a reader
  never sees half a segment.
* `close` writes everything still buffered: a clean shutdown loses nothing.
"""

from __future__ import annotations

import functools
import logging
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

_SEGMENT = re.compile(r"seg-(\d+)\.parquet$")


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


Prepared = tuple[str, str, int, float, float, bool, str, str]
"""An entry with its inputs and outputs already JSON text: what a segment row holds."""

PREPARE_EVERY_S = 0.05
PREPARE_CHUNK = 128


def prepare(entry: Entry) -> Prepared:
    rid, model, version, ts, latency, shadow, inputs, outputs = entry
    return (rid, model, version, ts, latency, shadow, to_json(inputs), to_json(outputs))


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
        """Load what the first write needs now (the appliance calls this once it serves)."""
        self._warm.set()

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
        """Turn buffered entries into JSON text, ``chunk`` at a time, yielding the GIL between chunks.

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
            time.sleep(0)
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
        for e in entries:
            day = datetime.fromtimestamp(e[3], UTC).strftime("%Y-%m-%d")
            groups[(e[1], day)].append(e)
        import pyarrow as pa

        from mlbox.store import tables

        for (model, day), rows in groups.items():
            table = pa.Table.from_pydict(
                {
                    "request_id": [r[0] for r in rows],
                    "model": [r[1] for r in rows],
                    "version": [r[2] for r in rows],
                    "ts": [int(r[3] * 1_000_000) for r in rows],
                    "latency_ms": [r[4] for r in rows],
                    "shadow": [r[5] for r in rows],
                    "inputs": [r[6] for r in rows],
                    "outputs": [r[7] for r in rows],
                },
                schema=schema(),
            )
            folder = self.root / model / day
            tables.write_parquet(table, folder / f"seg-{self._segment_number(folder):06d}.parquet")
            self.written += len(rows)

    def _segment_number(self, folder: Path) -> int:
        n = self._next_segment.get(folder)
        if n is None:
            existing = [
                int(m.group(1)) for p in folder.glob("seg-*.parquet") if (m := _SEGMENT.search(p.name))
            ]
            n = max(existing, default=0) + 1
        self._next_segment[folder] = n + 1
        return n


def read_predictions(
    root: Path, model: str | None = None, *, since: float | None = None, until: float | None = None
) -> pl.DataFrame:
    """Logged predictions (oldest first) as a polars frame, optionally for one model and a time window."""
    import polars as pl

    pattern = root / (model or "*") / "*" / "seg-*.parquet"
    if not any(root.glob(f"{model or '*'}/*/seg-*.parquet")):
        return pl.from_arrow(schema().empty_table())  # type: ignore[return-value]
    where = []
    params: list[Any] = [str(pattern)]
    if since is not None:
        where.append("ts >= to_timestamp(?)")
        params.append(since)
    if until is not None:
        where.append("ts < to_timestamp(?)")
        params.append(until)
    sql = "SELECT * FROM read_parquet(?, union_by_name = true)"
    if where:
        sql += " WHERE " + " AND ".join(where)
    from mlbox.store import tables

    return tables.query(sql + " ORDER BY ts, request_id", params)


def iter_models(root: Path) -> Iterable[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
