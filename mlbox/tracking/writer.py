"""The background metric writer: logging never waits for the disk.

`add` appends a point to an in-memory chunk per key and returns; a daemon
thread commits the chunks in one transaction every `interval` seconds (or as
soon as `batch` points wait). `flush()` returns once every point added before
it is committed; `close()` flushes and stops. The same thread refreshes the
run's heartbeat, so an idle but living run is never mistaken for a crashed one.

The buffer is bounded: past `max_buffer` points the caller waits, so a process
logging faster than the disk can take cannot run out of memory. A commit that
fails is re-raised in the caller's thread at its next call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mlbox.tracking.series import Chunk

Commit = Callable[[dict[str, Chunk]], None]


class MetricWriter:
    def __init__(
        self,
        commit: Commit,
        heartbeat: Callable[[], None],
        *,
        interval: float = 0.2,
        batch: int = 200_000,
        max_buffer: int = 2_000_000,
        heartbeat_s: float = 5.0,
    ) -> None:
        self._commit = commit
        self._heartbeat = heartbeat
        self._interval = interval
        self._batch = batch
        self._max_buffer = max_buffer
        self._heartbeat_s = heartbeat_s
        self._buf: dict[str, Chunk] = {}
        self._buffered = 0
        self._cond = threading.Condition()
        self._added = 0
        self._committed = 0
        self._error: BaseException | None = None
        self._closing = False
        self._flush_wanted = False
        self._thread = threading.Thread(target=self._loop, name="mlbox-metric-writer", daemon=True)
        self._thread.start()

    def add(self, key: str, step: int, ts: float, value: float) -> None:
        with self._cond:
            if self._error is not None or self._buffered >= self._max_buffer:
                self._wait_for_room()
            chunk = self._buf.get(key)
            if chunk is None:
                chunk = self._buf[key] = Chunk()
            chunk.append(step, ts, value)
            self._added += 1
            self._buffered += 1
            if self._buffered >= self._batch:
                self._cond.notify_all()

    def _wait_for_room(self) -> None:
        self._raise_pending()
        self._flush_wanted = True
        self._cond.notify_all()
        self._cond.wait_for(lambda: self._buffered < self._max_buffer or self._error is not None)
        self._raise_pending()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every point added so far is committed."""
        with self._cond:
            target = self._added
            self._flush_wanted = True
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._committed >= target or self._error is not None, timeout)
            self._raise_pending()
            if not done:
                raise TimeoutError(f"metric writer: {target - self._committed} points not yet durable")

    def close(self) -> None:
        if not self._thread.is_alive():
            with self._cond:
                self._raise_pending()
            return
        try:
            self.flush()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._added - self._committed

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closing or self._flush_wanted or self._buffered >= self._batch,
                    self._interval,
                )
                chunks, self._buf = self._buf, {}
                count, self._buffered = self._buffered, 0
                self._flush_wanted = False
                closing = self._closing
                self._cond.notify_all()  # wake callers blocked on a full buffer
            try:
                if chunks:
                    self._commit(chunks)
                    last_beat = time.monotonic()
                elif time.monotonic() - last_beat >= self._heartbeat_s:
                    self._heartbeat()
                    last_beat = time.monotonic()
            except BaseException as exc:  # surfaced in the caller's thread
                with self._cond:
                    self._error = exc
                    self._committed += count  # those points are lost; do not wait on them
                    self._cond.notify_all()
                continue
            with self._cond:
                self._committed += count
                self._cond.notify_all()
            if closing and not chunks:
                return
