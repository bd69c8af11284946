"""Schema as migrations: a fresh file gets the whole schema, once, even under a race."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlbox.store.db import Database
from mlbox.store.migrations import Migrations, execute_script
from mlbox.tracking.migrations import migrations as tracking_migrations

EXPECTED_COLUMNS: dict[str, set[str]] = {
    "experiments": {"id", "name", "description", "created_at", "deleted_at"},
    "runs": {
        "id",
        "experiment_id",
        "name",
        "status",
        "start_time",
        "end_time",
        "heartbeat",
        "host",
        "pid",
        "pid_started",
        "notes",
        "git_sha",
        "git_dirty",
        "environment",
        "deleted_at",
    },
    "params": {"run_id", "key", "value"},
    "tags": {"run_id", "key", "value"},
    "metric_chunks": {"id", "run_id", "key", "n", "first_step", "last_step", "steps", "ts", "vals"},
    "latest_metrics": {"run_id", "key", "step", "ts", "value", "count"},
    "artifacts": {"run_id", "path", "sha256", "size", "created_at"},
    "datasets": {"run_id", "name", "context", "digest", "source", "rows", "schema"},
    "_migrations": {"migration_set", "name", "applied_at", "mlbox_version"},
}


def _sdb(path: Path) -> Any:
    """sqlite-utils' view of a file (imported here: it pulls in pandas, which
    the spawned racing processes below do not need)."""
    import sqlite_utils

    return sqlite_utils.Database(path)


def _schema(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return "\n".join(f"{t} {n} {s}" for t, n, s in rows)


def test_fresh_file_gets_the_tracking_schema(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    db = Database(path)
    assert tracking_migrations.pending(db) == [name for name, _ in tracking_migrations.steps]
    applied = tracking_migrations.apply(db)
    assert applied == [name for name, _ in tracking_migrations.steps]
    assert applied[0] == "m001_tracking"

    sdb = _sdb(path)
    assert set(sdb.table_names()) == set(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert set(sdb[table].columns_dict) == columns, table
    runs = sdb["runs"]
    assert {fk.other_table for fk in runs.foreign_keys} == {"experiments"}
    assert {"runs_experiment", "runs_status"} <= {i.name for i in runs.indexes}
    assert {fk.other_table for fk in sdb["metric_chunks"].foreign_keys} == {"runs"}
    assert {fk.other_table for fk in sdb["latest_metrics"].foreign_keys} == {"runs"}
    recorded = sdb.execute("SELECT name FROM _migrations WHERE migration_set = 'tracking'").fetchall()
    assert [r[0] for r in recorded] == applied


def test_second_apply_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(path)
    tracking_migrations.apply(db)
    before = _schema(path)
    # Again through the same connection and through a fresh one (another process starting).
    assert tracking_migrations.apply(db) == []
    assert tracking_migrations.apply(Database(path)) == []
    assert tracking_migrations.pending(db) == []
    assert _schema(path) == before
    assert db.query_one("SELECT COUNT(*) FROM _migrations")[0] == len(tracking_migrations.steps)  # type: ignore[index]


def test_new_migration_is_applied_after_the_shipped_ones(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    m = Migrations("grows")

    @m
    def m001_first(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE a (x INTEGER)")

    assert m.apply(db) == ["m001_first"]

    @m
    def m002_second(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE a ADD COLUMN y TEXT")

    assert m.pending(db) == ["m002_second"]
    assert m.apply(db) == ["m002_second"]
    assert set(_sdb(db.path)["a"].columns_dict) == {"x", "y"}
    # Sets are independent: another service's set starts from nothing.
    other = Migrations("other")
    other(m001_first)
    assert other.pending(db) == ["m001_first"]


def test_failing_migration_applies_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    m = Migrations("broken")

    @m
    def m001_ok(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE ok (x INTEGER)")

    @m
    def m002_bad(conn: sqlite3.Connection) -> None:
        execute_script(conn, "CREATE TABLE half (x INTEGER);\nCREATE TABLE oops (;\n")

    with pytest.raises(sqlite3.OperationalError):
        m.apply(db)
    assert "ok" not in _sdb(db.path).table_names()
    assert m.pending(db) == ["m001_ok", "m002_bad"]


def test_execute_script_refuses_an_incomplete_statement(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    with pytest.raises(ValueError, match="incomplete SQL"), db.atomic() as conn:
        execute_script(conn, "CREATE TABLE a (x INTEGER);\nCREATE TABLE b (x INTEGER)")
    assert "a" not in _sdb(db.path).table_names()


# -- two processes applying at once -------------------------------------------------

racing = Migrations("racing")


@racing
def m001_counter(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE applied_by (migration TEXT NOT NULL)")
    conn.execute("INSERT INTO applied_by VALUES ('m001')")
    time.sleep(0.3)  # widen the window in which a second process could slip in


@racing
def m002_more(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO applied_by VALUES ('m002')")
    time.sleep(0.3)


def _apply_racing(path: str, barrier: threading.Barrier, out: multiprocessing.Queue) -> None:
    db = Database(path)
    barrier.wait(timeout=60)
    try:
        out.put(racing.apply(db))
    except BaseException as exc:
        out.put(repr(exc))


def test_two_processes_apply_each_migration_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_apply_racing, args=(str(path), barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert all(isinstance(r, list) for r in results), results
    assert sorted(results, key=len) == [[], ["m001_counter", "m002_more"]]
    db = Database(path)
    assert [r[0] for r in db.query("SELECT migration FROM applied_by ORDER BY rowid")] == ["m001", "m002"]
    assert [r[0] for r in db.query("SELECT name FROM _migrations WHERE migration_set = 'racing'")] == [
        "m001_counter",
        "m002_more",
    ]


def test_each_migration_records_the_release_that_applied_it(tmp_path: Path) -> None:
    import mlbox
    from mlbox.store.migrations import RELEASE

    assert mlbox.__version__ == RELEASE
    db = Database(tmp_path / "x.db")
    tracking_migrations.apply(db)
    rows = db.query("SELECT DISTINCT mlbox_version FROM _migrations")
    assert [r[0] for r in rows] == [RELEASE]


def test_a_ledger_from_before_versions_gets_the_column(tmp_path: Path) -> None:
    """A file made before ``mlbox_version`` existed: the column is added, its old rows stay NULL,
    and they are not mistaken for a newer release's."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE _migrations (migration_set TEXT NOT NULL, name TEXT NOT NULL,"
        " applied_at REAL NOT NULL, PRIMARY KEY (migration_set, name))"
    )
    conn.execute("INSERT INTO _migrations VALUES ('grows', 'm001_first', 1.0)")
    conn.commit()
    conn.close()
    m = Migrations("grows")

    @m
    def m001_first(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE a (x INTEGER)")

    @m
    def m002_second(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE b (x INTEGER)")

    db = Database(path)
    assert m.apply(db) == ["m002_second"]
    rows = db.query("SELECT name, mlbox_version FROM _migrations ORDER BY name")
    assert [tuple(r) for r in rows] == [("m001_first", None), ("m002_second", mlbox_version())]


def mlbox_version() -> str:
    from mlbox.store.migrations import RELEASE

    return RELEASE


def test_a_database_from_a_newer_release_is_refused_naming_both(tmp_path: Path) -> None:
    from mlbox.store.errors import UnusableStore
    from mlbox.store.migrations import RELEASE

    db = Database(tmp_path / "x.db")
    tracking_migrations.apply(db)
    with db.atomic() as conn:
        conn.execute("INSERT INTO _migrations VALUES ('tracking', 'm999_future', ?, '9.9.0')", (time.time(),))
    before = _schema(db.path)
    for fresh in (db, Database(db.path)):
        with pytest.raises(UnusableStore) as err:
            tracking_migrations.apply(fresh)
        message = err.value.message
        assert str(db.path) in message and "mlbox 9.9.0" in message and f"mlbox {RELEASE}" in message
        assert "m999_future" in message and "'tracking'" in message
        with pytest.raises(UnusableStore):
            tracking_migrations.pending(fresh)
    assert _schema(db.path) == before
    # Another service's set, with nothing unknown in it, is not blamed for tracking's.
    other = Migrations("other")
    assert other.pending(db) == []
