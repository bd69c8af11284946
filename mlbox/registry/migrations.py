"""The model registry's tables. Shipped migrations are never edited.

Runs belong to the tracking service, so ``run_id`` is a plain column with no
foreign key across services; what the registry needs of the run (experiment,
datasets, code version) is copied into ``lineage`` at registration.
"""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("registry")


@migrations
def m001_registry(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE models (
            name TEXT PRIMARY KEY,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        ) WITHOUT ROWID;
        -- Versions are immutable: the service has no UPDATE path for them.
        CREATE TABLE model_versions (
            model TEXT NOT NULL REFERENCES models(name),
            version INTEGER NOT NULL CHECK (version >= 1),
            flavor TEXT NOT NULL,
            manifest TEXT NOT NULL,
            signature TEXT,
            run_id INTEGER,
            lineage TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            PRIMARY KEY (model, version)
        ) WITHOUT ROWID;
        CREATE INDEX model_versions_run ON model_versions (run_id);
        CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
        BEGIN
            SELECT RAISE(ABORT, 'model versions are immutable');
        END;
        CREATE TABLE model_files (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            PRIMARY KEY (model, version, path),
            FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
        ) WITHOUT ROWID;
        CREATE TRIGGER model_files_immutable BEFORE UPDATE ON model_files
        BEGIN
            SELECT RAISE(ABORT, 'model files are immutable');
        END;
        CREATE TABLE aliases (
            model TEXT NOT NULL,
            alias TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (model, alias),
            FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
        ) WITHOUT ROWID;
        CREATE TABLE alias_history (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL REFERENCES models(name),
            alias TEXT NOT NULL,
            from_version INTEGER,
            to_version INTEGER,
            moved_at REAL NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX alias_history_model ON alias_history (model, id);
        """,
    )
