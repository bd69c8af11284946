"""What MLflow's API has and mlbox's services do not: experiment and model tags, registered
models announced before their first version, MLflow 3's logged models.

These are the MLflow layer's own tables (``mlflow_*``, their own migration
set), in the same database as the services so one transaction... is never
needed across them: each call here is one ``BEGIN IMMEDIATE`` of its own, and
the service tables are only ever reached through the services. Deleting and
restoring runs and experiments is the tracking service's own now
(``deleted_at``); the deleted marks an older mlbox kept here in
``mlflow_deleted`` are handed to it once (`MlflowState.adopt_deleted_marks`).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from typing import Any

import msgspec

from mlbox.store.db import Database
from mlbox.store.errors import Conflict, NotFound
from mlbox.store.migrations import Migrations, execute_script
from mlbox.tracking.service import DEFAULT_EXPERIMENT, TrackingService

log = logging.getLogger("mlbox.mlflow.state")

migrations = Migrations("mlflow")


@migrations
def m001_mlflow(conn: sqlite3.Connection) -> None:
    execute_script(
        conn,
        """
        CREATE TABLE mlflow_deleted (
            kind TEXT NOT NULL CHECK (kind IN ('experiment', 'run')),
            id INTEGER NOT NULL,
            deleted_at REAL NOT NULL,
            PRIMARY KEY (kind, id)
        );
        CREATE TABLE mlflow_tags (
            kind TEXT NOT NULL CHECK (kind IN ('experiment', 'model', 'version', 'logged_model')),
            owner TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (kind, owner, key)
        );
        CREATE TABLE mlflow_logged_models (
            model_id TEXT PRIMARY KEY,
            experiment_id TEXT NOT NULL,
            run_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            artifact_path TEXT NOT NULL,
            status TEXT NOT NULL,
            model_type TEXT NOT NULL DEFAULT '',
            params TEXT NOT NULL DEFAULT '{}',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX mlflow_logged_models_run ON mlflow_logged_models (run_id);
        CREATE TABLE mlflow_registered_models (
            name TEXT PRIMARY KEY,
            description TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        );
        """,
    )


class LoggedModel(msgspec.Struct, frozen=True):
    """MLflow 3's logged model: here a folder of its source run's artifacts (``artifact_path``)."""

    model_id: str
    experiment_id: str
    run_id: int
    name: str
    artifact_path: str
    status: str
    model_type: str
    params: dict[str, str]
    tags: dict[str, str]
    created_at: float
    updated_at: float


class MlflowState:
    def __init__(self, db: Database) -> None:
        self.db = db
        migrations.apply(db)
        self._marks_adopted = False
        self._adopt_lock = threading.Lock()

    def default_experiment_id(self) -> int | None:
        """The row id of mlbox's ``Default`` experiment, which MLflow calls ``"0"`` (None while
        there is none): one indexed read, so answers can say ``"0"`` without creating it."""
        row = self.db.query_one("SELECT id FROM experiments WHERE name = ?", (DEFAULT_EXPERIMENT,))
        return None if row is None else int(row["id"])

    # -- deleted marks of older homes ---------------------------------------------

    def adopt_deleted_marks(self, tracking: TrackingService) -> None:
        """Hand the deleted marks an older mlbox kept here (``mlflow_deleted``) to the tracking
        service, whose own deletion replaced them, once: each mark becomes its run's or
        experiment's ``deleted_at`` and leaves the table. A mark mlbox now refuses (a run a
        model version was registered from) or whose run is gone is dropped with a log line."""
        if self._marks_adopted:
            return
        with self._adopt_lock:
            if self._marks_adopted:
                return
            rows = self.db.query("SELECT kind, id, deleted_at FROM mlflow_deleted ORDER BY kind, id")
            for row in rows:  # experiments sort before runs: an experiment takes its runs along
                kind, ident, at = row["kind"], int(row["id"]), float(row["deleted_at"])
                try:
                    if kind == "experiment":
                        tracking.delete_experiment(ident, now=at)
                    else:
                        tracking.delete_run(ident, now=at)
                except (NotFound, Conflict) as exc:
                    log.warning("an MLflow deleted mark on %s %d is dropped: %s", kind, ident, exc.message)
                with self.db.atomic() as conn:
                    conn.execute("DELETE FROM mlflow_deleted WHERE kind = ? AND id = ?", (kind, ident))
            self._marks_adopted = True

    # -- tags --------------------------------------------------------------------

    def tags(self, kind: str, owner: str) -> dict[str, str]:
        rows = self.db.query(
            "SELECT key, value FROM mlflow_tags WHERE kind = ? AND owner = ? ORDER BY key", (kind, owner)
        )
        return {r["key"]: r["value"] for r in rows}

    def set_tags(self, kind: str, owner: str, tags: dict[str, str]) -> None:
        with self.db.atomic() as conn:
            conn.executemany(
                "INSERT INTO mlflow_tags (kind, owner, key, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, owner, key) DO UPDATE SET value = excluded.value",
                [(kind, owner, k, v) for k, v in tags.items()],
            )

    def delete_tag(self, kind: str, owner: str, key: str) -> None:
        with self.db.atomic() as conn:
            cur = conn.execute(
                "DELETE FROM mlflow_tags WHERE kind = ? AND owner = ? AND key = ?", (kind, owner, key)
            )
        if cur.rowcount == 0:
            raise NotFound(f"no tag {key!r}", field="key")

    def drop_tags(self, kind: str, owner: str) -> None:
        with self.db.atomic() as conn:
            conn.execute("DELETE FROM mlflow_tags WHERE kind = ? AND owner = ?", (kind, owner))

    # -- registered models without versions -----------------------------------------

    def announce_model(self, name: str, description: str) -> bool:
        """Record a registered model MLflow created before its first version; False if known."""
        with self.db.atomic() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO mlflow_registered_models (name, description, created_at)"
                " VALUES (?, ?, ?)",
                (name, description, time.time()),
            )
        return cur.rowcount > 0

    def announced(self, name: str | None = None) -> dict[str, tuple[str, float]]:
        sql = "SELECT name, description, created_at FROM mlflow_registered_models"
        rows = self.db.query(sql + " WHERE name = ?", (name,)) if name else self.db.query(sql)
        return {r["name"]: (r["description"], r["created_at"]) for r in rows}

    def describe_announced(self, name: str, description: str) -> None:
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE mlflow_registered_models SET description = ? WHERE name = ?", (description, name)
            )

    def rename_model(self, name: str, new_name: str) -> None:
        """Move what this layer keeps of a model (its announcement, its and its versions' tags)
        to ``new_name``, after the registry renamed it (or before its first version)."""
        with self.db.atomic() as conn:
            conn.execute("UPDATE mlflow_registered_models SET name = ? WHERE name = ?", (new_name, name))
            conn.execute(
                "UPDATE mlflow_tags SET owner = ? WHERE kind = 'model' AND owner = ?", (new_name, name)
            )
            conn.execute(
                "UPDATE mlflow_tags SET owner = ? || substr(owner, ?) WHERE kind = 'version'"
                " AND substr(owner, 1, ?) = ?",
                (new_name, len(name) + 1, len(name) + 1, f"{name}/"),
            )

    def forget_model(self, name: str) -> None:
        """Drop what this layer keeps of a deleted model: its announcement, its tags and its
        versions' tags (owners ``name/N``)."""
        with self.db.atomic() as conn:
            conn.execute("DELETE FROM mlflow_registered_models WHERE name = ?", (name,))
            conn.execute("DELETE FROM mlflow_tags WHERE kind = 'model' AND owner = ?", (name,))
            conn.execute(
                "DELETE FROM mlflow_tags WHERE kind = 'version' AND substr(owner, 1, ?) = ?",
                (len(name) + 1, f"{name}/"),
            )

    # -- logged models -----------------------------------------------------------

    def create_logged_model(
        self,
        *,
        experiment_id: str,
        run_id: int,
        name: str,
        model_type: str,
        params: dict[str, str],
        tags: dict[str, str],
        artifact_path: str | None = None,
        status: str = "PENDING",
    ) -> LoggedModel:
        """A logged model in its run's ``artifact_path`` (by default a folder named after it that
        no other logged model of the run has); PENDING until its files are uploaded."""
        model_id = f"m-{secrets.token_hex(16)}"
        now = time.time()
        with self.db.atomic() as conn:
            taken = {
                r[0]
                for r in conn.execute(
                    "SELECT artifact_path FROM mlflow_logged_models WHERE run_id = ?", (run_id,)
                )
            }
            # the run's folder for it: its name, unless another logged model of the run has it
            path = artifact_path or (name if name not in taken else f"{name}-{model_id[2:10]}")
            conn.execute(
                "INSERT INTO mlflow_logged_models (model_id, experiment_id, run_id, name, artifact_path,"
                " status, model_type, params, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model_id,
                    experiment_id,
                    run_id,
                    name,
                    path,
                    status,
                    model_type,
                    json.dumps(params),
                    now,
                    now,
                ),
            )
            conn.executemany(
                "INSERT INTO mlflow_tags (kind, owner, key, value) VALUES ('logged_model', ?, ?, ?)",
                [(model_id, k, v) for k, v in tags.items()],
            )
        return self.logged_model(model_id)

    def _logged(self, row: sqlite3.Row) -> LoggedModel:
        return LoggedModel(
            model_id=row["model_id"],
            experiment_id=row["experiment_id"],
            run_id=row["run_id"],
            name=row["name"],
            artifact_path=row["artifact_path"],
            status=row["status"],
            model_type=row["model_type"],
            params=json.loads(row["params"]),
            tags=self.tags("logged_model", row["model_id"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def logged_model(self, model_id: str) -> LoggedModel:
        row = self.db.query_one("SELECT * FROM mlflow_logged_models WHERE model_id = ?", (model_id,))
        if row is None:
            raise NotFound(f"no logged model {model_id!r}", field="model_id")
        return self._logged(row)

    def logged_models(
        self, *, run_id: int | None = None, experiment_ids: list[str] | None = None
    ) -> list[LoggedModel]:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if experiment_ids:
            where.append(f"experiment_id IN ({', '.join('?' * len(experiment_ids))})")
            params.extend(experiment_ids)
        rows = self.db.query(
            f"SELECT * FROM mlflow_logged_models WHERE {' AND '.join(where)} ORDER BY created_at DESC",
            params,
        )
        return [self._logged(r) for r in rows]

    def update_logged_model(
        self, model_id: str, *, status: str | None = None, params: dict[str, str] | None = None
    ) -> LoggedModel:
        current = self.logged_model(model_id)
        merged = {**current.params, **(params or {})}
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE mlflow_logged_models SET status = ?, params = ?, updated_at = ? WHERE model_id = ?",
                (status or current.status, json.dumps(merged), time.time(), model_id),
            )
        return self.logged_model(model_id)

    def delete_logged_model(self, model_id: str) -> None:
        self.logged_model(model_id)
        with self.db.atomic() as conn:
            conn.execute("DELETE FROM mlflow_logged_models WHERE model_id = ?", (model_id,))
            conn.execute("DELETE FROM mlflow_tags WHERE kind = 'logged_model' AND owner = ?", (model_id,))


_states: dict[int, tuple[Database, MlflowState]] = {}
_lock = threading.Lock()


def state_for(db: Database) -> MlflowState:
    """The one `MlflowState` of ``db`` (its migrations applied on first use)."""
    with _lock:
        found = _states.get(id(db))
        if found is None or found[0] is not db:
            found = (db, MlflowState(db))
            _states[id(db)] = found
        return found[1]


def json_params(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(value or {}).items()}
