"""The SQLite layer: pragmas on every connection, transactions, several processes, fork.

Everything runs on real database files under tmp_path; the concurrency tests
use real processes (``spawn`` and ``fork``), because the invariants being
checked only exist across processes.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from mlbox.store.db import BUSY_TIMEOUT_MS, Database

WRITERS = 4
TRANSACTIONS = 200


def _make_table(db: Database) -> None:
    with db.atomic() as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who INTEGER NOT NULL, n INTEGER NOT NULL)")


def _pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    return {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
    }


EXPECTED_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": BUSY_TIMEOUT_MS,
    "foreign_keys": 1,
    "synchronous": 2,
}


def test_every_connection_gets_the_pragmas(tmp_path: Path) -> None:
    db = Database(tmp_path / "sub" / "x.db")  # the parent folder is created too
    assert _pragmas(db.conn) == EXPECTED_PRAGMAS

    seen: dict[str, object] = {}

    def other_thread() -> None:
        conn = db.conn
        seen["same"] = conn is main_conn
        seen["pragmas"] = _pragmas(conn)
        db.close()

    main_conn = db.conn
    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert seen == {"same": False, "pragmas": EXPECTED_PRAGMAS}

    # A second Database over the same file (another front end) gets them too.
    assert _pragmas(Database(db.path).conn) == EXPECTED_PRAGMAS
    assert db.conn is main_conn  # one connection per thread, kept


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    with db.atomic() as conn:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id))")
    with pytest.raises(sqlite3.IntegrityError), db.atomic() as conn:
        conn.execute("INSERT INTO child (parent) VALUES (42)")
    assert db.query("SELECT * FROM child") == []


def test_atomic_commits(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)
    with db.atomic() as conn:
        conn.execute("INSERT INTO t (who, n) VALUES (1, 1)")
        conn.execute("INSERT INTO t (who, n) VALUES (1, 2)")
    assert not db.conn.in_transaction
    # Another connection (another process would see the same) reads the commit.
    other = sqlite3.connect(db.path)
    assert other.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
    other.close()


def test_atomic_rolls_back_on_exception(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), db.atomic() as conn:
        conn.execute("INSERT INTO t (who, n) VALUES (1, 1)")
        raise Boom
    assert db.query("SELECT * FROM t") == []
    assert not db.conn.in_transaction
    # The connection is usable afterwards and the depth was reset: this is a
    # real transaction again, not a savepoint inside a dead one.
    with db.atomic() as conn:
        conn.execute("INSERT INTO t (who, n) VALUES (1, 2)")
    assert [r["n"] for r in db.query("SELECT n FROM t")] == [2]


def test_nested_savepoint_rolls_back_only_the_inner_part(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)
    with db.atomic() as conn:
        conn.execute("INSERT INTO t (who, n) VALUES (1, 1)")
        with pytest.raises(ValueError), db.atomic() as inner:
            inner.execute("INSERT INTO t (who, n) VALUES (1, 2)")
            raise ValueError("inner part fails")
        with db.atomic() as inner:  # a second savepoint at the same depth commits
            inner.execute("INSERT INTO t (who, n) VALUES (1, 3)")
        assert conn.in_transaction
    assert [r["n"] for r in db.query("SELECT n FROM t ORDER BY n")] == [1, 3]


def test_outer_failure_rolls_back_committed_savepoints(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)
    with pytest.raises(RuntimeError), db.atomic() as conn:
        with db.atomic() as inner:
            inner.execute("INSERT INTO t (who, n) VALUES (1, 1)")
        conn.execute("INSERT INTO t (who, n) VALUES (1, 2)")
        raise RuntimeError
    assert db.query("SELECT * FROM t") == []


def test_write_transaction_takes_the_write_lock_up_front(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer is refused at BEGIN, never half-way through."""
    db = Database(tmp_path / "x.db")
    _make_table(db)
    other = sqlite3.connect(db.path, timeout=0, isolation_level=None)
    with db.atomic():
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        # Readers are never blocked by the writer (WAL).
        assert other.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


def _writer(path: str, who: int, start: threading.Barrier) -> None:
    """Runs in a spawned process: many small write transactions, read-modify-write."""
    db = Database(path)
    start.wait(timeout=60)  # all writers begin together
    for _ in range(TRANSACTIONS):
        with db.atomic() as conn:
            # Read then write inside one transaction: with a deferred BEGIN this
            # is where "database is locked" would appear under contention.
            (n,) = conn.execute("SELECT COUNT(*) FROM t WHERE who = ?", (who,)).fetchone()
            conn.execute("INSERT INTO t (who, n) VALUES (?, ?)", (who, n))


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_writer, args=(str(db.path), who, start)) for who in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WRITERS  # a "database is locked" would exit 1
    rows = db.query("SELECT who, COUNT(*) AS c, MIN(n) AS lo, MAX(n) AS hi FROM t GROUP BY who ORDER BY who")
    assert [tuple(r) for r in rows] == [(who, TRANSACTIONS, 0, TRANSACTIONS - 1) for who in range(WRITERS)]
    # Each process saw its own previous writes: n is a gapless 0..199 per writer.
    assert db.query_one("SELECT COUNT(DISTINCT who || ':' || n) FROM t")[0] == WRITERS * TRANSACTIONS  # type: ignore[index]


def _child_after_fork(db: Database, parent_conn_id: int, queue: multiprocessing.Queue) -> None:
    try:
        conn = db.conn
        inherited = id(conn) == parent_conn_id
        with db.atomic() as c:
            c.execute("INSERT INTO t (who, n) VALUES (99, 1)")
        queue.put(("ok", inherited, _pragmas(conn)))
    except BaseException as exc:
        queue.put(("error", repr(exc), {}))


def test_connection_is_not_inherited_after_fork(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)
    parent_conn = db.conn
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_after_fork, args=(db, id(parent_conn), queue))
    proc.start()
    status, inherited, pragmas = queue.get(timeout=30)
    proc.join(timeout=30)
    assert status == "ok", inherited
    assert inherited is False  # the child opened its own connection
    assert pragmas == EXPECTED_PRAGMAS
    assert proc.exitcode == 0
    # The parent's connection is untouched and sees the child's commit.
    assert db.conn is parent_conn
    assert [tuple(r) for r in db.query("SELECT who, n FROM t")] == [(99, 1)]


def test_query_helpers(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    _make_table(db)
    with db.atomic() as conn:
        conn.executemany("INSERT INTO t (who, n) VALUES (?, ?)", [(1, 10), (2, 20)])
    assert db.query_one("SELECT n FROM t WHERE who = ?", (2,))["n"] == 20  # type: ignore[index]
    assert db.query_one("SELECT n FROM t WHERE who = :w", {"w": 3}) is None
    assert [r["n"] for r in db.query("SELECT n FROM t ORDER BY n DESC")] == [20, 10]
    old = db.conn
    db.close()
    assert db.conn is not old  # reopened on next use
