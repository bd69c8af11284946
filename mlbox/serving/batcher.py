"""Dynamic batching: many small requests become few model calls, off the event loop.

One `Batcher` per served model version owns one inference thread. Requests
are appended to a bounded queue from the event loop (`submit` never awaits
and never blocks on the model); the thread takes everything that queued
while the model was busy (up to ``max_batch_size`` rows, optionally waiting
``max_delay_s`` for more), concatenates the inputs, calls the model once,
splits the outputs by each request's row count and hands all results back
to the loop in one ``call_soon_threadsafe``. Per request that is a lock and
a deque append on the way in and a ``set_result`` on the way out.

Invariants:

* a full queue raises `Overloaded` at once (the caller answers 503), it
  never grows without bound;
* a queue that stands past its target (`mlbox.serving.sojourn`: CoDel on
  the time each request waited) answers 503 to the requests dequeued after
  waiting too long instead of scoring them late, refuses newcomers that
  would wait too long behind it, and keeps its batches within the target;
* a batch that fails, or whose inputs or outputs cannot be split by row, is
  retried request by request, so one bad request fails alone;
* `close` stops new submissions (they raise `Retired`) and drains what is
  queued before the thread ends: a hot swap finishes in-flight work on the
  old version;
* a request of more than ``max_batch_size`` rows (it would form a batch on
  its own anyway) goes to a second, bulk lane with its own thread (started
  on the first such request): it never waits out ``max_delay_s`` and never
  holds the single-row traffic behind its model call. The two lanes may call
  the model at the same time (the compiled trees release the GIL while they
  walk, so the lanes really run side by side); each thread gets ``on_start``,
  and ``on_exit`` runs once both have drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlbox.serving.errors import ModelFailed, Overloaded, Retired
from mlbox.serving.sojourn import SojournControl
from mlbox.store.errors import MlboxError

log = logging.getLogger("mlbox.serving")

Outputs = dict[str, np.ndarray]
"""Named output arrays, each with the batch along its first dimension."""


OnDone = Callable[[Any], None]
"""Called in the inference thread with a request's outputs or its exception."""


class Pending:
    __slots__ = ("future", "inputs", "loop", "on_done", "queued_at", "rows")

    def __init__(
        self,
        inputs: Any,
        rows: int,
        future: asyncio.Future[Outputs] | None,
        loop: asyncio.AbstractEventLoop | None,
        on_done: OnDone | None = None,
    ) -> None:
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.loop = loop
        self.on_done = on_done
        self.queued_at = time.monotonic()


def concat_inputs(parts: Sequence[Any]) -> Any:
    """One batch from several requests' inputs (arrays, or dicts of arrays with the same keys)."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    return np.concatenate(parts)


def split_outputs(outputs: Outputs, rows: Sequence[int]) -> list[Outputs] | None:
    """Each request's rows of the batch outputs; None when an output is not one row per input row."""
    total = sum(rows)
    for arr in outputs.values():
        if arr.ndim == 0 or arr.shape[0] != total:
            return None
    result: list[Outputs] = []
    start = 0
    for n in rows:
        end = start + n
        result.append({k: v[start:end] for k, v in outputs.items()})
        start = end
    return result


def _deliver(items: Sequence[Pending], results: Sequence[Outputs | BaseException]) -> None:
    for item, res in zip(items, results, strict=True):
        fut = item.future
        if fut is None or fut.done():  # timed out or cancelled meanwhile
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)


