"""The background metric writer, driven with plain commit functions (its injected sink).

The commit functions here are what the writer is given in production (a
function taking the chunks), only slower, failing or gated on purpose.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from mlbox.tracking.series import Chunk
from mlbox.tracking.writer import MetricWriter


class Sink:
    """Records committed points; can be slowed down, gated or made to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.points: list[tuple[str, int, float]] = []
        self.commits = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fail_with: BaseException | None = None
        self.entered = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, chunks: dict[str, Chunk]) -> None:
        self.entered.set()
        self.gate.wait(timeout=30)
        time.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        with self.lock:
            for key, chunk in chunks.items():
                self.points.extend((key, s, v) for s, v in zip(chunk.steps, chunk.values, strict=True))
            self.commits += 1

    def count(self) -> int:
        with self.lock:
            return len(self.points)


def _noop() -> None:
    pass


def _wait_for(cond: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_flush_returns_only_after_the_commit() -> None:
    sink = Sink(delay=0.3)  # a slow disk
    writer = MetricWriter(sink, _noop, interval=60)  # only flush() makes it commit
    try:
        for i in range(100):
            writer.add("loss", i, 0.0, float(i))
        assert sink.count() == 0
        assert writer.pending == 100
        started = time.monotonic()
        writer.flush()
        assert time.monotonic() - started >= 0.25  # it waited for the slow commit
        assert sink.count() == 100
        assert writer.pending == 0
        assert [s for _, s, _ in sink.points] == list(range(100))
        writer.flush()  # nothing pending: returns at once
    finally:
        writer.close()


def test_points_are_committed_in_batches_on_their_own() -> None:
    sink = Sink()
    writer = MetricWriter(sink, _noop, interval=0.05, batch=1000)
    try:
        for i in range(5000):
            writer.add("a" if i % 2 else "b", i, 0.0, 1.0)
        assert _wait_for(lambda: sink.count() == 5000)  # no flush needed
        assert sink.commits < 5000 / 2  # batched, not one commit per point
    finally:
        writer.close()


def test_close_flushes_and_stops_the_thread() -> None:
    sink = Sink(delay=0.05)
    writer = MetricWriter(sink, _noop, interval=60)
    for i in range(10):
        writer.add("k", i, 0.0, 0.0)
    writer.close()
    assert sink.count() == 10
    assert not writer._thread.is_alive()
    writer.close()  # closing twice is harmless


def test_commit_error_surfaces_in_the_caller() -> None:
    sink = Sink()
    sink.fail_with = OSError("disk full")
    writer = MetricWriter(sink, _noop, interval=60)
    try:
        writer.add("k", 0, 0.0, 1.0)
        with pytest.raises(OSError, match="disk full"):
            writer.flush()
        # Reported once; the writer goes on once the disk is fine again.
        sink.fail_with = None
        writer.add("k", 1, 0.0, 1.0)
        writer.flush()
        assert [s for _, s, _ in sink.points] == [1]
    finally:
        writer.close()


def test_background_commit_error_is_raised_at_the_next_add() -> None:
    sink = Sink()
    sink.fail_with = RuntimeError("database is gone")
    writer = MetricWriter(sink, _noop, interval=0.01)
    try:
        writer.add("k", 0, 0.0, 1.0)
        assert sink.entered.wait(timeout=10)
        assert _wait_for(lambda: writer.pending == 0)  # the failed commit was accounted
        with pytest.raises(RuntimeError, match="database is gone"):
            writer.add("k", 1, 0.0, 1.0)
    finally:
        sink.fail_with = None
        writer.close()


def test_error_at_close_is_raised() -> None:
    sink = Sink()
    sink.fail_with = OSError("read-only file system")
    writer = MetricWriter(sink, _noop, interval=60)
    writer.add("k", 0, 0.0, 1.0)
    with pytest.raises(OSError, match="read-only"):
        writer.close()
    assert not writer._thread.is_alive()


def test_bounded_buffer_blocks_the_caller() -> None:
    sink = Sink()
    sink.gate.clear()  # the disk stalls
    max_buffer = 10
    writer = MetricWriter(sink, _noop, interval=60, batch=10**6, max_buffer=max_buffer)
    added = 0

    def producer() -> None:
        nonlocal added
        for i in range(100):
            writer.add("k", i, 0.0, float(i))
            added += 1

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    try:
        assert sink.entered.wait(timeout=10)  # the first batch is stuck in the commit
        time.sleep(0.3)
        # One batch inside the stalled commit, one full buffer: the producer waits.
        assert t.is_alive()
        assert added <= 2 * max_buffer
        assert writer.pending <= 2 * max_buffer
    finally:
        sink.gate.set()
    t.join(timeout=10)
    assert not t.is_alive() and added == 100
    writer.flush()
    assert [s for _, s, _ in sink.points] == list(range(100))
    writer.close()


def test_flush_timeout() -> None:
    sink = Sink()
    sink.gate.clear()
    writer = MetricWriter(sink, _noop, interval=60)
    writer.add("k", 0, 0.0, 1.0)
    with pytest.raises(TimeoutError, match="1 points"):
        writer.flush(timeout=0.1)
    sink.gate.set()
    writer.close()
    assert sink.count() == 1


def test_idle_writer_keeps_the_heartbeat() -> None:
    beats: list[float] = []
    writer = MetricWriter(Sink(), lambda: beats.append(time.monotonic()), interval=0.01, heartbeat_s=0.05)
    try:
        assert _wait_for(lambda: len(beats) >= 3, timeout=5)
    finally:
        writer.close()
