"""Job processes as the operating system sees them: identity, liveness, signals, exit records.

A job attempt is identified by its shim's pid *and* that process's start time
(and, for a process we did not start ourselves, its command line naming the
attempt folder), so a reused pid is never mistaken for the job. Signals go to
the attempt's process group (the shim leads it), and only while that group
can still be ours: Linux never hands out a pid that is still in use as a
process group id, so when the leader's pid is free, any members left are ours.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from mlbox.scheduler.shim import EXIT_FILE

START_TOLERANCE_S = 1.0


def process_start(pid: int) -> float | None:
    """A live process's start time; None when there is none (a zombie counts as gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def create_time(pid: int) -> float | None:
    """Start time of a process, zombie or not (read right after spawning it)."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _cmdline_names(pid: int, marker: str) -> bool:
    import psutil

    try:
        return marker in psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def is_alive(pid: int, started: float | None, marker: str | None = None) -> bool:
    """Is the process (pid, start time) still there? With ``marker``, its argv must contain it."""
    now_started = process_start(pid)
    if now_started is None:
        return False
    if started is not None and abs(now_started - started) > START_TOLERANCE_S:
        return False  # the pid now belongs to another process
    return marker is None or _cmdline_names(pid, marker)


def find_by_marker(marker: str) -> tuple[int, float] | None:
    """The live process whose argv contains ``marker`` (a shim whose pid was never recorded)."""
    import psutil

    for proc in psutil.process_iter(["cmdline", "create_time", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if marker in (info.get("cmdline") or ()):
            return proc.pid, float(info["create_time"])
    return None


def signal_group(pid: int, started: float | None, sig: int) -> bool:
    """Send ``sig`` to the attempt's process group when it is still the attempt's; True if sent."""
    current = process_start(pid)
    if current is not None and started is not None and abs(current - started) > START_TOLERANCE_S:
        return False  # the leader's pid was reused, so the old group is entirely gone
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(pid: int, started: float | None) -> bool:
    return signal_group(pid, started, signal.SIGKILL)


@dataclass(frozen=True)
class ExitRecord:
    exit_code: int
    finished_at: float


def read_exit(folder: Path) -> ExitRecord | None:
    """What the shim recorded for an attempt; None when it never finished writing."""
    try:
        data = json.loads((folder / EXIT_FILE).read_text())
        return ExitRecord(int(data["exit_code"]), float(data["finished_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
