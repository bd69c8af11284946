"""The pipelines service's tables. Shipped migrations are never edited."""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script, widen_check

migrations = Migrations("pipelines")


@migrations
def m001_pipelines(conn: sqlite3.Connection) -> None:
    # ``rev`` grows with every write to a run or its steps: a driver that holds the run in
    # memory reloads it when another process (the CLI's retry, cancel) wrote in between.
    # A backfill's runs share a ``lane`` and start ``queued``: at most ``lane_limit`` of them run.
    # ``worker`` names the process that claimed a running in-process step ("pid:start"):
    # a claim by a dead process is given back, so a killed appliance resumes the step.
    execute_script(
        conn,
        """
        CREATE TABLE pipeline_runs (
            id INTEGER PRIMARY KEY,
            pipeline TEXT NOT NULL,
            ref TEXT NOT NULL,
            params TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            no_cache INTEGER NOT NULL DEFAULT 0,
            trigger TEXT NOT NULL DEFAULT 'manual',
            partition TEXT,
            lane TEXT,
            lane_limit INTEGER,
            rev INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            finished_at REAL,
            message TEXT
        );
        CREATE INDEX pipeline_runs_state ON pipeline_runs (state);
        CREATE INDEX pipeline_runs_pipeline ON pipeline_runs (pipeline, partition);
        CREATE TABLE step_runs (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES pipeline_runs (id),
            node TEXT NOT NULL,
            step TEXT NOT NULL,
            deps TEXT NOT NULL,
            bindings TEXT NOT NULL,
            code_hash TEXT NOT NULL,
            as_job INTEGER NOT NULL,
            use_cache INTEGER NOT NULL,
            retries INTEGER NOT NULL,
            backoff_s REAL NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('pending', 'ready', 'running', 'succeeded', 'failed', 'skipped', 'cached', 'cancelled')),
            attempt INTEGER NOT NULL DEFAULT 0,
            not_before REAL NOT NULL DEFAULT 0,
            worker TEXT,
            job_id INTEGER,
            cache_key TEXT,
            cached_from INTEGER,
            out_kind TEXT,
            out_payload TEXT,
            out_hash TEXT,
            started_at REAL,
            finished_at REAL,
            message TEXT,
            log TEXT NOT NULL DEFAULT '',
            UNIQUE (run_id, node)
        );
        CREATE INDEX step_runs_cache ON step_runs (cache_key, state);
        CREATE INDEX step_runs_job ON step_runs (job_id);
        CREATE TABLE pipeline_schedules (
            id INTEGER PRIMARY KEY,
            ref TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('cron', 'folder', 'alias')),
            spec TEXT NOT NULL,
            params TEXT NOT NULL,
            catchup TEXT NOT NULL DEFAULT 'latest' CHECK (catchup IN ('none', 'latest', 'all')),
            last_tick REAL,
            state TEXT NOT NULL DEFAULT '',
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL
        );
        CREATE TABLE pipeline_seen_files (
            schedule_id INTEGER NOT NULL REFERENCES pipeline_schedules (id),
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            run_id INTEGER,
            PRIMARY KEY (schedule_id, name)
        );
        """,
    )


@migrations
def m002_lineage(conn: sqlite3.Connection) -> None:
    # What each step run read (a raw file, with its content hash when it read it) and made
    # (a frame's or array's sha256, a model version "name/version", a dataset's hash). With
    # step_runs' deps and cached_from this is the graph `mlbox lineage` walks both ways.
    execute_script(
        conn,
        """
        CREATE TABLE pipeline_lineage (
            id INTEGER PRIMARY KEY,
            step_run_id INTEGER NOT NULL REFERENCES step_runs (id),
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            kind TEXT NOT NULL,
            ref TEXT NOT NULL,
            sha256 TEXT,
            at REAL NOT NULL
        );
        CREATE INDEX pipeline_lineage_ref ON pipeline_lineage (kind, ref);
        CREATE INDEX pipeline_lineage_step ON pipeline_lineage (step_run_id);
        """,
    )


@migrations
def m003_upstream_triggers(conn: sqlite3.Connection) -> None:
    # A schedule may follow a logged dataset's content hash or a feature store training set.
    widen_check(
        conn,
        "pipeline_schedules",
        "kind IN ('cron', 'folder', 'alias')",
        "kind IN ('cron', 'folder', 'alias', 'dataset', 'training_set')",
    )


@migrations
def m004_import_roots(conn: sqlite3.Connection) -> None:
    # The folder a run's or schedule's pipeline module was imported from by whoever submitted
    # it, so an appliance started in another folder can import it too (NULL: not known).
    execute_script(
        conn,
        """
        ALTER TABLE pipeline_runs ADD COLUMN import_root TEXT;
        ALTER TABLE pipeline_schedules ADD COLUMN import_root TEXT;
        """,
    )
