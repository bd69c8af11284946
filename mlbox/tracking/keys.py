"""Which param and metric keys the runs of one experiment (or of all) carry.

The TUI narrows its runs table to one experiment's columns; these are the
keys it offers. Two indexed DISTINCT queries, never a read of the runs.
"""

from __future__ import annotations

import msgspec

from mlbox.store.db import Database


class RunKeys(msgspec.Struct, frozen=True):
    params: list[str]
    metrics: list[str]


def run_keys(db: Database, experiment_id: int | None) -> RunKeys:
    """The sorted param and metric keys of the runs of ``experiment_id`` (None: of every run)."""
    if experiment_id is None:
        params = db.query("SELECT DISTINCT key FROM params ORDER BY key")
        metrics = db.query("SELECT DISTINCT key FROM latest_metrics ORDER BY key")
    else:
        scope = "run_id IN (SELECT id FROM runs WHERE experiment_id = ?)"
        params = db.query(f"SELECT DISTINCT key FROM params WHERE {scope} ORDER BY key", (experiment_id,))
        metrics = db.query(
            f"SELECT DISTINCT key FROM latest_metrics WHERE {scope} ORDER BY key", (experiment_id,)
        )
    return RunKeys(params=[r[0] for r in params], metrics=[r[0] for r in metrics])
