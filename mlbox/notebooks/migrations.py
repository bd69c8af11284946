"""The notebook service's tables. Shipped migrations are never edited."""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("notebooks")


@migrations
def m001_notebooks(conn: sqlite3.Connection) -> None:
    # The server itself is a job (the scheduler owns jobs and leases); this
    # row holds what only the notebook knows: its token, port and activity.
    execute_script(
        conn,
        """
        CREATE TABLE notebooks (
            id INTEGER PRIMARY KEY,
            job_id INTEGER,
            state TEXT NOT NULL
                CHECK (state IN ('starting', 'running', 'stopped', 'culled', 'failed')),
            gpus INTEGER NOT NULL,
            root_dir TEXT NOT NULL,
            token TEXT NOT NULL,
            port INTEGER,
            idle_timeout_s REAL,
            created_at REAL NOT NULL,
            started_at REAL,
            last_activity REAL,
            busy INTEGER NOT NULL DEFAULT 0,
            finished_at REAL,
            message TEXT
        );
        CREATE INDEX notebooks_state ON notebooks (state);
        CREATE INDEX notebooks_job ON notebooks (job_id);
        """,
    )