class Batcher:
    def __init__(
        self,
        predict: Callable[[Any], Outputs],
        *,
        name: str,
        max_batch_size: int = 64,
        max_delay_s: float = 0.0,
        max_queue: int = 1024,
        retry_after_s: int = 1,
        on_batch: Callable[[int, float], None] | None = None,
        on_start: Callable[[], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._predict = predict
        self._max_rows = max(1, max_batch_size)
        self._max_delay = max(0.0, max_delay_s)
        self._max_queue = max(1, max_queue)
        self._retry_after = retry_after_s
        self._on_batch = on_batch
        self._on_start = on_start
        self._on_exit = on_exit
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Pending] = deque()
        self._bulk: deque[Pending] = deque()  # requests of more than max_batch_size rows
        self._bulk_thread: threading.Thread | None = None
        self._queued_rows = 0
        self.control = SojournControl(max_delay_s=self._max_delay)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"mlbox-infer-{name}", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the batches being computed)."""
        return len(self._queue) + len(self._bulk)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, inputs: Any, rows: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Outputs]:
        """Queue one request; the future resolves on ``loop`` with this request's outputs."""
        fut: asyncio.Future[Outputs] = loop.create_future()
        self._enqueue(Pending(inputs, rows, fut, loop))
        return fut

    def submit_detached(self, inputs: Any, rows: int, on_done: OnDone) -> None:
        """Queue work nobody awaits (a shadow copy): ``on_done`` runs in the inference
        thread, so the result is kept even when the caller's event loop has ended."""
        self._enqueue(Pending(inputs, rows, None, None, on_done))

    def _enqueue(self, item: Pending) -> None:
        with self._cond:
            if self._closed:
                raise Retired(self.name)
            waiting = len(self._queue) + len(self._bulk)
            if waiting >= self._max_queue:
                raise Overloaded(
                    f"model {self.name} has {waiting} requests waiting; retry later",
                    retry_after_s=self._retry_after,
                )
            if item.rows <= self._max_rows and not self.control.admit_new(
                self._queued_rows, time.monotonic(), self._max_rows
            ):
                raise Overloaded(
                    f"model {self.name} answers slower than it is asked: {self._queued_rows} rows are"
                    f" queued ahead, more than it scores within {self.control.target() * 1000:.0f} ms;"
                    " retry later",
                    retry_after_s=self._retry_after,
                )
            if item.rows > self._max_rows:
                self._bulk.append(item)
                if self._bulk_thread is None:
                    self._bulk_thread = threading.Thread(
                        target=self._run_bulk, name=f"mlbox-infer-bulk-{self.name}", daemon=True
                    )
                    self._bulk_thread.start()
            else:
                self._queue.append(item)
                self._queued_rows += item.rows
            self._cond.notify_all()

    def close(self, *, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Refuse new work, finish what is queued, end the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the inference thread ----------------------------------------------------

    def _take_bulk(self) -> Pending | None:
        with self._cond:
            while not self._bulk:
                if self._closed:
                    return None
                self._cond.wait()
            return self._bulk.popleft()

    def _run_bulk(self) -> None:
        self._prepare_thread()
        while True:
            item = self._take_bulk()
            if item is None:
                return
            if item.future is not None and item.future.done():
                continue
            try:
                result = self._one(item)
            except BaseException as exc:  # never let the thread die with requests waiting
                log.exception("model %s: bulk request failed unexpectedly", self.name)
                result = exc
            self._hand_back([item], [result])

    def _prepare_thread(self) -> None:
        if self._on_start is not None:  # per-thread settings of the model's framework
            try:
                self._on_start()
            except Exception:
                log.exception("model %s: preparing its inference thread failed", self.name)

    def _take(self) -> tuple[list[Pending], list[Pending]] | None:
        """The next batch and the requests refused on the way (waited past the queue's target)."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            if self._max_delay > 0:
                deadline = self._queue[0].queued_at + self._max_delay
                while self._queued_rows < self._max_rows and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            now = time.monotonic()
            control = self.control
            refused: list[Pending] = []
            while self._queue and not control.keep(
                now - self._queue[0].queued_at, len(self._queue), now, self._max_rows
            ):
                item = self._queue.popleft()
                self._queued_rows -= item.rows
                refused.append(item)
            if not self._queue:
                return [], refused
            cap = control.batch_cap(self._max_rows)
            batch = [self._queue.popleft()]
            rows = batch[0].rows
            while self._queue and rows + self._queue[0].rows <= cap:
                item = self._queue.popleft()
                batch.append(item)
                rows += item.rows
            self._queued_rows -= rows
            control.taken(rows, now)
            return batch, refused

    def _run(self) -> None:
        self._prepare_thread()
        while True:
            taken = self._take()
            if taken is None:
                with self._cond:
                    bulk = self._bulk_thread
                if bulk is not None:  # closed: no new bulk thread starts; let it drain first
                    bulk.join()
                if self._on_exit is not None:  # drained: what the model held (a GPU) can go
                    try:
                        self._on_exit()
                    except Exception:
                        log.exception("model %s: releasing its resources failed", self.name)
                return
            batch, refused = taken
            if refused:
                self._refuse(refused)
            live = [item for item in batch if item.future is None or not item.future.done()]
            if not live:
                continue
            start = time.monotonic()
            try:
                results = self._compute(live)
            except BaseException as exc:  # never let the thread die with requests waiting
                log.exception("model %s: batch failed unexpectedly", self.name)
                results = [exc] * len(live)
            done = time.monotonic()
            with self._cond:
                self.control.observe(sum(item.rows for item in live), done - start, done)
            self._hand_back(live, results)

    def _refuse(self, items: list[Pending]) -> None:
        """Answer 503 to requests that waited past the queue's target (see `mlbox.serving.sojourn`)."""
        now = time.monotonic()
        oldest = max(now - item.queued_at for item in items)
        exc = Overloaded(
            f"model {self.name} answers slower than it is asked: {len(items)} requests waited up to"
            f" {oldest * 1000:.0f} ms in its queue, past the {self.control.target() * 1000:.0f} ms"
            " its answers allow; retry later",
            retry_after_s=self._retry_after,
        )
        live = [item for item in items if item.future is None or not item.future.done()]
        if live:
            self._hand_back(live, [exc] * len(live))

    def _call(self, inputs: Any, rows: int) -> Outputs:
        start = time.perf_counter()
        try:
            return self._predict(inputs)
        finally:
            if self._on_batch is not None:
                self._on_batch(rows, time.perf_counter() - start)

    def _one(self, item: Pending) -> Outputs | BaseException:
        try:
            return self._call(item.inputs, item.rows)
        except Exception as exc:
            return _model_error(self.name, exc)

    def _compute(self, live: list[Pending]) -> list[Outputs | BaseException]:
        if len(live) == 1:
            return [self._one(live[0])]
        rows = [item.rows for item in live]
        try:
            inputs = concat_inputs([item.inputs for item in live])
        except (ValueError, TypeError, KeyError):  # shapes that do not stack: score one by one
            return [self._one(item) for item in live]
        try:
            outputs = self._call(inputs, sum(rows))
        except Exception:
            return [self._one(item) for item in live]
        parts = split_outputs(outputs, rows)
        if parts is None:
            return [self._one(item) for item in live]
        return list(parts)

    def _hand_back(self, live: list[Pending], results: Sequence[Outputs | BaseException]) -> None:
        if any(item.on_done is not None for item in live):
            awaited: list[Pending] = []
            awaited_results: list[Outputs | BaseException] = []
            for item, res in zip(live, results, strict=True):
                if item.on_done is not None:
                    try:
                        item.on_done(res)
                    except Exception:  # a callback's failure must not stop the model's thread
                        log.exception("serving: completion callback of %s failed", self.name)
                else:
                    awaited.append(item)
                    awaited_results.append(res)
            if not awaited:
                return
            live, results = awaited, awaited_results
        loop = live[0].loop
        groups: list[
            tuple[asyncio.AbstractEventLoop | None, Sequence[Pending], Sequence[Outputs | BaseException]]
        ]
        if all(item.loop is loop for item in live):
            groups = [(loop, live, results)]
        else:  # requests from several event loops (several apps in one process): one hand-off each
            by_loop: dict[
                int, tuple[asyncio.AbstractEventLoop | None, list[Pending], list[Outputs | BaseException]]
            ] = {}
            for item, res in zip(live, results, strict=True):
                entry = by_loop.setdefault(id(item.loop), (item.loop, [], []))
                entry[1].append(item)
                entry[2].append(res)
            groups = list(by_loop.values())
        for target, items, outcome in groups:
            if target is None:
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                target.call_soon_threadsafe(_deliver, items, outcome)


def _model_error(name: str, exc: Exception) -> BaseException:
    if isinstance(exc, MlboxError):
        return exc
    log.warning("model %s raised %s: %s", name, type(exc).__name__, exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ModelFailed(
        f"model {name} could not score these inputs: {type(exc).__name__}: {text}"[:500], field="inputs"
    )
