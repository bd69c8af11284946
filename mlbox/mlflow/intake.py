"""Metric points MLflow's REST client sent, committed in batches by one thread.

MLflow's client logs one HTTP request per ``log_metric`` call and waits for
each answer. Committing every request on its own would pay one ``fsync``
(``synchronous=FULL``) per point, which is what makes MLflow's own server
slow; mlbox's Python client never does that either (`mlbox.tracking.writer`:
logging never waits for the disk). So the MLflow routes validate a request's
points, check that its run exists, hand them to this intake and answer; one
thread commits everything waiting, for all runs, in one transaction every
`interval` seconds (each commit also refreshes the runs' heartbeats).

What that gives up, and what it keeps:

* An answered point is committed within `interval` (0.1 s), not before the
  answer: a power loss or ``kill -9`` of the appliance in that window loses it
  (a clean stop flushes, see `close`). That is the same promise mlbox's own
  client makes, and MLflow's ``log_metric(..., synchronous=False)``.
* Reads through the MLflow API see every point answered before them: each
  read route calls `flush` first. mlbox's other readers (``/api/v1``, the TUI,
  ``mlbox runs ls``) see them at the next commit.
* A commit that fails (a full disk) keeps its points and retries them; until
  one succeeds, `add` raises that error, so no further point is acknowledged,
  and the buffer is bounded (`max_buffer`).
* Points of a run purged between its check and the commit are dropped with a
  log line: the run they belonged to is gone. (The fast path checks a run it
  has found at most once a second, `mlbox.api.mlflow_fast.RUN_CHECK_S`; a run
  being logged to is never purged by ``mlbox gc``, which takes runs deleted
  days ago.)
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable

from mlbox.store.errors import NotFound
from mlbox.tracking.series import Chunk
from mlbox.tracking.service import TrackingService

log = logging.getLogger("mlbox.mlflow.intake")

Point = tuple[str, int, float, float]
"""(key, step, timestamp in seconds, value), already validated."""


class MetricIntake:
    def __init__(
        self, tracking: TrackingService, *, interval: float = 0.1, max_buffer: int = 2_000_000
    ) -> None:
        self.tracking = tracking
        self.interval = interval
        self.max_buffer = max_buffer
        self._buf: dict[int, dict[str, Chunk]] = {}
        self._buffered = 0
        self._added = 0
        self._committed = 0
        self._error: BaseException | None = None
        self._flush_wanted = False
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="mlbox-mlflow-intake", daemon=True)
        self._thread.start()

    def room(self, n: int) -> bool:
        """Whether ``n`` more points fit now (the event loop asks before `add`, which may wait)."""
        return self._error is None and self._buffered + n <= self.max_buffer and not self._closing

    def add(self, run_id: int, points: Iterable[Point]) -> None:
        """Queue validated points of an existing run; waits while the buffer is full."""
        with self._cond:
            self._raise_pending()
            if self._buffered >= self.max_buffer:
                self._flush_wanted = True
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._buffered < self.max_buffer or self._error is not None)
                self._raise_pending()
            series = self._buf.get(run_id)
            if series is None:
                series = self._buf[run_id] = {}
            n = 0
            for key, step, ts, value in points:
                chunk = series.get(key)
                if chunk is None:
                    chunk = series[key] = Chunk()
                chunk.append(step, ts, value)
                n += 1
            if self._buffered == 0 and n:
                self._cond.notify_all()  # wakes the idle thread to start an interval
            self._buffered += n
            self._added += n

    def flush(self, timeout: float | None = 30.0) -> None:
        """Return once every point added before the call is committed (or raise why not)."""
        with self._cond:
            target = self._added
            if self._committed >= target:
                self._raise_pending()
                return
            self._flush_wanted = True
            self._cond.notify_all()
            done = self._cond.wait_for(
                lambda: self._committed >= target or self._error is not None or not self._thread.is_alive(),
                timeout,
            )
            self._raise_pending()
            if not done or self._committed < target:
                raise TimeoutError(f"{target - self._committed} metric points not yet committed")

    def close(self) -> None:
        """Commit what waits and stop the thread (the appliance's shutdown)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=60)

    @property
    def pending(self) -> int:
        with self._cond:
            return self._added - self._committed

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                # idle, it sleeps until a point comes; then it gathers for one interval
                self._cond.wait_for(lambda: self._closing or self._flush_wanted or self._buffered > 0)
                self._cond.wait_for(lambda: self._closing or self._flush_wanted, self.interval)
                batch, self._buf = self._buf, {}
                count = self._buffered
                self._flush_wanted = False
                closing = self._closing
            if batch:
                try:
                    self._commit(batch)
                except BaseException as exc:  # kept and retried; callers see it at their next add
                    log.warning("committing %d metric points failed (retrying): %s", count, exc)
                    with self._cond:
                        for run_id, series in batch.items():  # back in front of what came since
                            newer = self._buf.get(run_id, {})
                            for key, chunk in newer.items():
                                series.setdefault(key, Chunk()).extend(chunk)
                            self._buf[run_id] = series
                        self._error = exc
                        self._cond.notify_all()
                    if closing:
                        return
                    self._cond_wait_retry()
                    continue
            with self._cond:
                self._buffered -= count
                self._committed += count
                self._error = None
                self._cond.notify_all()
            if closing:
                return

    def _cond_wait_retry(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closing, max(self.interval, 1.0))

    def _commit(self, batch: dict[int, dict[str, Chunk]]) -> None:
        """One transaction for every run's points (a savepoint per run)."""
        with self.tracking.db.atomic():
            for run_id, series in batch.items():
                try:
                    self.tracking.log_metrics(run_id, series)
                except NotFound:
                    n = sum(len(c) for c in series.values())
                    log.warning("dropped %d metric points of run %d: the run no longer exists", n, run_id)


_intakes: dict[int, tuple[TrackingService, MetricIntake]] = {}
_lock = threading.Lock()


def intake_for(tracking: TrackingService) -> MetricIntake:
    """The one `MetricIntake` of ``tracking`` (its thread started on first use)."""
    with _lock:
        found = _intakes.get(id(tracking))
        if found is None or found[0] is not tracking:
            found = (tracking, MetricIntake(tracking))
            _intakes[id(tracking)] = found
        return found[1]


def close_intake(tracking: TrackingService) -> None:
    """Commit what ``tracking``'s intake holds and stop it (the API app's shutdown)."""
    with _lock:
        found = _intakes.pop(id(tracking), None)
    if found is not None:
        found[1].close()


@atexit.register
def close_all() -> None:
    """Commit what every intake holds (a process that ends without the app's shutdown)."""
    with _lock:
        found = list(_intakes.values())
        _intakes.clear()
    for _, intake in found:
        intake.close()
