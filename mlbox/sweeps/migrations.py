"""The sweep service's tables. Shipped migrations are never edited.

These tables are the study: Optuna's in-memory study is rebuilt from them
(`mlbox.sweeps.study`), so a sweep's trials, their jobs and the values that
drive pruning change in the same transaction. ``revision`` counts changes to
a sweep's study, so a process holding a rebuilt study sees when another one
moved it on. Jobs and runs belong to other services: ``job_id`` and
``run_id`` are plain columns with no foreign key across services.
"""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("sweeps")


@migrations
def m001_sweeps(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE sweeps (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('running', 'stopping', 'finished', 'stopped', 'failed')),
            spec TEXT NOT NULL,
            space TEXT NOT NULL,
            experiment TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            finished_at REAL,
            message TEXT
        );
        CREATE INDEX sweeps_state ON sweeps (state);
        CREATE TABLE sweep_trials (
            sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
            number INTEGER NOT NULL CHECK (number >= 0),
            state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'pruned', 'failed')),
            params TEXT NOT NULL,
            distributions TEXT NOT NULL,
            system_attrs TEXT NOT NULL DEFAULT '{}',
            value REAL,
            job_id INTEGER,
            run_id INTEGER,
            last_step INTEGER,
            started_at REAL NOT NULL,
            finished_at REAL,
            message TEXT,
            PRIMARY KEY (sweep_id, number)
        ) WITHOUT ROWID;
        CREATE INDEX sweep_trials_job ON sweep_trials (job_id);
        CREATE INDEX sweep_trials_state ON sweep_trials (sweep_id, state);
        -- The intermediate values reported to the study (the pruners' input).
        CREATE TABLE sweep_values (
            sweep_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            step INTEGER NOT NULL,
            value REAL,
            PRIMARY KEY (sweep_id, number, step),
            FOREIGN KEY (sweep_id, number) REFERENCES sweep_trials(sweep_id, number)
        ) WITHOUT ROWID;
        """,
    )
