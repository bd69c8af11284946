"""The tracking service's tables. Shipped migrations are never edited."""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("tracking")


@migrations
def m001_tracking(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE experiments (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            experiment_id INTEGER NOT NULL REFERENCES experiments(id),
            name TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'finished', 'failed', 'killed', 'crashed')),
            start_time REAL NOT NULL,
            end_time REAL,
            heartbeat REAL NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            pid_started REAL,
            notes TEXT NOT NULL DEFAULT '',
            git_sha TEXT,
            git_dirty INTEGER,
            environment TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX runs_experiment ON runs (experiment_id, start_time);
        CREATE INDEX runs_status ON runs (status);
        CREATE TABLE params (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE tags (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        -- The full series as columnar chunks, one row per key per writer commit
        -- (see mlbox.tracking.series): packed little-endian int64 steps,
        -- float64 timestamps and float64 values.
        CREATE TABLE metric_chunks (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            n INTEGER NOT NULL,
            first_step INTEGER NOT NULL,
            last_step INTEGER NOT NULL,
            steps BLOB NOT NULL,
            ts BLOB NOT NULL,
            vals BLOB NOT NULL
        );
        CREATE INDEX metric_chunks_series ON metric_chunks (run_id, key, id);
        -- The last point of each series, kept by the writer so search and
        -- tables never scan the full history.
        CREATE TABLE latest_metrics (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            step INTEGER NOT NULL,
            ts REAL NOT NULL,
            value REAL,
            count INTEGER NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value);
        CREATE TABLE artifacts (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, path)
        ) WITHOUT ROWID;
        CREATE TABLE datasets (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            context TEXT NOT NULL,
            digest TEXT NOT NULL,
            source TEXT NOT NULL,
            rows INTEGER,
            schema TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (run_id, name, context)
        ) WITHOUT ROWID;
        """,
    )


def widen_check(conn: sqlite3.Connection, table: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in ``table``'s CREATE statement: how a CHECK's list of allowed
    values grows without rebuilding the table.

    Rebuilding is no option for tables that others reference with ``ON DELETE CASCADE``
    (dropping the old one would delete its children, and ``PRAGMA foreign_keys`` cannot be
    turned off inside the migration's transaction). SQLite documents editing the stored
    schema for loosening a constraint: every row that met the old CHECK meets the new one,
    so the file format does not change. The schema version is bumped, so every open
    connection re-reads the schema.
    """
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    sql = row[0]
    if sql.count(old) != 1:
        raise ValueError(f"{table}: expected {old!r} once in its schema")
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
            (sql.replace(old, new), table),
        )
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    problems = conn.execute("PRAGMA quick_check").fetchall()
    if [tuple(p) for p in problems] != [("ok",)]:
        raise RuntimeError(f"{table}: schema check failed after widening: {problems}")


@migrations
def m002_pruned_runs(conn: sqlite3.Connection) -> None:
    """A run whose sweep trial was stopped by its pruner ends ``pruned``: one word everywhere
    (the job, the trial and the run), not ``killed`` on one screen and ``pruned`` on another."""
    widen_check(conn, "runs", "'killed', 'crashed')", "'killed', 'crashed', 'pruned')")
