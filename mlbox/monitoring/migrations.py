"""The monitoring service's tables. Shipped migrations are never edited."""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("monitoring")


@migrations
def m001_monitoring(conn: sqlite3.Connection) -> None:
    # A reference's rows and profile live in files under monitoring/references/<folder>; the row
    # is written last (after the files), so a crash leaves at most an unreferenced folder.
    execute_script(
        conn,
        """
        CREATE TABLE monitoring_references (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            source TEXT NOT NULL,
            folder TEXT NOT NULL,
            rows INTEGER NOT NULL,
            columns TEXT NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (model, version)
        );
        CREATE TABLE feedback (
            request_id TEXT NOT NULL,
            row INTEGER NOT NULL,
            model TEXT NOT NULL,
            label TEXT NOT NULL,
            received_at REAL NOT NULL,
            updates INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (request_id, row)
        );
        CREATE INDEX feedback_model ON feedback (model);
        CREATE TABLE monitors (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            alias TEXT NOT NULL,
            window_s REAL NOT NULL,
            every_s REAL NOT NULL,
            checks TEXT NOT NULL,
            thresholds TEXT NOT NULL,
            command TEXT,
            segment TEXT,
            created_at REAL NOT NULL,
            last_run REAL,
            last_error TEXT,
            UNIQUE (model, alias)
        );
        CREATE TABLE monitor_runs (
            id INTEGER PRIMARY KEY,
            monitor_id INTEGER NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
            ran_at REAL NOT NULL,
            version INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            summary TEXT NOT NULL
        );
        CREATE INDEX monitor_runs_monitor ON monitor_runs (monitor_id, ran_at);
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            monitor_id INTEGER NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            alias TEXT NOT NULL,
            check_name TEXT NOT NULL,
            message TEXT NOT NULL,
            value REAL,
            threshold REAL,
            raised_at REAL NOT NULL,
            cleared_at REAL
        );
        CREATE UNIQUE INDEX alerts_open ON alerts (monitor_id, check_name) WHERE cleared_at IS NULL;
        """,
    )


@migrations
def m002_monitor_column_tests(conn: sqlite3.Connection) -> None:
    # per-column drift test overrides of a monitor: {"column": {"test": ..., "threshold": ...}}
    execute_script(conn, "ALTER TABLE monitors ADD COLUMN column_tests TEXT NOT NULL DEFAULT '{}';")
