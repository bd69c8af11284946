"""The feature store's tables. Shipped migrations are never edited.

Two sets: ``features`` lives in ``mlbox.db`` (definitions, versions, training
sets); ``features_online`` lives in ``features/online.db`` (what was
materialized, and when). The online value tables themselves are created per
view version by `mlbox.features.online`, named ``fv_<view>_v<version>``.
"""

from __future__ import annotations

import sqlite3

from mlbox.store.migrations import Migrations, execute_script

migrations = Migrations("features")
online_migrations = Migrations("features_online")


@migrations
def m001_features(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE feature_entities (
            name TEXT PRIMARY KEY,
            join_keys TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        -- One row per version; `definition` is the canonical JSON (plus join keys
        -- resolved at apply time and prose), `hash` identifies it.
        CREATE TABLE feature_view_versions (
            name TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            kind TEXT NOT NULL,
            hash TEXT NOT NULL,
            definition TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (name, version)
        ) WITHOUT ROWID;
        CREATE INDEX feature_view_versions_hash ON feature_view_versions (hash);
        CREATE TRIGGER feature_view_versions_immutable BEFORE UPDATE ON feature_view_versions
        BEGIN
            SELECT RAISE(ABORT, 'feature view versions are immutable');
        END;
        CREATE TABLE feature_training_sets (
            id INTEGER PRIMARY KEY,
            name TEXT,
            created_at REAL NOT NULL,
            features TEXT NOT NULL,
            views TEXT NOT NULL,
            entity_hash TEXT NOT NULL,
            entity_rows INTEGER NOT NULL,
            row_count INTEGER NOT NULL,
            columns TEXT NOT NULL,
            full_feature_names INTEGER NOT NULL,
            timestamp_field TEXT NOT NULL,
            run_id INTEGER
        );
        CREATE INDEX feature_training_sets_run ON feature_training_sets (run_id);
        CREATE TABLE feature_training_set_views (
            training_set INTEGER NOT NULL REFERENCES feature_training_sets(id),
            view TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (view, version, training_set)
        ) WITHOUT ROWID;
        """,
    )


@online_migrations
def m001_online(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        -- A view version's online table and the layout needed to read it without
        -- the catalog: key columns and their SQLite types, features and dtypes, TTL.
        CREATE TABLE online_tables (
            view TEXT NOT NULL,
            version INTEGER NOT NULL,
            table_name TEXT NOT NULL UNIQUE,
            layout TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (view, version)
        ) WITHOUT ROWID;
        -- Written in the same transaction as the window's upserts: a window is
        -- recorded exactly when its rows are in.
        CREATE TABLE online_materializations (
            id INTEGER PRIMARY KEY,
            view TEXT NOT NULL,
            version INTEGER NOT NULL,
            window_start REAL NOT NULL,
            window_end REAL NOT NULL,
            rows INTEGER NOT NULL,
            newest_event_ts REAL,
            finished_at REAL NOT NULL
        );
        CREATE INDEX online_materializations_view ON online_materializations (view, version, window_end);
        """,
    )


@migrations
def m002_view_deletions(conn: sqlite3.Connection) -> None:
    """Deleted views, by name. A separate table rather than a column on
    ``feature_view_versions``: versions are immutable (a trigger refuses any
    UPDATE), and they stay so that training sets built from a deleted view keep
    their lineage. Applying the definition again removes the row."""
    execute_script(
        conn,
        """
        CREATE TABLE feature_view_deletions (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            deleted_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    )
