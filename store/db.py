"""SQLite for everything transactional, shared safely by several processes.

The database is also the bus between the appliance, the TUI, job processes and
notebooks, so the invariants here matter more than anywhere else:

* WAL mode: readers never block the writer and the writer never blocks readers.
* Every write transaction starts with ``BEGIN IMMEDIATE``: the write lock is
  taken up front, so a second writer waits on the busy timeout instead of
  failing half-way with "database is locked" when it upgrades a read lock.
* ``synchronous=FULL``: a commit is fsynced before it returns, so a committed
  metric point survives a power loss, not only a killed process. Writers batch
  (the metric writer commits thousands of points at once), which keeps the
  cost of that fsync small.
* One connection per thread and per process. A connection is never inherited
  across ``fork``: the holder remembers its pid and opens a fresh connection
  in a child, and ``subprocess`` children never see it (close_fds).
* The file is created 0600 before SQLite opens it: SQLite gives the ``-wal`` and ``-shm``
  files the database file's mode, so all three are private (`mlbox.store.private`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlbox.store import private
from mlbox.store.errors import UnusableStore, storage_full

BUSY_TIMEOUT_MS = 30_000


def _busy(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def unusable(path: Path, exc: sqlite3.Error) -> UnusableStore:
    """The one-line error for a database file SQLite refuses (garbage, truncated, a folder)."""
    return UnusableStore(
        f"cannot use the database {path} ({exc}): move it aside (or restore a backup) to start afresh,"
        " or point MLBOX_HOME at another folder",
        field="MLBOX_HOME",
    )


def _connect(path: Path) -> sqlite3.Connection:
    """A connection with mlbox's pragmas; `UnusableStore` naming the file when SQLite refuses it
    (the first pragma reads the header, so garbage and truncated files are found here)."""
    # isolation_level=None: the sqlite3 module never opens transactions on its
    # own; `Database.atomic` issues BEGIN IMMEDIATE / SAVEPOINT explicitly.
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise unusable(path, exc) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _set_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        if _busy(exc):
            raise
        raise unusable(path, exc) from None
    conn.row_factory = sqlite3.Row
    return conn


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying: on a brand-new file two processes switching at
    once can get SQLITE_BUSY without the busy handler ever being called."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _create_private(path: Path) -> None:
    """Create the database file empty and 0600 if it is not there (SQLite would make it 0644)."""
    try:
        os.close(private.create(path))
    except FileExistsError:
        pass
    except OSError:  # a folder in the way, no permission: `_connect` names the file in its error
        pass


class Database:
    """A SQLite file opened with mlbox's pragmas, one connection per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        private.make_dirs(self.path.parent)
        _create_private(self.path)
        self._local = threading.local()
        self._pid = os.getpid()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection, reopened after a fork."""
        if self._pid != os.getpid():
            # A forked child: the parent's connections must never be used here.
            self._local = threading.local()
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), or a savepoint when nested."""
        conn = self.conn
        depth: int = self._local.depth
        if depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute(f"SAVEPOINT sp{depth}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException as exc:
            self._local.depth = depth
            if depth == 0:
                if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                    conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO sp{depth}")
                conn.execute(f"RELEASE sp{depth}")
            full = storage_full(exc, self.path) if depth == 0 else None
            if full is not None:
                raise full from exc
            raise
        self._local.depth = depth
        if depth == 0:
            try:
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:  # never leave a failed commit's transaction open
                    conn.execute("ROLLBACK")
                full = storage_full(exc, self.path)
                if full is not None:
                    raise full from exc
                raise
        else:
            conn.execute(f"RELEASE sp{depth}")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._pid == os.getpid():
            conn.close()
        # Forget only this thread's connection: replacing `_local` would drop
        # every other thread's connection too, mid-transaction perhaps.
        self._local.conn = None
        self._local.depth = 0
