"""GPU leases held by something other than a job: a served model on a GPU, named by its holder.

They live in the jobs' lease table (``gpu_leases.gpu`` is its primary key),
so one GPU is never leased twice, whether to a job or a holder, and the GPU
board shows both. A holder lease records the process that took it; when that
process is gone (an appliance killed mid-serve) the scheduler's pass frees it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence

from mlbox.scheduler.processes import process_start
from mlbox.store import Database
from mlbox.store.errors import Conflict, InvalidInput


def lease(db: Database, inventory: Sequence[int], holder: str, count: int = 1) -> list[int]:
    """Lease ``count`` free GPUs to ``holder`` (all or none); the ones it already holds count."""
    if not holder or not isinstance(holder, str):
        raise InvalidInput("a GPU lease needs a holder name", field="holder")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInput(f"count must be a whole number >= 1, got {count!r}", field="count")
    pid = os.getpid()
    with db.atomic() as conn:
        held = [
            r[0] for r in conn.execute("SELECT gpu FROM gpu_leases WHERE holder = ? ORDER BY gpu", (holder,))
        ]
        if len(held) >= count:
            return held[:count]
        taken = {r[0] for r in conn.execute("SELECT gpu FROM gpu_leases")}
        free = [g for g in inventory if g not in taken][: count - len(held)]
        if len(held) + len(free) < count:
            raise Conflict(
                f"no free GPU for {holder}: {len(taken)} of {len(inventory)} are leased", field="gpus"
            )
        try:
            conn.executemany(
                "INSERT INTO gpu_leases (gpu, holder, pid, pid_started, since) VALUES (?, ?, ?, ?, ?)",
                [(g, holder, pid, process_start(pid), time.time()) for g in free],
            )
        except sqlite3.IntegrityError:  # another process took one between the read and the write
            raise Conflict(f"no free GPU for {holder}: taken meanwhile", field="gpus") from None
    return sorted(held + free)


def release(db: Database, holder: str) -> int:
    """Free every GPU ``holder`` leased; returns how many."""
    with db.atomic() as conn:
        return conn.execute("DELETE FROM gpu_leases WHERE holder = ?", (holder,)).rowcount


def holders_by_gpu(db: Database) -> dict[int, str]:
    """GPU index -> the holder that leased it outside jobs."""
    return {r[0]: r[1] for r in db.query("SELECT gpu, holder FROM gpu_leases WHERE holder IS NOT NULL")}


def held_by_holders(db: Database) -> set[int]:
    return {r[0] for r in db.query("SELECT gpu FROM gpu_leases WHERE holder IS NOT NULL")}


def reap(db: Database) -> list[int]:
    """Free holder leases whose process is gone (pid and its start time no longer match)."""
    gone = []
    for row in db.query("SELECT gpu, pid, pid_started FROM gpu_leases WHERE holder IS NOT NULL"):
        started = process_start(row["pid"]) if row["pid"] is not None else None
        if started is None or (row["pid_started"] is not None and abs(started - row["pid_started"]) > 1.0):
            gone.append(row["gpu"])
    if gone:
        with db.atomic() as conn:
            conn.executemany(
                "DELETE FROM gpu_leases WHERE gpu = ? AND holder IS NOT NULL", [(g,) for g in gone]
            )
    return gone
