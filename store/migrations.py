"""Schema as an ordered list of migration functions, applied once each.

A shipped migration is never edited; a change is a new function. Applying runs
inside one ``BEGIN IMMEDIATE`` transaction that first re-reads the applied set,
so two processes starting at once cannot both apply a migration (the race that
bites MLflow on SQLite).

Each applied migration is recorded in ``_migrations`` with the mlbox release
that applied it. A set that finds a migration it does not know was opened by
an older release than the one that wrote the file: it refuses the database
(`UnusableStore`, naming both releases) instead of reading and writing a
schema it does not understand. Every service's set checks this when it is
applied, which every service does when it is built.
"""

from __future__ import annotations

import importlib.metadata
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlbox.store.db import Database
from mlbox.store.errors import UnusableStore

MigrationFn = Callable[[sqlite3.Connection], None]


def _release() -> str:
    """The installed mlbox release (read from its metadata: the store imports nothing of mlbox)."""
    try:
        return importlib.metadata.version("mlbox")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


RELEASE = _release()
"""Recorded beside each migration this process applies."""


@dataclass
class Migrations:
    """A named set of migrations; each service may own one set."""

    name: str
    steps: list[tuple[str, MigrationFn]] = field(default_factory=list)

    def __call__(self, fn: MigrationFn) -> MigrationFn:
        self.steps.append((fn.__name__, fn))
        return fn

    def pending(self, db: Database) -> list[str]:
        """The migrations still to apply; `UnusableStore` when the file has one this release lacks."""
        done = _applied(db, self.name)
        self._refuse_newer(db, done)
        return [name for name, _ in self.steps if name not in done]

    def _refuse_newer(self, db: Database, done: dict[str, str | None]) -> None:
        known = {name for name, _ in self.steps}
        unknown = [(name, release) for name, release in done.items() if name not in known]
        if not unknown:
            return
        name, release = unknown[-1]
        writer = f"mlbox {release}" if release else "a newer mlbox"
        raise UnusableStore(
            f"the database {db.path} was written by {writer}: its {self.name!r} schema has migration"
            f" {name!r}, which this mlbox {RELEASE} does not know; upgrade mlbox to {release or 'that'}"
            " release or later, or point MLBOX_HOME at another folder",
            field="MLBOX_HOME",
        )

    def apply(self, db: Database) -> list[str]:
        """Apply what is missing; returns the names applied (empty when up to date)."""
        if not self.pending(db):
            return []
        _backup_first(db, self.name)
        applied: list[str] = []
        with db.atomic() as conn:
            done = _applied(db, self.name)
            self._refuse_newer(db, done)
            for name, fn in self.steps:
                if name in done:
                    continue
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (migration_set, name, applied_at, mlbox_version)"
                    " VALUES (?, ?, ?, ?)",
                    (self.name, name, time.time(), RELEASE),
                )
                applied.append(name)
        return applied


_STARTED = time.time()
_backed_up: set[Path] = set()


def _backup_first(db: Database, set_name: str) -> None:
    """Copy a database that migrations written before this process started are in, before its
    schema changes (`mlbox.store.backup.snapshot_database` into ``backups/`` beside it), once
    per process: a migration gone wrong, or a release rolled back, leaves the old file. A home
    created by this process has nothing to keep."""
    if db.path in _backed_up or not db.query(
        "SELECT 1 FROM _migrations WHERE applied_at < ? LIMIT 1", (_STARTED,)
    ):
        return
    from mlbox.store.backup import snapshot_database

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    snapshot_database(
        db.path, db.path.parent / "backups" / f"{db.path.name}.{stamp}.before-{set_name}-{RELEASE}"
    )
    _backed_up.add(db.path)


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run several statements inside the current transaction.

    ``Connection.executescript`` would COMMIT first and break the migration's
    atomicity, so statements are split (with ``sqlite3.complete_statement``)
    and run one by one.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip():
                conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:60]!r}")


def _ledger(db: Database) -> None:
    """Create ``_migrations``, or add the ``mlbox_version`` column to one made before it existed
    (NULL for those rows: they were applied by a release that did not record itself)."""
    db.conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at REAL NOT NULL,"
        " mlbox_version TEXT, PRIMARY KEY (migration_set, name))"
    )
    if "mlbox_version" in _columns(db):
        return
    with db.atomic() as conn:  # re-read under the write lock: two processes may both get here
        if "mlbox_version" not in _columns(db):
            conn.execute("ALTER TABLE _migrations ADD COLUMN mlbox_version TEXT")


def _columns(db: Database) -> set[str]:
    return {r["name"] for r in db.query("PRAGMA table_info(_migrations)")}


def _applied(db: Database, set_name: str) -> dict[str, str | None]:
    """The migrations of ``set_name`` in the file, in the order applied, with the release of each."""
    _ledger(db)
    rows = db.query(
        "SELECT name, mlbox_version FROM _migrations WHERE migration_set = ? ORDER BY applied_at, rowid",
        (set_name,),
    )
    return {r["name"]: r["mlbox_version"] for r in rows}


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
