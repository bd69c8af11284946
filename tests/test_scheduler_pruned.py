"""``pruned`` on a home made before it existed: the CHECKs grow in place, nothing is lost.

The runs and jobs tables are referenced with ``ON DELETE CASCADE``, so the
migrations widen their CHECK constraints instead of rebuilding them
(`mlbox.store.migrations.widen_check`); this test applies the old
migrations, writes rows with children, then applies the new ones.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlbox.scheduler.migrations import migrations as scheduler_migrations
from mlbox.store.db import Database
from mlbox.store.migrations import Migrations
from mlbox.tracking.migrations import migrations as tracking_migrations


def _only(full: Migrations, count: int) -> Migrations:
    return Migrations(full.name, full.steps[:count])


def test_old_home_gains_pruned_without_losing_rows(tmp_path: Path) -> None:
    db = Database(tmp_path / "mlbox.db")
    _only(tracking_migrations, 1).apply(db)
    _only(scheduler_migrations, 3).apply(db)
    with db.atomic() as conn:
        conn.execute("INSERT INTO experiments (id, name, created_at) VALUES (1, 'e', 0)")
        conn.execute(
            "INSERT INTO runs (id, experiment_id, name, status, start_time, heartbeat, host, pid)"
            " VALUES (1, 1, 'r', 'running', 0, 0, 'h', 1)"
        )
        conn.execute("INSERT INTO params (run_id, key, value) VALUES (1, 'lr', '0.1')")
        conn.execute(
            "INSERT INTO jobs (id, name, spec, state, priority, gpus, gpu_memory_mb, cpus, preemptible,"
            " max_retries, created_at, queued_at, run_id) VALUES (1, 'j', '{}', 'running', 0, 0, 0, 1, 0, 0, 0, 0, 1)"
        )
        conn.execute(
            "INSERT INTO job_attempts (job_id, attempt, gpus, started_at, outcome) VALUES (1, 1, '[]', 0, 'running')"
        )
    with pytest.raises(sqlite3.IntegrityError), db.atomic() as conn:
        conn.execute("UPDATE runs SET status = 'pruned' WHERE id = 1")

    assert tracking_migrations.apply(db) == ["m002_pruned_runs", "m003_deleted_marks", "m004_live_runs_index"]
    assert scheduler_migrations.apply(db) == [
        "m004_pruned_and_environment",
        "m005_executor_columns",
        "m006_job_tokens",
    ]
    assert tracking_migrations.apply(db) == [] and scheduler_migrations.apply(db) == []

    with db.atomic() as conn:
        conn.execute("UPDATE runs SET status = 'pruned' WHERE id = 1")
        conn.execute("UPDATE jobs SET state = 'pruned', stop_reason = 'prune', python = '/p' WHERE id = 1")
    assert db.query("SELECT value FROM params WHERE run_id = 1")[0][0] == "0.1"
    assert db.query("SELECT COUNT(*) FROM job_attempts WHERE job_id = 1")[0][0] == 1
    assert db.query("PRAGMA integrity_check")[0][0] == "ok"
    with pytest.raises(sqlite3.IntegrityError), db.atomic() as conn:
        conn.execute("UPDATE jobs SET state = 'bogus' WHERE id = 1")
