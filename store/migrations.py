"""Schema as an ordered list of migration functions, applied once each.

A shipped migration is never edited; a change is a new function. Applying runs
inside one ``BEGIN IMMEDIATE`` transaction that first re-reads the applied set,
so two processes starting at once cannot both apply a migration (the race that
bites MLflow on SQLite).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlbox.store.db import Database

MigrationFn = Callable[[sqlite3.Connection], None]


@dataclass
class Migrations:
    """A named set of migrations; each service may own one set."""

    name: str
    steps: list[tuple[str, MigrationFn]] = field(default_factory=list)

    def __call__(self, fn: MigrationFn) -> MigrationFn:
        self.steps.append((fn.__name__, fn))
        return fn

    def pending(self, db: Database) -> list[str]:
        done = _applied(db, self.name)
        return [name for name, _ in self.steps if name not in done]

    def apply(self, db: Database) -> list[str]:
        """Apply what is missing; returns the names applied (empty when up to date)."""
        if not self.pending(db):
            return []
        applied: list[str] = []
        with db.atomic() as conn:
            done = _applied(db, self.name)
            for name, fn in self.steps:
                if name in done:
                    continue
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
                    (self.name, name, time.time()),
                )
                applied.append(name)
        return applied


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


def _applied(db: Database, set_name: str) -> set[str]:
    db.conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations ("
        " migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at REAL NOT NULL,"
        " PRIMARY KEY (migration_set, name))"
    )
    rows = db.query("SELECT name FROM _migrations WHERE migration_set = ?", (set_name,))
    return {r["name"] for r in rows}
