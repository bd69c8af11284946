"""The labeling service's tables. Shipped migrations are never edited."""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("labeling")


@migrations
def m001_labeling(conn: sqlite3.Connection) -> None:
    # `taken` counts a task's labels plus its live claims, and `open` is
    # taken < the project's overlap: the partial index over open tasks in
    # queue order is what keeps "next task" a short index walk with 100,000
    # tasks (done tasks leave the index instead of being scanned past).
    execute_script(
        conn,
        """
        CREATE TABLE label_projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            schema TEXT NOT NULL,
            instructions TEXT NOT NULL DEFAULT '',
            overlap INTEGER NOT NULL DEFAULT 1 CHECK (overlap >= 1),
            model TEXT,
            retrain_every INTEGER,
            created_at REAL NOT NULL
        );
        CREATE TABLE label_tasks (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES label_projects (id) ON DELETE CASCADE,
            data TEXT NOT NULL,
            source TEXT NOT NULL DEFAULT '',
            priority REAL NOT NULL DEFAULT 0,
            taken INTEGER NOT NULL DEFAULT 0,
            open INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL
        );
        CREATE INDEX label_tasks_queue ON label_tasks (project_id, priority DESC, id) WHERE open = 1;
        CREATE INDEX label_tasks_project ON label_tasks (project_id, id);
        CREATE TABLE label_claims (
            task_id INTEGER NOT NULL REFERENCES label_tasks (id) ON DELETE CASCADE,
            annotator TEXT NOT NULL,
            project_id INTEGER NOT NULL,
            until REAL NOT NULL,
            PRIMARY KEY (task_id, annotator)
        );
        CREATE INDEX label_claims_until ON label_claims (project_id, until);
        CREATE INDEX label_claims_annotator ON label_claims (project_id, annotator, until);
        CREATE TABLE label_annotations (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES label_tasks (id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL,
            annotator TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('label', 'skip')),
            value TEXT,
            comment TEXT NOT NULL DEFAULT '',
            lead_time_s REAL,
            from_prelabel INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (task_id, annotator)
        );
        CREATE INDEX label_annotations_project ON label_annotations (project_id, created_at);
        CREATE TABLE label_prelabels (
            task_id INTEGER NOT NULL REFERENCES label_tasks (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            value TEXT NOT NULL,
            confidence REAL,
            created_at REAL NOT NULL,
            PRIMARY KEY (task_id, model)
        );
        CREATE TABLE label_reviews (
            id INTEGER PRIMARY KEY,
            task_id INTEGER NOT NULL REFERENCES label_tasks (id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL,
            reason TEXT NOT NULL CHECK (reason IN ('flagged', 'disagreement', 'suspected mislabel')),
            detail TEXT NOT NULL DEFAULT '',
            created_by TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            resolved_by TEXT,
            resolved_value TEXT,
            resolved_at REAL,
            UNIQUE (task_id, reason)
        );
        CREATE INDEX label_reviews_open ON label_reviews (project_id, resolved_at);
        CREATE TABLE label_exports (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES label_projects (id) ON DELETE CASCADE,
            format TEXT NOT NULL,
            path TEXT NOT NULL,
            digest TEXT NOT NULL,
            rows INTEGER NOT NULL,
            run_id INTEGER,
            created_at REAL NOT NULL
        );
        """,
    )


@migrations
def m002_tasks_without_project_index(conn: sqlite3.Connection) -> None:
    # Every read by project walks tasks in id order (the rowid) or the open-queue index;
    # this second index only doubled the cost of importing a million tasks.
    conn.execute("DROP INDEX IF EXISTS label_tasks_project")


@migrations
def m003_model_accuracy(conn: sqlite3.Connection) -> None:
    # One row per retraining of the project's model in the loop: how many labels it learned from
    # and its accuracy on labels it did not see (cross-validated), so the labeling screen can draw
    # the model's accuracy as labels grow.
    execute_script(
        conn,
        """
        CREATE TABLE label_model_accuracy (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES label_projects (id) ON DELETE CASCADE,
            labels INTEGER NOT NULL CHECK (labels >= 0),
            accuracy REAL CHECK (accuracy IS NULL OR (accuracy >= 0 AND accuracy <= 1)),
            method TEXT NOT NULL,
            model TEXT NOT NULL,
            version INTEGER,
            run_id INTEGER,
            created_at REAL NOT NULL
        );
        CREATE INDEX label_model_accuracy_project ON label_model_accuracy (project_id, id);
        """,
    )
