"""Temporary files and folders named after their writer, and which of them a dead writer left.

Every writer of the home builds under a temporary name and renames into place, so a writer
killed midway (``kill -9``, a power cut) leaves its temporary behind, and nothing else ever
looks at it again: a 300 MB ``log_artifact`` cut short would keep its 300 MB forever. So
the name says who writes it, ``<prefix><pid>-<start>-<hex>`` with ``start`` the writer's
start time in hundredths of a second, and at start-up the appliance removes the temporaries
whose writer is gone. The start time is what tells a recycled pid from the writer: a live
process with that pid and another start time is not the writer.

`orphans` is the decision (pure: names, times and the pids' current start times in, names
out); `remove_orphans` is the I/O around it. Liveness is passed in
(`mlbox.scheduler.processes.process_start`, as the scheduler checks its jobs), since the
store imports nothing of mlbox's services.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

START_TOLERANCE_S = 1.0
"""Start times read twice for one process differ by less than this (as in the scheduler)."""

_WRITER = re.compile(r"(\d+)-(?:(\d+)-)?[0-9a-z_]+")
"""``<pid>-<start>-<random>``, or ``<pid>-<hex>`` as written before start times were recorded."""

_own: tuple[int, str] | None = None


@dataclass(frozen=True)
class Writer:
    """Who wrote a temporary: its pid and start time (None in names from before start times)."""

    pid: int
    started: float | None


def writer_tag() -> str:
    """``<pid>-<start>`` of this process, read once per process (again after a fork)."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        import psutil

        try:
            started = round(psutil.Process(pid).create_time() * 100)
        except (psutil.Error, OSError):  # unreadable /proc: the name falls back to the pid alone
            _own = (pid, str(pid))
        else:
            _own = (pid, f"{pid}-{started}")
    return _own[1]


def temp_name(prefix: str = "") -> str:
    """A fresh temporary name for this process: ``<prefix><pid>-<start>-<16 hex>``."""
    return f"{prefix}{writer_tag()}-{secrets.token_hex(8)}"


def writer_of(name: str, prefix: str = "") -> Writer | None:
    """The writer a temporary's name records; None when the name is not one of ours."""
    if not name.startswith(prefix):
        return None
    match = _WRITER.fullmatch(name[len(prefix) :])
    if match is None:
        return None
    started = match.group(2)
    return Writer(int(match.group(1)), None if started is None else int(started) / 100)


def is_orphan(
    writer: Writer, mtime: float, live_start: float | None, tolerance: float = START_TOLERANCE_S
) -> bool:
    """Is the writer gone? ``live_start`` is the start time of the process now holding its pid
    (None: no live process has it). A name without a start time is the writer's only while
    the pid's holder started before the file was last written (a writer touches its file)."""
    if live_start is None:
        return True
    if writer.started is not None:
        return abs(live_start - writer.started) > tolerance
    return mtime < live_start - tolerance


def orphans(
    entries: Iterable[tuple[str, float]],
    starts: Mapping[int, float | None],
    prefixes: Iterable[str] = ("",),
    tolerance: float = START_TOLERANCE_S,
) -> list[str]:
    """The names among ``(name, mtime)`` entries whose writer is gone. ``starts`` maps each
    writer pid to its current holder's start time (None when none); a name that is not a
    temporary of ours, or whose pid is missing from ``starts``, is kept."""
    chosen = tuple(prefixes)
    found = []
    for name, mtime in entries:
        for prefix in chosen:
            writer = writer_of(name, prefix)
            if writer is not None and writer.pid in starts:
                if is_orphan(writer, mtime, starts[writer.pid], tolerance):
                    found.append(name)
                break
    return sorted(found)


def remove_orphans(
    folder: Path, process_start: Callable[[int], float | None], prefixes: Iterable[str] = ("",)
) -> list[str]:
    """Remove the temporaries in ``folder`` whose writer is dead; returns their names.

    A folder is removed with everything in it; an entry that vanishes meanwhile (its
    writer renamed it into place) is simply gone already, and one that cannot be removed is
    left for the next start: cleaning up never stops the appliance from starting.
    """
    chosen = tuple(prefixes)
    entries: list[tuple[str, float]] = []
    pids: set[int] = set()
    try:
        listed = list(os.scandir(folder))
    except OSError:  # no such folder yet, or unreadable: nothing to clean, and nothing to fail
        return []
    for entry in listed:
        for prefix in chosen:
            writer = writer_of(entry.name, prefix)
            if writer is not None:
                try:
                    entries.append((entry.name, entry.stat(follow_symlinks=False).st_mtime))
                except OSError:
                    break
                pids.add(writer.pid)
                break
    starts = {pid: process_start(pid) for pid in pids}
    removed = []
    for name in orphans(entries, starts, chosen):
        path = folder / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:  # gone meanwhile (renamed into place), or not ours to remove: left alone
            continue
        removed.append(name)
    return removed


def remove_orphans_below(
    root: Path, process_start: Callable[[int], float | None], prefixes: Iterable[str] = (".tmp-",)
) -> list[Path]:
    """`remove_orphans` in ``root`` and every folder below it: for trees whose writers build
    beside their target (Parquet segments, a job's exit record and checkpoints), where no one
    folder holds all the temporaries. Returns the removed paths."""
    chosen = tuple(prefixes)
    removed: list[Path] = []
    for folder, dirs, _files in os.walk(root):
        here = Path(folder)
        gone = set(remove_orphans(here, process_start, chosen))
        removed.extend(here / name for name in sorted(gone))
        dirs[:] = [d for d in dirs if d not in gone]
    return removed
