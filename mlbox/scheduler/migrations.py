"""The scheduler's tables: jobs, their attempts and the GPU leases. Shipped migrations are never edited.

``gpu_leases.gpu`` is the primary key: the database itself refuses a second
lease on a GPU, whatever any process believes. Runs belong to the tracking
service, so ``run_id`` is a plain column without a foreign key.
"""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script, widen_check

migrations = Migrations("scheduler")


@migrations
def m001_jobs(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            owner TEXT,
            spec TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'preempted', 'timed_out')),
            priority INTEGER NOT NULL,
            gpus INTEGER NOT NULL,
            gpu_memory_mb INTEGER NOT NULL,
            cpus REAL NOT NULL,
            preemptible INTEGER NOT NULL,
            max_retries INTEGER NOT NULL,
            timeout_s REAL,
            attempt INTEGER NOT NULL DEFAULT 0,
            retries_used INTEGER NOT NULL DEFAULT 0,
            gpu_list TEXT NOT NULL DEFAULT '[]',
            pid INTEGER,
            pid_started REAL,
            run_id INTEGER,
            exit_code INTEGER,
            created_at REAL NOT NULL,
            queued_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            stop_reason TEXT CHECK (stop_reason IN ('cancel', 'timeout', 'preempt')),
            stop_requested_at REAL,
            term_sent_at REAL,
            message TEXT
        );
        CREATE INDEX jobs_state ON jobs (state, priority, created_at);
        CREATE INDEX jobs_owner ON jobs (owner, id);
        CREATE TABLE job_attempts (
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            pid INTEGER,
            gpus TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            exit_code INTEGER,
            outcome TEXT NOT NULL,
            PRIMARY KEY (job_id, attempt)
        ) WITHOUT ROWID;
        CREATE TABLE gpu_leases (
            gpu INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            since REAL NOT NULL
        );
        CREATE INDEX gpu_leases_job ON gpu_leases (job_id);
        """,
    )


@migrations
def m002_queue_index(conn: sqlite3.Connection) -> None:
    """A covering index for the scheduler's per-tick read of the queue: the rows carry their
    spec JSON, so reading 10,000 of them through the table costs megabytes every tick."""
    conn.execute(
        "CREATE INDEX jobs_queue ON jobs (state, gpus, priority, created_at, queued_at, gpu_memory_mb, cpus)"
    )


@migrations
def m003_holder_leases(conn: sqlite3.Connection) -> None:
    """GPU leases held by something other than a job (a served model), in the same table, so the
    primary key on ``gpu`` keeps refusing a second lease whoever asks: a row has a job or a holder."""
    execute_script(
        conn,
        """
        CREATE TABLE gpu_leases_new (
            gpu INTEGER PRIMARY KEY,
            job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
            attempt INTEGER,
            holder TEXT,
            pid INTEGER,
            pid_started REAL,
            since REAL NOT NULL,
            CHECK ((job_id IS NULL) <> (holder IS NULL))
        );
        INSERT INTO gpu_leases_new (gpu, job_id, attempt, since) SELECT gpu, job_id, attempt, since FROM gpu_leases;
        DROP TABLE gpu_leases;
        ALTER TABLE gpu_leases_new RENAME TO gpu_leases;
        CREATE INDEX gpu_leases_job ON gpu_leases (job_id);
        CREATE INDEX gpu_leases_holder ON gpu_leases (holder);
        """,
    )


@migrations
def m004_pruned_and_environment(conn: sqlite3.Connection) -> None:
    """A trial its sweep's pruner stopped ends ``pruned`` (stop reason ``prune``), not
    ``cancelled``; and a job records the interpreter and env it last ran with."""
    widen_check(conn, "jobs", "'preempted', 'timed_out'))", "'preempted', 'timed_out', 'pruned'))")
    widen_check(
        conn, "jobs", "('cancel', 'timeout', 'preempt'))", "('cancel', 'timeout', 'preempt', 'prune'))"
    )
    conn.execute("ALTER TABLE jobs ADD COLUMN python TEXT")
    conn.execute("ALTER TABLE jobs ADD COLUMN env_prefix TEXT")


@migrations
def m005_executor_columns(conn: sqlite3.Connection) -> None:
    """Where an attempt runs: the Ray submission id of a job on a Ray cluster (the reconcile
    pass re-attaches by it after a crash) and the node Ray placed it on."""
    conn.execute("ALTER TABLE jobs ADD COLUMN executor_job_id TEXT")
    conn.execute("ALTER TABLE jobs ADD COLUMN node TEXT")


@migrations
def m006_job_tokens(conn: sqlite3.Connection) -> None:
    """Per-attempt API tokens of jobs on a Ray cluster, stored as their sha256 only: a job on
    another node logs to its own run through the HTTP API with one (`mlbox.scheduler.job_tokens`)."""
    execute_script(
        conn,
        """
        CREATE TABLE job_tokens (
            digest TEXT PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            run_id INTEGER,
            created_at REAL NOT NULL
        );
        CREATE INDEX job_tokens_job ON job_tokens (job_id);
        """,
    )
