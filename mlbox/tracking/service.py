"""The tracking service: experiments, runs, params, metrics, artifacts, datasets.

It owns the tracking tables; other services ask it, never its tables. Every
write is one ``BEGIN IMMEDIATE`` transaction, so a crash leaves either all of
a call's rows or none. The metric tables (chunked series, latest values, and
how NaN and ±inf are stored) are `mlbox.tracking.metrics`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlbox.store.artifacts import ArtifactStore, clean_relpath
from mlbox.store.db import Database
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking import lifecycle, metrics, search
from mlbox.tracking.dependents import Dependents, refusal
from mlbox.tracking.keys import RunKeys, run_keys
from mlbox.tracking.lifecycle import Lifecycle, Purged
from mlbox.tracking.lifecycle import where as lifecycle_where
from mlbox.tracking.liveness import Liveness, is_dead
from mlbox.tracking.migrations import migrations
from mlbox.tracking.provenance import CodeVersion
from mlbox.tracking.schemas import (
    RUN_STATUSES,
    ArtifactInfo,
    Comparison,
    DatasetInfo,
    Experiment,
    MetricPoint,
    MetricSummary,
    Run,
    RunDetail,
    RunPage,
)
from mlbox.tracking.series import Chunk, group
from mlbox.tracking.validation import check_key, check_step, check_value, param_text

MAX_PAGE = 50_000
DEFAULT_EXPERIMENT = "Default"

MetricRow = tuple[str, int, float, float]
"""(key, step, timestamp, value) — one point of a metric series."""


class TrackingService:
    def __init__(self, db: Database, artifacts: ArtifactStore) -> None:
        self.db = db
        self.artifacts = artifacts
        self.run_dependents: Dependents[int] = Dependents("run")
        """Checks other services register (a model version's source run, a training-set record):
        a run they name is never deleted (`mlbox.tracking.dependents`)."""
        migrations.apply(db)

    # -- experiments -------------------------------------------------------

    def _experiment_from_row(self, row: sqlite3.Row) -> Experiment:
        return Experiment(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            created_at=row["created_at"],
            run_count=row["run_count"],
            deleted_at=row["deleted_at"],
        )

    # A live experiment counts its live runs; a deleted one the runs deleted with it.
    _RUN_COUNT = (
        "(SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id AND"
        " ((r.deleted_at IS NULL AND e.deleted_at IS NULL) OR r.deleted_at = e.deleted_at)) AS run_count"
    )

    def list_experiments(self, lifecycle: Lifecycle = "active") -> list[Experiment]:
        """Experiments by name; deleted ones only with ``lifecycle`` ``deleted`` or ``all``."""
        shown = lifecycle_where("e", lifecycle)
        rows = self.db.query(
            f"SELECT e.*, {self._RUN_COUNT} FROM experiments e WHERE {shown} ORDER BY e.name"
        )
        return [self._experiment_from_row(r) for r in rows]

    def get_experiment(self, name_or_id: str | int) -> Experiment:
        """One experiment, deleted or not (``deleted_at`` says which)."""
        col = "id" if isinstance(name_or_id, int) else "name"
        row = self.db.query_one(
            f"SELECT e.*, {self._RUN_COUNT} FROM experiments e WHERE e.{col} = ?",
            (name_or_id,),
        )
        if row is None:
            raise NotFound(f"no experiment {name_or_id!r}", field="experiment")
        return self._experiment_from_row(row)

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        check_key(name, "experiment")
        try:
            with self.db.atomic() as conn:
                conn.execute(
                    "INSERT INTO experiments (name, description, created_at) VALUES (?, ?, ?)",
                    (name, description, time.time()),
                )
        except sqlite3.IntegrityError:
            deleted = self.get_experiment(name).deleted_at is not None
            hint = " (deleted: restore it, or purge it with mlbox gc)" if deleted else ""
            raise Conflict(f"experiment {name!r} already exists{hint}", field="experiment") from None
        return self.get_experiment(name)

    def rename_experiment(self, name_or_id: str | int, new_name: str) -> Experiment:
        """Give an experiment another name (MLflow's ``rename_experiment``).

        Runs record their experiment by id, so one UPDATE renames it for every run at
        once. A model version's lineage keeps the name it had at registration (versions
        never change) and its run id, which leads to the current name. Refused for a
        deleted experiment (as MLflow does), for the Default one (runs with no
        experiment land there by name), and when the name is taken (`Conflict`
        "already exists", deleted experiments included until purged).
        """
        check_key(new_name, "new_name")
        exp = self.get_experiment(name_or_id)
        if new_name == exp.name:
            return exp
        if exp.deleted_at is not None:
            raise Conflict(
                f"experiment {exp.name!r} is deleted: restore it before renaming it", field="experiment"
            )
        if exp.name == DEFAULT_EXPERIMENT:
            raise Conflict(
                f"the {DEFAULT_EXPERIMENT!r} experiment cannot be renamed: runs with no experiment land"
                " there by name",
                field="experiment",
            )
        try:
            with self.db.atomic() as conn:
                conn.execute("UPDATE experiments SET name = ? WHERE id = ?", (new_name, exp.id))
        except sqlite3.IntegrityError:
            deleted = self.get_experiment(new_name).deleted_at is not None
            hint = " (deleted: purge it with mlbox gc first)" if deleted else ""
            raise Conflict(f"experiment {new_name!r} already exists{hint}", field="new_name") from None
        return self.get_experiment(exp.id)

    def _experiment_id(self, name: str) -> int:
        """The id of experiment ``name``, created on first use (no run count: that costs a scan)."""
        check_key(name, "experiment")
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO experiments (name, description, created_at) VALUES (?, '', ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, time.time()),
            )
            row = conn.execute("SELECT id, deleted_at FROM experiments WHERE name = ?", (name,)).fetchone()
        if row["deleted_at"] is not None:
            raise Conflict(f"experiment {name!r} is deleted: restore it first", field="experiment")
        return int(row[0])

    def get_or_create_experiment(self, name: str) -> Experiment:
        self._experiment_id(name)
        return self.get_experiment(name)

    # -- runs ----------------------------------------------------------------

    def create_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        *,
        tags: dict[str, object] | None = None,
        host: str = "",
        pid: int = 0,
        pid_started: float | None = None,
        code: CodeVersion | None = None,
        environment: dict[str, object] | None = None,
        now: float | None = None,
    ) -> Run:
        experiment_id = self._experiment_id(experiment)
        now = time.time() if now is None else now
        with self.db.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO runs (experiment_id, name, status, start_time, heartbeat, host, pid,"
                " pid_started, git_sha, git_dirty, environment)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    experiment_id,
                    name or "",
                    now,
                    now,
                    host,
                    pid,
                    pid_started,
                    code.sha if code else None,
                    None if code is None or code.dirty is None else int(code.dirty),
                    json.dumps(environment or {}, default=str),
                ),
            )
            run_id = int(cur.lastrowid or 0)
            if not name:
                conn.execute("UPDATE runs SET name = ? WHERE id = ?", (f"run-{run_id}", run_id))
            if tags:
                self.set_tags(run_id, tags)
        return self.get_run(run_id)

    def _require_run(self, run_id: int) -> None:
        if self.db.query_one("SELECT 1 FROM runs WHERE id = ?", (run_id,)) is None:
            raise NotFound(f"no run {run_id}", field="run_id")

    def get_run(self, run_id: int) -> Run:
        page = self._runs([run_id])
        if not page:
            raise NotFound(f"no run {run_id}", field="run_id")
        return page[0]

    def attach_run(self, run_id: int, *, host: str, pid: int, pid_started: float | None) -> Run:
        """A process takes over a run (a job's run made by the scheduler): the
        liveness check must then watch this process, and the run is running again."""
        self._require_run(run_id)
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE runs SET host = ?, pid = ?, pid_started = ?, heartbeat = ?, status = 'running',"
                " end_time = NULL WHERE id = ?",
                (host, pid, pid_started, time.time(), run_id),
            )
        return self.get_run(run_id)

    def end_run(self, run_id: int, status: str = "finished", *, now: float | None = None) -> Run:
        if status not in RUN_STATUSES or status == "running":
            raise InvalidInput(
                f"status must be one of {', '.join(RUN_STATUSES[1:])}; got {status!r}",
                field="status",
            )
        self._require_run(run_id)
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, end_time = ? WHERE id = ? AND status = 'running'",
                (status, time.time() if now is None else now, run_id),
            )
        return self.get_run(run_id)

    def set_notes(self, run_id: int, notes: str) -> None:
        self._require_run(run_id)
        with self.db.atomic() as conn:
            conn.execute("UPDATE runs SET notes = ? WHERE id = ?", (str(notes), run_id))

    def heartbeat(self, run_id: int, *, now: float | None = None) -> None:
        with self.db.atomic() as conn:
            cur = conn.execute(
                "UPDATE runs SET heartbeat = ? WHERE id = ?",
                (time.time() if now is None else now, run_id),
            )
        if cur.rowcount == 0:
            raise NotFound(f"no run {run_id}", field="run_id")

    # -- params and tags -------------------------------------------------------

    def log_params(self, run_id: int, params: dict[str, object]) -> None:
        """Params are write-once: the same value again is fine, another value is a Conflict."""
        if not isinstance(params, dict):
            raise InvalidInput("params must be a mapping of name to value", field="params")
        items = [(check_key(k, "param"), param_text(k, v)) for k, v in params.items()]
        self._require_run(run_id)
        with self.db.atomic() as conn:
            for key, text in items:
                row = conn.execute(
                    "SELECT value FROM params WHERE run_id = ? AND key = ?", (run_id, key)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)",
                        (run_id, key, text),
                    )
                elif row["value"] != text:
                    raise Conflict(
                        f"param {key!r} of run {run_id} is already {row['value']!r}; "
                        f"cannot change it to {text!r}",
                        field=key,
                    )

    def set_tags(self, run_id: int, tags: dict[str, object]) -> None:
        if not isinstance(tags, dict):
            raise InvalidInput("tags must be a mapping of name to value", field="tags")
        items = [(run_id, check_key(k, "tag"), str(v)) for k, v in tags.items()]
        self._require_run(run_id)
        with self.db.atomic() as conn:
            conn.executemany(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                items,
            )

    def delete_tag(self, run_id: int, key: str) -> None:
        """Remove one tag of a run (MLflow's ``delete_tag``): `NotFound` when the run has no such
        tag; refused on a deleted run, as MLflow refuses changes to a run that is not active."""
        check_key(key, "key")
        with self.db.atomic() as conn:
            run = conn.execute("SELECT deleted_at FROM runs WHERE id = ?", (run_id,)).fetchone()
            if run is None:
                raise NotFound(f"no run {run_id}", field="run_id")
            if run["deleted_at"] is not None:
                raise Conflict(
                    f"run {run_id} is deleted: restore it before changing its tags", field="run_id"
                )
            cur = conn.execute("DELETE FROM tags WHERE run_id = ? AND key = ?", (run_id, key))
        if cur.rowcount == 0:
            raise NotFound(f"run {run_id} has no tag {key!r}", field="key")

    # -- metrics -----------------------------------------------------------------

    def log_metrics(self, run_id: int, series: Mapping[str, Chunk], *, now: float | None = None) -> None:
        """Append already-validated points, one chunk per key, in one transaction."""
        metrics.append(self.db, run_id, series, now=now)

    def log_points(self, run_id: int, points: Sequence[MetricRow]) -> None:
        """Validate and store (key, step, timestamp, value) points (for API callers)."""
        checked = [
            (check_key(k, "metric"), check_step(k, s), check_value(k, t), check_value(k, v))
            for k, s, t, v in points
        ]
        self._require_run(run_id)
        self.log_metrics(run_id, group(checked))

    def metric_keys(self, run_id: int) -> list[MetricSummary]:
        summaries = metrics.summaries(self.db, run_id)
        if not summaries:
            self._require_run(run_id)
        return summaries

    def metric_series(self, run_id: int, key: str, *, max_points: int | None = None) -> Chunk:
        """A whole series in step order; ``max_points`` thins it evenly for plots."""
        chunk = metrics.read_series(self.db, run_id, key)
        if chunk is None:
            self._require_run(run_id)
            raise NotFound(f"run {run_id} has no metric {key!r}", field="key")
        return chunk.thin(max_points) if max_points else chunk

    def metric_history(self, run_id: int, key: str, *, max_points: int | None = None) -> list[MetricPoint]:
        c = self.metric_series(run_id, key, max_points=max_points)
        return [MetricPoint(s, t, v) for s, t, v in zip(c.steps, c.ts, c.values, strict=True)]

    def export_metrics(self, run_id: int, path: str | Path) -> int:
        """Write a run's whole metric history to Parquet; returns the number of points."""
        series = [(m.key, self.metric_series(run_id, m.key)) for m in self.metric_keys(run_id)]
        self._require_run(run_id)
        return metrics.write_parquet(series, path)

    # -- search --------------------------------------------------------------------

    def _page_ids(self, where: str, params: list[Any], order: str, limit: int, offset: int) -> list[int]:
        """The page's run ids. Chosen first, and only their params, metrics and tags gathered
        after (`_runs`): in one query SQLite builds them for every matching run before sorting
        (250 ms over 2,500 runs of 20 metrics, not 5)."""
        page = self.db.query(
            f"SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE {where} {order}"
            " LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [row[0] for row in page]

    def _ids_by_metric(
        self, where: str, params: list[Any], key: str, direction: str, limit: int, offset: int
    ) -> list[int]:
        """The page's run ids ordered by metric ``key`` as `search.order_sql` orders them (runs
        without a value last, the newest first among equals), read from the ``(key, value)``
        index in order: the runs with a value, then, when the page reaches past them, the others."""
        joined = (
            "FROM latest_metrics lm JOIN runs r ON r.id = lm.run_id JOIN experiments e ON e.id = r.experiment_id"
            f" WHERE lm.key = ? AND lm.value IS NOT NULL AND {where}"
        )
        ids = [
            row[0]
            for row in self.db.query(
                f"SELECT r.id {joined} ORDER BY lm.value {direction}, r.id DESC LIMIT ? OFFSET ?",
                [key, *params, limit, offset],
            )
        ]
        if len(ids) == limit:
            return ids
        if ids:
            valued = offset + len(ids)
        else:
            row = self.db.query_one(f"SELECT COUNT(*) {joined}", [key, *params])
            valued = row[0] if row else 0
        rest = self.db.query(
            f"SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE {where}"
            " AND NOT EXISTS (SELECT 1 FROM latest_metrics WHERE run_id = r.id AND key = ? AND value IS NOT NULL)"
            " ORDER BY r.id DESC LIMIT ? OFFSET ?",
            [*params, key, limit - len(ids), max(0, offset - valued)],
        )
        return ids + [row[0] for row in rest]

    def _runs(self, ids: list[int]) -> list[Run]:
        """Runs by id, with their params, metrics and tags, in the order of ``ids``."""
        position = {run_id: i for i, run_id in enumerate(ids)}
        if not position:
            return []
        sql = (
            "SELECT r.*, e.name AS experiment,"
            " (SELECT json_group_object(key, value) FROM params WHERE run_id = r.id) AS p,"
            # Values travel as 17-digit text: SQLite's JSON keeps only 15 digits.
            " (SELECT json_group_object(key, CASE WHEN value IS NULL THEN NULL"
            " ELSE printf('%!.17g', value) END) FROM latest_metrics WHERE run_id = r.id) AS m,"
            " (SELECT json_group_object(key, value) FROM tags WHERE run_id = r.id) AS t"
            " FROM runs r JOIN experiments e ON e.id = r.experiment_id"
            " WHERE r.id IN (SELECT value FROM json_each(?))"
        )
        rows = sorted(self.db.query(sql, [json.dumps(list(position))]), key=lambda r: position[r["id"]])
        return [
            Run(
                id=r["id"],
                experiment_id=r["experiment_id"],
                experiment=r["experiment"],
                name=r["name"],
                status=r["status"],
                start_time=r["start_time"],
                end_time=r["end_time"],
                heartbeat=r["heartbeat"],
                host=r["host"],
                pid=r["pid"],
                git_sha=r["git_sha"],
                git_dirty=None if r["git_dirty"] is None else bool(r["git_dirty"]),
                params=json.loads(r["p"]) if r["p"] else {},
                metrics=metrics.latest_values(r["m"]),
                tags=json.loads(r["t"]) if r["t"] else {},
                deleted_at=r["deleted_at"],
            )
            for r in rows
        ]

    def search_runs(
        self,
        filter: str = "",
        *,
        order_by: list[str] | None = None,
        experiments: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> RunPage:
        """Runs matching a filter expression (see `mlbox.tracking.search`), ordered and paged;
        deleted runs only with ``lifecycle`` ``deleted`` or ``all``."""
        if not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset must be 0 or more", field="offset")
        params: list[Any] = []
        where = search.to_sql(search.parse(filter), params)
        where = f"({where}) AND {lifecycle_where('r', lifecycle)}"
        if experiments:
            where += f" AND e.name IN ({', '.join('?' * len(experiments))})"
            params.extend(experiments)
        total_row = self.db.query_one(
            f"SELECT COUNT(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE {where}",
            params,
        )
        by_metric = search.metric_order(order_by)
        if by_metric is None:
            order_params: list[Any] = []
            order = search.order_sql(order_by, order_params)
            ids = self._page_ids(where, [*params, *order_params], order, limit, offset)
        else:
            ids = self._ids_by_metric(where, params, *by_metric, limit, offset)
        runs = self._runs(ids)
        return RunPage(runs=runs, total=total_row[0] if total_row else 0, offset=offset, limit=limit)

    def compare(self, run_ids: Sequence[int]) -> Comparison:
        """Params and latest metrics of several runs side by side."""
        if len(run_ids) < 2:
            raise InvalidInput("compare needs two or more run ids", field="run_ids")
        runs = [self.get_run(i) for i in run_ids]
        param_keys = sorted({k for r in runs for k in r.params})
        metric_keys = sorted({k for r in runs for k in r.metrics})
        return Comparison(
            run_ids=[r.id for r in runs],
            params={k: [r.params.get(k) for r in runs] for k in param_keys},
            metrics={k: [r.metrics.get(k) for r in runs] for k in metric_keys},
        )

    def run_detail(self, run_id: int) -> RunDetail:
        run = self.get_run(run_id)
        row = self.db.query_one("SELECT notes, environment FROM runs WHERE id = ?", (run_id,))
        assert row is not None
        return RunDetail(
            run=run,
            notes=row["notes"],
            environment=json.loads(row["environment"]),
            metrics=self.metric_keys(run_id),
            artifacts=self.list_artifacts(run_id),
            datasets=self.list_datasets(run_id),
        )

    # -- artifacts -------------------------------------------------------------------

    def _record_artifacts(self, run_id: int, items: list[tuple[str, str, int]]) -> None:
        now = time.time()
        with self.db.atomic() as conn:
            conn.executemany(
                "INSERT INTO artifacts (run_id, path, sha256, size, created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, path) DO UPDATE SET sha256 = excluded.sha256,"
                " size = excluded.size, created_at = excluded.created_at",
                [(run_id, p, sha, size, now) for p, sha, size in items],
            )

    def log_artifact(
        self, run_id: int, local_path: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Store a file or a folder (recursively) under ``artifact_path``."""
        src = Path(local_path)
        if not src.exists():
            raise NotFound(f"no such file or folder: {src}", field="local_path")
        self._require_run(run_id)
        base = clean_relpath(artifact_path, field="artifact_path") if artifact_path else None
        files: list[tuple[Path, str]] = []
        if src.is_dir():
            for dirpath, _dirs, names in os.walk(src):
                for fname in sorted(names):
                    f = Path(dirpath) / fname
                    rel = f.relative_to(src).as_posix()
                    files.append((f, f"{base}/{rel}" if base else f"{src.name}/{rel}"))
        else:
            files.append((src, f"{base}/{src.name}" if base else src.name))
        items = []
        for f, rel in files:
            blob = self.artifacts.put_file(f)
            items.append((clean_relpath(rel), blob.sha256, blob.size))
        self._record_artifacts(run_id, items)
        return [ArtifactInfo(p, sha, size) for p, sha, size in items]

    def log_artifact_bytes(self, run_id: int, path: str, data: bytes) -> ArtifactInfo:
        rel = clean_relpath(path)
        self._require_run(run_id)
        blob = self.artifacts.put_bytes(data)
        self._record_artifacts(run_id, [(rel, blob.sha256, blob.size)])
        return ArtifactInfo(rel, blob.sha256, blob.size)

    def list_artifacts(self, run_id: int) -> list[ArtifactInfo]:
        rows = self.db.query(
            "SELECT path, sha256, size FROM artifacts WHERE run_id = ? ORDER BY path", (run_id,)
        )
        if not rows:
            self._require_run(run_id)
        return [ArtifactInfo(r["path"], r["sha256"], r["size"]) for r in rows]

    def artifact(self, run_id: int, path: str) -> ArtifactInfo:
        rel = clean_relpath(path)
        row = self.db.query_one(
            "SELECT path, sha256, size FROM artifacts WHERE run_id = ? AND path = ?", (run_id, rel)
        )
        if row is None:
            self._require_run(run_id)
            raise NotFound(f"run {run_id} has no artifact {rel!r}", field="path")
        return ArtifactInfo(row["path"], row["sha256"], row["size"])

    def read_artifact(self, run_id: int, path: str) -> Iterator[bytes]:
        """The artifact's bytes, verified against its sha256 before the first chunk."""
        info = self.artifact(run_id, path)
        return self.artifacts.iter_bytes(info.sha256)

    # -- datasets --------------------------------------------------------------------

    def log_dataset(
        self,
        run_id: int,
        *,
        name: str,
        digest: str,
        source: str,
        rows: int | None,
        schema: dict[str, str],
        context: str = "training",
    ) -> DatasetInfo:
        check_key(name, "dataset")
        check_key(context, "context")
        self._require_run(run_id)
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO datasets (run_id, name, context, digest, source, rows, schema)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name, context) DO UPDATE SET"
                " digest = excluded.digest, source = excluded.source, rows = excluded.rows,"
                " schema = excluded.schema",
                (run_id, name, context, digest, source, rows, json.dumps(schema)),
            )
        return DatasetInfo(name, context, digest, source, rows, schema)

    def list_datasets(self, run_id: int) -> list[DatasetInfo]:
        rows = self.db.query("SELECT * FROM datasets WHERE run_id = ? ORDER BY context, name", (run_id,))
        if not rows:
            self._require_run(run_id)
        return [
            DatasetInfo(r["name"], r["context"], r["digest"], r["source"], r["rows"], json.loads(r["schema"]))
            for r in rows
        ]

    # -- liveness ----------------------------------------------------------------------

    def reap_crashed(
        self,
        *,
        now: float,
        this_host: str,
        process_start: Callable[[int], float | None],
        crash_after_s: float,
    ) -> list[int]:
        """Mark running runs whose process is gone as crashed; returns their ids."""
        rows = self.db.query(
            "SELECT id, host, pid, pid_started, heartbeat FROM runs WHERE status = 'running'"
        )
        dead = [
            (r["heartbeat"], r["id"])
            for r in rows
            if is_dead(
                Liveness(r["host"], r["pid"], r["pid_started"], r["heartbeat"]),
                now=now,
                this_host=this_host,
                process_start=process_start,
                crash_after_s=crash_after_s,
            )
        ]
        if dead:
            with self.db.atomic() as conn:
                conn.executemany(
                    "UPDATE runs SET status = 'crashed', end_time = ? WHERE id = ? AND status = 'running'",
                    dead,
                )
        return [run_id for _, run_id in dead]

    # -- deleting, restoring, purging -----------------------------------------------

    def delete_run(self, run_id: int, *, now: float | None = None) -> Run:
        """Mark a run deleted (restorable until purged); `Conflict` naming what still needs it.
        Deleting a deleted run changes nothing."""
        run = self.get_run(run_id)
        if run.deleted_at is not None:
            return run
        self.run_dependents.refuse_if_needed([run_id], f"run {run_id}", field="run_id")
        with self.db.atomic() as conn:
            lifecycle.mark_runs(conn, [run_id], time.time() if now is None else now)
        return self.get_run(run_id)

    def restore_run(self, run_id: int) -> Run:
        """Bring a deleted run back; its experiment must not be deleted (restore that instead)."""
        run = self.get_run(run_id)
        if run.deleted_at is None:
            return run
        if self.get_experiment(run.experiment_id).deleted_at is not None:
            raise Conflict(
                f"run {run_id} belongs to the deleted experiment {run.experiment!r}: restore the experiment",
                field="run_id",
            )
        with self.db.atomic() as conn:
            conn.execute("UPDATE runs SET deleted_at = NULL WHERE id = ?", (run_id,))
        return self.get_run(run_id)

    def delete_experiment(self, name_or_id: str | int, *, now: float | None = None) -> Experiment:
        """Mark an experiment and its live runs deleted at one instant; `Conflict` naming what
        needs one of its runs. The Default experiment cannot be deleted (runs land there)."""
        exp = self.get_experiment(name_or_id)
        if exp.deleted_at is not None:
            return exp
        if exp.name == DEFAULT_EXPERIMENT:
            raise Conflict(
                f"the {DEFAULT_EXPERIMENT!r} experiment cannot be deleted; delete its runs",
                field="experiment",
            )
        ids = [
            r[0]
            for r in self.db.query(
                "SELECT id FROM runs WHERE experiment_id = ? AND deleted_at IS NULL", (exp.id,)
            )
        ]
        needed = self.run_dependents.of(ids)
        if needed:
            raise Conflict(refusal(f"experiment {exp.name!r}", needed), field="experiment")
        at = time.time() if now is None else now
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE experiments SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", (at, exp.id)
            )
            lifecycle.mark_runs(conn, ids, at)
        return self.get_experiment(exp.id)

    def restore_experiment(self, name_or_id: str | int) -> Experiment:
        """Bring a deleted experiment back with the runs deleted together with it."""
        exp = self.get_experiment(name_or_id)
        if exp.deleted_at is None:
            return exp
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE runs SET deleted_at = NULL WHERE experiment_id = ? AND deleted_at = ?",
                (exp.id, exp.deleted_at),
            )
            conn.execute("UPDATE experiments SET deleted_at = NULL WHERE id = ?", (exp.id,))
        return self.get_experiment(exp.id)

    def purge_deleted(
        self, *, older_than_s: float, now: float | None = None, dry_run: bool = False
    ) -> Purged:
        """Remove for good the runs and experiments deleted ``older_than_s`` ago or earlier
        (`mlbox.tracking.lifecycle.purge`); their artifacts' objects are then unreferenced."""
        if not isinstance(older_than_s, int | float) or older_than_s < 0:
            raise InvalidInput("older_than must be 0 or more seconds", field="older_than")
        cutoff = (time.time() if now is None else now) - older_than_s
        return lifecycle.purge(self.db, self.run_dependents, cutoff=cutoff, dry_run=dry_run)

    def referenced_objects(self, excluding: Sequence[int] = ()) -> set[str]:
        """The artifact store objects the runs (deleted ones too, until purged) record, but for
        the runs ``excluding`` names."""
        return lifecycle.referenced_objects(self.db, excluding)

    # -- read-only queries for front ends --------------------------------------------

    def run_keys(self, experiment: str | None = None) -> RunKeys:
        """The param and metric keys of one experiment's runs (None: of every run), sorted."""
        return run_keys(self.db, None if experiment is None else self.get_experiment(experiment).id)
