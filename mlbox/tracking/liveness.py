"""When is a running run actually dead? Pure decision, the clock passed in.

A run records the host, pid and process start time of the process that logs
to it, and a heartbeat the writer refreshes. On the same host the pid check is
exact (a reused pid has another start time); elsewhere only the heartbeat age
can tell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Liveness:
    host: str
    pid: int
    pid_started: float | None
    heartbeat: float


ProcessStart = Callable[[int], float | None]
"""Returns a live pid's start time (seconds since the epoch), None if no such process."""


def is_dead(
    run: Liveness, *, now: float, this_host: str, process_start: ProcessStart, crash_after_s: float
) -> bool:
    if run.host == this_host:
        started = process_start(run.pid)
        if started is None:
            return True
        if run.pid_started is not None and abs(started - run.pid_started) > 1.0:
            return True  # the pid was reused by another process
        return False
    return now - run.heartbeat > crash_after_s
