"""Deleted runs and experiments: the mark, what listings show, and the purge.

Deleting marks (``deleted_at``), as MLflow's ``deleted`` lifecycle stage does; the rows
stay, with their artifacts, until the retention period has passed and ``mlbox gc``
purges them (`purge`). An experiment's deletion marks its live runs with the same
instant, so restoring the experiment brings back exactly those runs and not the ones
deleted on their own before it.

Invariants: a run that is still ``running`` is never purged (its writer would lose its
rows midway); a run something registered a dependency on since its deletion is kept
(the dependents are asked again at purge time); purging goes in small transactions, so
the appliance's writers wait milliseconds, not the length of the purge.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Literal, cast

import msgspec

from mlbox.store.db import Database
from mlbox.store.errors import InvalidInput
from mlbox.tracking.dependents import Dependents

Lifecycle = Literal["active", "deleted", "all"]
LIFECYCLES: tuple[str, ...] = ("active", "deleted", "all")
"""``active``: not deleted (what every listing shows by default); ``deleted``: only the
deleted ones (restorable until purged); ``all``: both."""

PURGE_BATCH = 200
"""Runs deleted per transaction by the purge."""


class Purged(msgspec.Struct, frozen=True):
    """What a purge removed (or, with ``dry_run``, would remove)."""

    runs: list[int]
    experiments: list[int]
    kept: list[str]
    """Why a deleted run past the retention period stays (still running, something needs it)."""


def check_lifecycle(value: str) -> Lifecycle:
    if value not in LIFECYCLES:
        raise InvalidInput(
            f"lifecycle must be one of {', '.join(LIFECYCLES)}; got {value!r}", field="lifecycle"
        )
    return cast(Lifecycle, value)


def where(alias: str, lifecycle: Lifecycle) -> str:
    """The SQL condition on table ``alias`` (``r`` or ``e``) for ``lifecycle`` (checked: it
    comes from callers' query strings)."""
    lifecycle = check_lifecycle(lifecycle)
    if lifecycle == "active":
        return f"{alias}.deleted_at IS NULL"
    if lifecycle == "deleted":
        return f"{alias}.deleted_at IS NOT NULL"
    return "1"


def mark_runs(conn: sqlite3.Connection, run_ids: Sequence[int], now: float) -> None:
    conn.executemany(
        "UPDATE runs SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", [(now, i) for i in run_ids]
    )


def purge(db: Database, dependents: Dependents[int], *, cutoff: float, dry_run: bool = False) -> Purged:
    """Remove runs deleted at or before ``cutoff`` (and experiments whose runs are all gone)."""
    rows = db.query(
        "SELECT id, status FROM runs WHERE deleted_at IS NOT NULL AND deleted_at <= ? ORDER BY id", (cutoff,)
    )
    kept = [f"run {r['id']} is still running" for r in rows if r["status"] == "running"]
    candidates = [int(r["id"]) for r in rows if r["status"] != "running"]
    runs: list[int] = []
    for run_id in candidates:
        needed = dependents.of([run_id])
        if needed:
            kept.append(f"run {run_id}: {needed[0]}")
        else:
            runs.append(run_id)
    if not dry_run:
        for start in range(0, len(runs), PURGE_BATCH):
            batch = runs[start : start + PURGE_BATCH]
            with db.atomic() as conn:
                conn.executemany(
                    "DELETE FROM runs WHERE id = ? AND deleted_at IS NOT NULL", [(i,) for i in batch]
                )
    gone = set(runs)
    experiments: list[int] = []
    for e in db.query(
        "SELECT id FROM experiments WHERE deleted_at IS NOT NULL AND deleted_at <= ? ORDER BY id", (cutoff,)
    ):
        left = db.query("SELECT id FROM runs WHERE experiment_id = ?", (e["id"],))
        if all(r["id"] in gone for r in left) and (dry_run or not left):
            experiments.append(int(e["id"]))
    if not dry_run and experiments:
        with db.atomic() as conn:
            conn.executemany(
                "DELETE FROM experiments WHERE id = ? AND deleted_at IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM runs WHERE experiment_id = experiments.id)",
                [(i,) for i in experiments],
            )
    return Purged(runs=runs, experiments=experiments, kept=kept)


def referenced_objects(db: Database, excluding: Sequence[int] = ()) -> set[str]:
    """The sha256 of every artifact a run (deleted or not, until purged) records, but for the
    runs ``excluding`` names (those a dry-run purge would remove)."""
    rows = db.query(
        "SELECT DISTINCT sha256 FROM artifacts WHERE run_id NOT IN (SELECT value FROM json_each(?))",
        (json.dumps(list(excluding)),),
    )
    return {r[0] for r in rows}
