"""The labeling service: the one object front ends call.

Projects hold tasks; annotators claim tasks (``next_tasks``) and label them.
Claiming is one ``BEGIN IMMEDIATE`` transaction over a counter per task
(``taken``: labels plus live claims) and a partial index over the open tasks in
queue order, so two annotators never get the same task unless the project's
overlap asks for it, and the next task is an index walk however large the
project is. A claim expires (``claim_s``) so an annotator who walks away gives
their tasks back. Every label is committed when it is given.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mlbox.labeling import agreement, exports
from mlbox.labeling.config import LabelingSettings
from mlbox.labeling.imports import Imported, TaskArray, from_labelstudio_result, read_tasks, refuse_urls
from mlbox.labeling.migrations import migrations
from mlbox.labeling.schema import LabelSchema, check_value, class_of, parse_schema
from mlbox.labeling.schemas import (
    Annotation,
    ExportResult,
    ImportResult,
    ModelAccuracy,
    Prelabel,
    Progress,
    Project,
    Review,
    Task,
)
from mlbox.store import Database, Home
from mlbox.store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    import sqlite3

    import pyarrow as pa

    from mlbox.registry.service import RegistryService
    from mlbox.scheduler.service import SchedulerService
    from mlbox.tracking.service import TrackingService

EXPORT_IDS = 250_000
"""Task ids per query of a columnar export (a bound on the text SQLite builds at once; it refuses
one over 1 GB)."""
CLAIM_S = 600.0
"""How long a claimed task stays with its annotator before it goes back to the queue."""
_enc = msgspec.json.Encoder(order="sorted")
"""Sorted keys: the same value is the same text, so majority votes compare stored text."""
_dec = msgspec.json.Decoder()


def _name_ok(name: str) -> str:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput(f"project name {name!r}: use 1-100 letters, digits, '-', '_' or '.'", field="name")
    return name


def _annotator_ok(annotator: str) -> str:
    if not annotator.strip() or len(annotator) > 100 or not annotator.isprintable():
        raise InvalidInput(
            f"annotator {annotator!r}: a printable name of 1-100 characters", field="annotator"
        )
    return annotator


class LabelingService:
    def __init__(
        self,
        db: Database,
        home: Home,
        settings: LabelingSettings | None = None,
        tracking: TrackingService | None = None,
        registry: RegistryService | None = None,
        scheduler: SchedulerService | None = None,
    ) -> None:
        self.db = db
        self.home = home
        self.settings = settings or LabelingSettings()
        self.tracking = tracking
        self.registry = registry
        self.scheduler = scheduler
        migrations.apply(db)

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass of the service's background work (none: claims expire when the queue is read)."""
        return {}

    # -- projects ------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        schema: Any,
        *,
        instructions: str = "",
        overlap: int = 1,
        model: str | None = None,
        retrain_every: int | None = None,
    ) -> Project:
        _name_ok(name)
        parsed = schema if isinstance(schema, LabelSchema) else parse_schema(schema)
        if overlap < 1 or overlap > 100:
            raise InvalidInput("overlap is the number of annotators per task, 1-100", field="overlap")
        if retrain_every is not None and retrain_every < 1:
            raise InvalidInput("retrain_every must be positive", field="retrain_every")
        with self.db.atomic() as conn:
            if conn.execute("SELECT 1 FROM label_projects WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"project {name!r} exists", field="name")
            conn.execute(
                "INSERT INTO label_projects (name, schema, instructions, overlap, model, retrain_every, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    _enc.encode(parsed).decode(),
                    instructions,
                    overlap,
                    model,
                    retrain_every,
                    time.time(),
                ),
            )
        return self.project(name)

    def _row(self, name: str) -> sqlite3.Row:
        rows = self.db.query("SELECT * FROM label_projects WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no labeling project {name!r}", field="project")
        return rows[0]

    def schema(self, name: str) -> LabelSchema:
        return msgspec.json.decode(self._row(name)["schema"], type=LabelSchema)

    def project(self, name: str) -> Project:
        r = self._row(name)
        return self._project(r)

    def _project(self, r: sqlite3.Row) -> Project:
        pid = r["id"]
        counts = self.db.query(
            "SELECT COUNT(*) AS tasks, COALESCE(SUM(taken >= ? AND NOT EXISTS (SELECT 1 FROM label_claims c"
            " WHERE c.task_id = t.id)), 0) AS done FROM label_tasks t WHERE project_id = ?",
            (r["overlap"], pid),
        )[0]
        labels = self.db.query(
            "SELECT COUNT(*) AS n FROM label_annotations WHERE project_id = ? AND kind = 'label'", (pid,)
        )[0]["n"]
        reviews = self.db.query(
            "SELECT COUNT(*) AS n FROM label_reviews WHERE project_id = ? AND resolved_at IS NULL", (pid,)
        )[0]["n"]
        return Project(
            id=pid,
            name=r["name"],
            label_schema=msgspec.json.decode(r["schema"], type=LabelSchema),
            instructions=r["instructions"],
            overlap=r["overlap"],
            model=r["model"],
            retrain_every=r["retrain_every"],
            created_at=r["created_at"],
            tasks=counts["tasks"],
            done=counts["done"],
            labels=labels,
            open_reviews=reviews,
        )

    def projects(self) -> list[Project]:
        return [self._project(r) for r in self.db.query("SELECT * FROM label_projects ORDER BY name")]

    def exports_recorded_in(self, run_ids: Sequence[int]) -> list[str]:
        """The exports whose dataset was recorded in one of these tracking runs, one line each:
        deleting such a run would lose the export's lineage (the tracking service asks this)."""
        rows = self.db.query(
            "SELECT x.id, x.path, x.run_id, p.name FROM label_exports x JOIN label_projects p"
            " ON p.id = x.project_id WHERE x.run_id IN (SELECT value FROM json_each(?)) ORDER BY x.id",
            (msgspec.json.encode(list(run_ids)).decode(),),
        )
        return [
            f"label export {r['id']} of project {r['name']!r} ({r['path']}) is recorded in run {r['run_id']}"
            for r in rows
        ]

    # -- tasks ---------------------------------------------------------------------------

    def import_tasks(self, name: str, path: str | Path, fmt: str | None = None) -> ImportResult:
        """Read every task of ``path`` and add them all, or none when any is bad."""
        self._row(name)
        tasks = read_tasks(Path(path).expanduser(), fmt)
        return self.add_tasks(name, tasks)

    def add_tasks(self, name: str, tasks: Iterable[Imported | dict[str, Any]] | TaskArray) -> ImportResult:
        """Add tasks (data dicts or `Imported`) in one transaction; pre-labels are checked against the schema."""
        r = self._row(name)
        schema = msgspec.json.decode(r["schema"], type=LabelSchema)
        if isinstance(tasks, TaskArray):
            if not tasks.rows:
                raise InvalidInput("no tasks to add", field="tasks")
            return self._insert_array(name, r["id"], tasks)
        items: list[Imported] = []
        for i, t in enumerate(tasks):
            if not isinstance(t, Imported):  # the readers checked theirs; data given inline is checked here
                if not isinstance(t, dict):
                    raise InvalidInput(f"task {i}: data is a JSON object", field="data")
                refuse_urls(t, f"task {i}")
                t = Imported(t, "")
            items.append(t)
        if not items:
            raise InvalidInput("no tasks to add", field="tasks")
        now = time.time()
        pid = r["id"]
        pre: list[tuple[int, str, dict[str, Any], float | None]] = []
        if any(not isinstance(t.data, dict) for t in items):
            i = next(i for i, t in enumerate(items) if not isinstance(t.data, dict))
            raise InvalidInput(f"task {i}: data is a JSON object", field="data")
        encode = _enc.encode
        # One comprehension, no call per row beyond the encoding a task read as a dict needs.
        rows = [(pid, t.raw if t.raw is not None else encode(t.data).decode(), t.source, now) for t in items]
        for i, t in enumerate(items):
            for p in t.predictions:
                try:
                    value = check_value(
                        schema, from_labelstudio_result(p.get("result") or []), text=_text(t.data)
                    )
                except InvalidInput as exc:
                    raise InvalidInput(f"task {i}: prediction: {exc.message}", field="predictions") from None
                score = p.get("score")
                pre.append(
                    (
                        i,
                        str(p.get("model_version") or "import"),
                        value,
                        float(score) if score is not None else None,
                    )
                )
        return self._insert(name, rows, pre, now)

    def _insert(
        self,
        name: str,
        rows: list[tuple[int, str, str, float]],
        pre: list[tuple[int, str, dict[str, Any], float | None]],
        now: float,
    ) -> ImportResult:
        """Insert checked task rows (and pre-labels by row index) in one transaction."""
        with self.db.atomic() as conn:
            before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM label_tasks").fetchone()[0]
            conn.executemany(
                "INSERT INTO label_tasks (project_id, data, source, created_at) VALUES (?, ?, ?, ?)", rows
            )
            # Inside the write transaction nobody else inserts, so the new ids are the next ones in a
            # row; checked by their count and maximum rather than read back one by one.
            last, count = conn.execute(
                "SELECT MAX(id), COUNT(*) FROM label_tasks WHERE id > ?", (before,)
            ).fetchone()
            if count != len(rows) or last != before + len(rows):
                raise Conflict("tasks were added by someone else at the same moment; retry", field="tasks")
            ids = range(before + 1, last + 1)
            if pre:
                conn.executemany(
                    "INSERT OR REPLACE INTO label_prelabels (task_id, model, value, confidence, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(ids[i], m, _enc.encode(v).decode(), c, now) for i, m, v, c in pre],
                )
        return ImportResult(name, len(ids), len(pre), ids[0], ids[-1])

    def _insert_array(self, name: str, pid: int, tasks: TaskArray) -> ImportResult:
        """Insert checked tasks given as JSON arrays in one transaction: one ``INSERT ... SELECT``
        over ``json_each`` per chunk, so SQLite reads the objects and stores each as its JSON text
        (minified) without a Python object or a bound parameter per task. ``json_each`` walks an
        array in order, so ids follow the file's order; the count and the largest id are checked."""
        import sqlite3

        now = time.time()
        with self.db.atomic() as conn:
            before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM label_tasks").fetchone()[0]
            for chunk in tasks.chunks:
                try:
                    conn.execute(
                        "INSERT INTO label_tasks (project_id, data, source, created_at)"
                        " SELECT ?, value, ?, ? FROM json_each(?) WHERE type = 'object'",
                        (pid, tasks.source, now, chunk),
                    )
                except sqlite3.OperationalError as exc:
                    if "JSON" not in str(exc):
                        raise
                    raise InvalidInput(
                        f"{tasks.source}: not JSON that SQLite reads ({exc})", field="path"
                    ) from None
            last, count = conn.execute(
                "SELECT MAX(id), COUNT(*) FROM label_tasks WHERE id > ?", (before,)
            ).fetchone()
            if count != tasks.rows:  # the readers checked every task is an object
                raise InvalidInput(
                    f"{tasks.source}: {tasks.rows} tasks read but {count} are JSON objects", field="path"
                )
            if last != before + count:
                raise Conflict("tasks were added by someone else at the same moment; retry", field="tasks")
        return ImportResult(name, count, 0, before + 1, last)

    def set_prelabels(
        self, name: str, prelabels: Sequence[tuple[int, dict[str, Any], float | None]], model: str
    ) -> int:
        """Store a model's pre-label (value, confidence) per task, replacing that model's earlier ones."""
        r = self._row(name)
        schema = msgspec.json.decode(r["schema"], type=LabelSchema)
        now = time.time()
        rows = [(tid, model, _enc.encode(check_value(schema, v)).decode(), c, now) for tid, v, c in prelabels]
        with self.db.atomic() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO label_prelabels (task_id, model, value, confidence, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def set_priorities(self, name: str, priorities: Sequence[tuple[int, float]]) -> int:
        """Re-order the queue: higher first (active learning writes the model's uncertainty here)."""
        pid = self._row(name)["id"]
        with self.db.atomic() as conn:
            conn.executemany(
                "UPDATE label_tasks SET priority = ? WHERE id = ? AND project_id = ?",
                [(float(p), int(t), pid) for t, p in priorities],
            )
        return len(priorities)

    def task(self, task_id: int, *, with_annotations: bool = True) -> Task:
        rows = self.db.query("SELECT * FROM label_tasks WHERE id = ?", (task_id,))
        if not rows:
            raise NotFound(f"no task {task_id}", field="task_id")
        return self._tasks(rows, with_annotations=with_annotations)[0]

    def tasks(self, name: str, *, limit: int = 100, after: int = 0) -> list[Task]:
        pid = self._row(name)["id"]
        rows = self.db.query(
            "SELECT * FROM label_tasks WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?",
            (pid, after, limit),
        )
        return self._tasks(rows, with_annotations=True)

    def _tasks(self, rows: Sequence[sqlite3.Row], *, with_annotations: bool) -> list[Task]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        pre: dict[int, Prelabel] = {}
        for p in self.db.query(
            f"SELECT * FROM label_prelabels WHERE task_id IN ({marks}) ORDER BY created_at", ids
        ):
            pre[p["task_id"]] = Prelabel(p["model"], _dec.decode(p["value"]), p["confidence"])
        anns: dict[int, list[Annotation]] = defaultdict(list)
        if with_annotations:
            for a in self.db.query(
                f"SELECT * FROM label_annotations WHERE task_id IN ({marks}) ORDER BY id", ids
            ):
                anns[a["task_id"]].append(_annotation(a))
        return [
            Task(
                r["id"],
                r["project_id"],
                _dec.decode(r["data"]),
                r["source"],
                r["priority"],
                pre.get(r["id"]),
                anns.get(r["id"], []),
            )
            for r in rows
        ]

    def open_task_data(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        """(id, data) of the tasks still in the queue (what a model re-scores)."""
        pid = self._row(name)["id"]
        return [
            (r[0], _dec.decode(r[1]))
            for r in self.db.conn.execute(
                "SELECT id, data FROM label_tasks WHERE project_id = ? AND open = 1 ORDER BY id", (pid,)
            )
        ]

    def tasks_by_id(self, name: str, ids: Sequence[int]) -> list[Task]:
        pid = self._row(name)["id"]
        out: list[Task] = []
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            rows = self.db.query(
                f"SELECT * FROM label_tasks WHERE project_id = ? AND id IN ({','.join('?' * len(chunk))}) ORDER BY id",
                (pid, *chunk),
            )
            out.extend(self._tasks(rows, with_annotations=False))
        return out

    # -- models in the loop ----------------------------------------------------------------

    def prelabel(self, name: str, ref: str, *, strategy: str = "margin") -> int:
        """Pre-label the open tasks with the registered model ``ref`` (NAME@ALIAS) and order the
        queue by its uncertainty (``entropy``, ``margin``, ``least_confidence``)."""
        from mlbox.labeling.active import STRATEGIES
        from mlbox.labeling.loop import score_project

        if strategy not in STRATEGIES:
            raise InvalidInput(
                f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}", field="strategy"
            )
        if self.registry is None:
            raise InvalidInput("no registry to load the model from", field="model")
        return score_project(self, self.registry, name, ref, strategy)

    def set_loop(self, name: str, model: str | None, retrain_every: int | None) -> Project:
        """Retrain ``model`` (a registry name) through the scheduler every ``retrain_every`` labels."""
        if retrain_every is not None and retrain_every < 1:
            raise InvalidInput("retrain_every must be positive", field="retrain_every")
        if model is not None and not model.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise InvalidInput(f"model name {model!r}: letters, digits, '-', '_', '.'", field="model")
        self._row(name)
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE label_projects SET model = ?, retrain_every = ? WHERE name = ?",
                (model, retrain_every, name),
            )
        return self.project(name)

    def record_accuracy(
        self,
        name: str,
        labels: int,
        accuracy: float | None,
        *,
        method: str,
        model: str,
        version: int | None = None,
        run_id: int | None = None,
    ) -> ModelAccuracy:
        """Note one retraining's accuracy against the labels it learned from (the retraining job
        calls this; the labeling screen draws the points as the model's accuracy curve)."""
        pid = self._row(name)["id"]
        if labels < 0:
            raise InvalidInput("labels is a count, 0 or more", field="labels")
        if accuracy is not None and not 0.0 <= accuracy <= 1.0:
            raise InvalidInput(f"accuracy {accuracy!r} is not between 0 and 1", field="accuracy")
        now = time.time()
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO label_model_accuracy (project_id, labels, accuracy, method, model, version,"
                " run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, labels, accuracy, method, model, version, run_id, now),
            )
        return ModelAccuracy(labels, accuracy, method, model, version, run_id, now)

    def accuracy_history(self, name: str) -> list[ModelAccuracy]:
        """Every retraining's accuracy, oldest first: the model's accuracy as labels grow."""
        pid = self._row(name)["id"]
        return [
            ModelAccuracy(*r)
            for r in self.db.conn.execute(
                "SELECT labels, accuracy, method, model, version, run_id, created_at"
                " FROM label_model_accuracy WHERE project_id = ? ORDER BY id",
                (pid,),
            )
        ]

    def _maybe_retrain(self, project_id: int) -> int | None:
        """Submit the retraining job when the project's label count reaches a multiple of N."""
        r = self.db.query("SELECT * FROM label_projects WHERE id = ?", (project_id,))[0]
        if not r["model"] or not r["retrain_every"] or self.scheduler is None:
            return None
        labels = self.db.query(
            "SELECT COUNT(*) FROM label_annotations WHERE project_id = ? AND kind = 'label'", (project_id,)
        )[0][0]
        if labels == 0 or labels % r["retrain_every"]:
            return None
        from mlbox.scheduler.schemas import JobSpec, Resources

        job = self.scheduler.submit(
            JobSpec(
                name=f"retrain {r['name']} at {labels} labels",
                function="mlbox.labeling.loop:retrain",
                kwargs={"project": r["name"], "model_name": r["model"]},
                resources=Resources(cpus=1.0),
                experiment="labeling",
                env_policy="appliance",
            )
        )
        return job.id

    # -- weak supervision and label noise ---------------------------------------------------

    def apply_functions(
        self, name: str, lfs: Sequence[Any], *, label_model: str = "dawid_skene"
    ) -> list[Any]:
        """Run labeling functions over every task; their table (coverage, overlap, conflict,
        accuracy against the consensus labels), and the label model's output as pre-labels."""
        from mlbox.labeling import weak

        schema = self.schema(name)
        if not schema.choices:
            raise InvalidInput("labeling functions vote choices: the project has none", field="schema")
        if label_model not in ("dawid_skene", "majority"):
            raise InvalidInput("label_model is dawid_skene or majority", field="label_model")
        pid = self._row(name)["id"]
        rows = self.db.conn.execute(
            "SELECT id, data FROM label_tasks WHERE project_id = ? ORDER BY id", (pid,)
        ).fetchall()
        ids = [r[0] for r in rows]
        data = [_dec.decode(r[1]) for r in rows]
        k = len(schema.choices)
        L = weak.apply(lfs, data)
        if ((L < weak.ABSTAIN) | (k <= L)).any():
            raise InvalidInput(
                f"a labeling function voted outside 0..{k - 1} (or ABSTAIN)", field="functions"
            )
        chosen = self.consensus(name)
        gold = [
            schema.choices.index(chosen[t][0]["label"])
            if t in chosen and chosen[t][0].get("label") in schema.choices
            else weak.ABSTAIN
            for t in ids
        ]
        table = weak.summary(L, [lf.name for lf in lfs], gold)
        proba = weak.dawid_skene(L, k).proba if label_model == "dawid_skene" else weak.majority_vote(L, k)
        voted = (L != weak.ABSTAIN).any(axis=1)
        self.set_prelabels(
            name,
            [
                (ids[i], {"label": schema.choices[int(proba[i].argmax())]}, float(proba[i].max()))
                for i in range(len(ids))
                if voted[i]
            ],
            model=f"weak:{label_model}",
        )
        return table

    def find_mislabels(self, name: str, *, folds: int = 5, flag: bool = True) -> list[int]:
        """Tasks whose consensus label confident learning suspects (cross-validated probabilities of a
        model on the tasks' inputs), most suspect first; queued for review."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict

        from mlbox.labeling.loop import inputs_of
        from mlbox.labeling.weak import confident_learning

        schema = self.schema(name)
        chosen = self.consensus(name)
        ids, X, y = [], [], []
        for task in self.tasks_by_id(name, list(chosen)):
            x = inputs_of(task.data)
            label = chosen[task.id][0].get("label")
            if x is not None and label in schema.choices:
                ids.append(task.id)
                X.append(x)
                y.append(schema.choices.index(label))
        counts = np.bincount(np.asarray(y, dtype=int), minlength=len(schema.choices)) if y else np.zeros(1)
        if len(y) < 2 * folds or (counts[counts > 0] < folds).any():
            raise InvalidInput(
                f"confident learning needs at least {folds} labeled tasks with inputs per labeled class",
                field="folds",
            )
        proba = np.zeros((len(y), len(schema.choices)))
        present = np.flatnonzero(counts)
        proba[:, present] = cross_val_predict(
            LogisticRegression(max_iter=500), np.asarray(X), np.asarray(y), cv=folds, method="predict_proba"
        )
        suspects = [ids[i] for i in confident_learning(y, proba)]
        if flag:
            for rank, t in enumerate(suspects, 1):
                self.flag(
                    t,
                    "confident learning",
                    f"rank {rank}: given {chosen[t][0].get('label')}",
                    reason="suspected mislabel",
                )
        return suspects

    # -- the queue -----------------------------------------------------------------------

    def next_tasks(
        self, name: str, annotator: str, n: int = 1, *, claim_s: float = CLAIM_S, now: float | None = None
    ) -> list[Task]:
        """The annotator's next ``n`` tasks, claimed for them (their live claims first, then the queue)."""
        _annotator_ok(annotator)
        if not 1 <= n <= 1000:
            raise InvalidInput("n must be 1-1000", field="n")
        r = self._row(name)
        pid, overlap = r["id"], r["overlap"]
        now = time.time() if now is None else now
        with self.db.atomic() as conn:
            self._expire(conn, pid, overlap, now)
            mine = [
                x[0]
                for x in conn.execute(
                    "SELECT c.task_id FROM label_claims c JOIN label_tasks t ON t.id = c.task_id"
                    " WHERE c.project_id = ? AND c.annotator = ? ORDER BY t.priority DESC, t.id LIMIT ?",
                    (pid, annotator, n),
                )
            ]
            need = n - len(mine)
            fresh: list[int] = []
            if need > 0:
                fresh = [
                    x[0]
                    for x in conn.execute(
                        "SELECT t.id FROM label_tasks t INDEXED BY label_tasks_queue"
                        " WHERE t.project_id = ? AND t.open = 1"
                        " AND NOT EXISTS (SELECT 1 FROM label_annotations a WHERE a.task_id = t.id AND a.annotator = ?)"
                        " AND NOT EXISTS (SELECT 1 FROM label_claims c WHERE c.task_id = t.id AND c.annotator = ?)"
                        " ORDER BY t.priority DESC, t.id LIMIT ?",
                        (pid, annotator, annotator, need),
                    )
                ]
                conn.executemany(
                    "INSERT INTO label_claims (task_id, annotator, project_id, until) VALUES (?, ?, ?, ?)",
                    [(t, annotator, pid, now + claim_s) for t in fresh],
                )
                conn.executemany(
                    "UPDATE label_tasks SET taken = taken + 1, open = (taken + 1 < ?) WHERE id = ?",
                    [(overlap, t) for t in fresh],
                )
            if mine:
                conn.execute(
                    f"UPDATE label_claims SET until = ? WHERE annotator = ? AND task_id IN ({','.join('?' * len(mine))})",
                    (now + claim_s, annotator, *mine),
                )
            ids = mine + fresh
            rows = (
                {
                    x["id"]: x
                    for x in conn.execute(
                        f"SELECT * FROM label_tasks WHERE id IN ({','.join('?' * len(ids))})", ids
                    ).fetchall()
                }
                if ids
                else {}
            )
        return self._tasks([rows[i] for i in ids], with_annotations=False)

    def release(self, name: str, annotator: str) -> int:
        """Give the annotator's claimed tasks back to the queue (the labeling screen closes)."""
        r = self._row(name)
        with self.db.atomic() as conn:
            ids = [
                x[0]
                for x in conn.execute(
                    "SELECT task_id FROM label_claims WHERE project_id = ? AND annotator = ?",
                    (r["id"], annotator),
                )
            ]
            self._unclaim(conn, ids, annotator, r["overlap"])
        return len(ids)

    def _unclaim(self, conn: sqlite3.Connection, ids: Sequence[int], annotator: str, overlap: int) -> None:
        conn.executemany(
            "DELETE FROM label_claims WHERE task_id = ? AND annotator = ?", [(t, annotator) for t in ids]
        )
        conn.executemany(
            "UPDATE label_tasks SET taken = taken - 1, open = (taken - 1 < ?) WHERE id = ?",
            [(overlap, t) for t in ids],
        )

    def _expire(self, conn: sqlite3.Connection, pid: int, overlap: int, now: float) -> None:
        stale = conn.execute(
            "SELECT task_id, annotator FROM label_claims WHERE project_id = ? AND until < ?", (pid, now)
        ).fetchall()
        for task_id, annotator in stale:
            self._unclaim(conn, [task_id], annotator, overlap)

    # -- labels --------------------------------------------------------------------------

    def annotate(
        self,
        task_id: int,
        annotator: str,
        value: dict[str, Any],
        *,
        comment: str = "",
        lead_time_s: float | None = None,
        from_prelabel: bool = False,
        now: float | None = None,
    ) -> Annotation:
        """Record (or replace) the annotator's label of a task, committed at once."""
        _annotator_ok(annotator)
        task = self.task(task_id, with_annotations=False)
        proj = self.db.query("SELECT * FROM label_projects WHERE id = ?", (task.project_id,))[0]
        schema = msgspec.json.decode(proj["schema"], type=LabelSchema)
        clean = check_value(schema, value, text=_text(task.data))
        now = time.time() if now is None else now
        with self.db.atomic() as conn:
            held = conn.execute(
                "DELETE FROM label_claims WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).rowcount
            before = conn.execute(
                "SELECT kind FROM label_annotations WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).fetchone()
            counted = held or (before is not None and before[0] == "label")
            if not counted:
                conn.execute("UPDATE label_tasks SET taken = taken + 1 WHERE id = ?", (task_id,))
            conn.execute("UPDATE label_tasks SET open = (taken < ?) WHERE id = ?", (proj["overlap"], task_id))
            conn.execute(
                "INSERT INTO label_annotations (task_id, project_id, annotator, kind, value, comment, lead_time_s,"
                " from_prelabel, created_at) VALUES (?, ?, ?, 'label', ?, ?, ?, ?, ?)"
                " ON CONFLICT (task_id, annotator) DO UPDATE SET kind = 'label', value = excluded.value,"
                " comment = excluded.comment, lead_time_s = excluded.lead_time_s,"
                " from_prelabel = excluded.from_prelabel, created_at = excluded.created_at",
                (
                    task_id,
                    task.project_id,
                    annotator,
                    _enc.encode(clean).decode(),
                    comment,
                    lead_time_s,
                    int(from_prelabel),
                    now,
                ),
            )
            self._check_disagreement(conn, task_id, task.project_id, proj["overlap"], now)
            row = conn.execute(
                "SELECT * FROM label_annotations WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).fetchone()
        self._maybe_retrain(task.project_id)
        return _annotation(row)

    def annotate_many(
        self,
        name: str,
        annotator: str,
        labels: Sequence[tuple[int, dict[str, Any]]],
        *,
        now: float | None = None,
    ) -> int:
        """Record many labels of one annotator in one transaction (labels brought from elsewhere);
        every value is checked first, so a bad one stores none. Claims the annotator held are used up."""
        _annotator_ok(annotator)
        r = self._row(name)
        schema = msgspec.json.decode(r["schema"], type=LabelSchema)
        now = time.time() if now is None else now
        rows = [
            (int(t), r["id"], annotator, _enc.encode(check_value(schema, v)).decode(), now) for t, v in labels
        ]
        with self.db.atomic() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS _bulk (task_id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM _bulk")
            conn.executemany("INSERT INTO _bulk VALUES (?)", [(x[0],) for x in rows])
            bad = conn.execute(
                "SELECT b.task_id FROM _bulk b LEFT JOIN label_tasks t ON t.id = b.task_id AND t.project_id = ?"
                " WHERE t.id IS NULL LIMIT 1",
                (r["id"],),
            ).fetchone()
            if bad is not None:
                raise NotFound(f"project {name!r} has no task {bad[0]}", field="task_id")
            # a task counts once more unless the annotator's claim or label already counted it
            conn.execute(
                "UPDATE label_tasks SET taken = taken + 1 WHERE id IN (SELECT task_id FROM _bulk)"
                " AND NOT EXISTS (SELECT 1 FROM label_claims c WHERE c.task_id = label_tasks.id AND c.annotator = ?)"
                " AND NOT EXISTS (SELECT 1 FROM label_annotations a WHERE a.task_id = label_tasks.id"
                " AND a.annotator = ? AND a.kind = 'label')",
                (annotator, annotator),
            )
            conn.execute(
                "DELETE FROM label_claims WHERE annotator = ? AND task_id IN (SELECT task_id FROM _bulk)",
                (annotator,),
            )
            conn.execute(
                "UPDATE label_tasks SET open = (taken < ?) WHERE id IN (SELECT task_id FROM _bulk)",
                (r["overlap"],),
            )
            conn.executemany(
                "INSERT INTO label_annotations (task_id, project_id, annotator, kind, value, created_at)"
                " VALUES (?, ?, ?, 'label', ?, ?) ON CONFLICT (task_id, annotator) DO UPDATE SET kind = 'label',"
                " value = excluded.value, created_at = excluded.created_at",
                rows,
            )
            conn.execute("DELETE FROM _bulk")
        return len(rows)

    def _check_disagreement(
        self, conn: sqlite3.Connection, task_id: int, project_id: int, overlap: int, now: float
    ) -> None:
        values = [
            class_of(_dec.decode(v[0]))
            for v in conn.execute(
                "SELECT value FROM label_annotations WHERE task_id = ? AND kind = 'label'", (task_id,)
            )
        ]
        if overlap > 1 and len(values) >= overlap and len(set(values)) > 1:
            detail = ", ".join(sorted({v or "?" for v in values}))
            conn.execute(
                "INSERT INTO label_reviews (task_id, project_id, reason, detail, created_at)"
                " VALUES (?, ?, 'disagreement', ?, ?) ON CONFLICT (task_id, reason) DO UPDATE SET detail ="
                " excluded.detail, resolved_at = NULL, resolved_by = NULL, resolved_value = NULL",
                (task_id, project_id, detail, now),
            )

    def skip(
        self, task_id: int, annotator: str, *, comment: str = "", now: float | None = None
    ) -> Annotation:
        """Pass a task: it goes back to the queue for the others, never again to this annotator."""
        _annotator_ok(annotator)
        task = self.task(task_id, with_annotations=False)
        overlap = self.db.query("SELECT overlap FROM label_projects WHERE id = ?", (task.project_id,))[0][0]
        now = time.time() if now is None else now
        with self.db.atomic() as conn:
            before = conn.execute(
                "SELECT kind FROM label_annotations WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).fetchone()
            held = conn.execute(
                "DELETE FROM label_claims WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).rowcount
            if held or (before is not None and before[0] == "label"):
                conn.execute("UPDATE label_tasks SET taken = taken - 1 WHERE id = ?", (task_id,))
            conn.execute("UPDATE label_tasks SET open = (taken < ?) WHERE id = ?", (overlap, task_id))
            conn.execute(
                "INSERT INTO label_annotations (task_id, project_id, annotator, kind, value, comment, created_at)"
                " VALUES (?, ?, ?, 'skip', NULL, ?, ?) ON CONFLICT (task_id, annotator) DO UPDATE SET"
                " kind = 'skip', value = NULL, comment = excluded.comment, created_at = excluded.created_at",
                (task_id, task.project_id, annotator, comment, now),
            )
            row = conn.execute(
                "SELECT * FROM label_annotations WHERE task_id = ? AND annotator = ?", (task_id, annotator)
            ).fetchone()
        return _annotation(row)

    def undo(self, name: str, annotator: str, *, now: float | None = None) -> Task | None:
        """Take back the annotator's latest label or skip; the task is claimed for them again."""
        r = self._row(name)
        now = time.time() if now is None else now
        with self.db.atomic() as conn:
            last = conn.execute(
                "SELECT id, task_id, kind FROM label_annotations WHERE project_id = ? AND annotator = ?"
                " ORDER BY created_at DESC, id DESC LIMIT 1",
                (r["id"], annotator),
            ).fetchone()
            if last is None:
                return None
            conn.execute("DELETE FROM label_annotations WHERE id = ?", (last["id"],))
            if last["kind"] != "label":
                conn.execute("UPDATE label_tasks SET taken = taken + 1 WHERE id = ?", (last["task_id"],))
            conn.execute(
                "INSERT OR REPLACE INTO label_claims (task_id, annotator, project_id, until) VALUES (?, ?, ?, ?)",
                (last["task_id"], annotator, r["id"], now + CLAIM_S),
            )
            conn.execute(
                "UPDATE label_tasks SET open = (taken < ?) WHERE id = ?", (r["overlap"], last["task_id"])
            )
        return self.task(last["task_id"])

    def annotations(self, name: str, *, kind: str | None = "label") -> list[Annotation]:
        pid = self._row(name)["id"]
        sql = "SELECT * FROM label_annotations WHERE project_id = ?"
        args: list[Any] = [pid]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        return [_annotation(a) for a in self.db.query(sql + " ORDER BY id", args)]

    def progress(
        self, name: str, annotator: str, *, now: float | None = None, window_s: float = 3600.0
    ) -> Progress:
        """Tasks, tasks done, the annotator's labels and their labels per hour over the last hour."""
        p = self.project(name)
        now = time.time() if now is None else now
        rows = self.db.query(
            "SELECT COUNT(*) AS mine, MIN(created_at) AS first,"
            " SUM(created_at >= ?) AS recent FROM label_annotations"
            " WHERE project_id = ? AND annotator = ? AND kind = 'label'",
            (now - window_s, p.id, annotator),
        )[0]
        recent = rows["recent"] or 0
        span = min(window_s, max(60.0, now - (rows["first"] or now)))
        return Progress(p.tasks, p.done, rows["mine"], recent * 3600.0 / span)

    # -- review ---------------------------------------------------------------------------

    def flag(self, task_id: int, annotator: str, detail: str = "", *, reason: str = "flagged") -> Review:
        task = self.task(task_id, with_annotations=False)
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO label_reviews (task_id, project_id, reason, detail, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, reason) DO UPDATE SET detail = excluded.detail,"
                " created_by = excluded.created_by, resolved_at = NULL, resolved_by = NULL, resolved_value = NULL",
                (task_id, task.project_id, reason, detail, annotator, time.time()),
            )
            row = conn.execute(
                "SELECT * FROM label_reviews WHERE task_id = ? AND reason = ?", (task_id, reason)
            ).fetchone()
        return _review(row)

    def reviews(self, name: str, *, open_only: bool = True) -> list[Review]:
        pid = self._row(name)["id"]
        sql = "SELECT * FROM label_reviews WHERE project_id = ?" + (
            " AND resolved_at IS NULL" if open_only else ""
        )
        return [_review(r) for r in self.db.query(sql + " ORDER BY id", (pid,))]

    def resolve(self, review_id: int, reviewer: str, value: dict[str, Any] | None) -> Review:
        """Settle a review; ``value`` (checked against the schema) becomes the task's consensus label."""
        _annotator_ok(reviewer)
        rows = self.db.query("SELECT * FROM label_reviews WHERE id = ?", (review_id,))
        if not rows:
            raise NotFound(f"no review {review_id}", field="review_id")
        schema_text = self.db.query(
            "SELECT schema FROM label_projects WHERE id = ?", (rows[0]["project_id"],)
        )[0][0]
        clean = None
        if value is not None:
            clean = check_value(msgspec.json.decode(schema_text, type=LabelSchema), value)
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE label_reviews SET resolved_by = ?, resolved_value = ?, resolved_at = ? WHERE id = ?",
                (reviewer, None if clean is None else _enc.encode(clean).decode(), time.time(), review_id),
            )
            row = conn.execute("SELECT * FROM label_reviews WHERE id = ?", (review_id,)).fetchone()
        return _review(row)

    # -- consensus, agreement ------------------------------------------------------------------

    def consensus(self, name: str) -> dict[int, tuple[dict[str, Any], str]]:
        """task id -> (label value, how: 'reviewer', 'single', 'majority'); tied tasks have none."""
        return {
            t: (_dec.decode(v), how) for t, (v, how) in self._consensus_text(self._row(name)["id"]).items()
        }

    def _consensus_text(self, pid: int) -> dict[int, tuple[str, str]]:
        """`consensus` with each value as its stored JSON text (export reads a million without
        parsing): a task's one label, else what `_consensus_of` settles; a tie has none."""
        out: dict[int, tuple[str, str]] = {}
        several: list[int] = []
        for task_id, n, value in self.db.conn.execute(
            "SELECT task_id, COUNT(*), MAX(value) FROM label_annotations WHERE project_id = ? AND kind = 'label'"
            " GROUP BY task_id",
            (pid,),
        ):
            if n == 1:
                out[task_id] = (value, "single")
            else:
                several.append(task_id)
        for task_id, (value, how) in self._consensus_of(pid, several).items():
            if value is None:
                out.pop(task_id, None)
            else:
                out[task_id] = (value, how)
        return out

    def ratings(self, name: str) -> list[dict[str, str]]:
        """Per task with labels, annotator -> class (what the agreement statistics read)."""
        pid = self._row(name)["id"]
        by_task: dict[int, dict[str, str]] = defaultdict(dict)
        for task_id, annotator, value in self.db.conn.execute(
            "SELECT task_id, annotator, value FROM label_annotations WHERE project_id = ? AND kind = 'label'",
            (pid,),
        ):
            c = class_of(_dec.decode(value))
            if c is not None:
                by_task[task_id][annotator] = c
        return list(by_task.values())

    def agreement(self, name: str) -> agreement.AgreementReport:
        return agreement.report(self.ratings(name), self.schema(name).choices)

    # -- export --------------------------------------------------------------------------

    def _export_columns(self, pid: int) -> pa.Table | None:
        """The labeled tasks as an Arrow table, built without a Python object per task: SQLite writes
        one JSON line per labeled task (its id, how many labels it has, one of its label values and
        its data, in id order; a chunk of ids per query) and Arrow reads the lines in one call. The
        few tasks with several labels or a reviewer's value get their consensus from `_consensus_of`
        and are patched in by Arrow's kernels; ties leave. None where Arrow cannot read the data as
        one table (a field with mixed types across tasks) or a reviewer settled a task nobody
        labeled: the caller then builds the columns row by row."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.json as pajson

        conn = self.db.conn
        low, high = conn.execute(
            "SELECT MIN(task_id), MAX(task_id) FROM label_annotations WHERE project_id = ? AND kind = 'label'",
            (pid,),
        ).fetchone()
        if low is None:
            return None
        blobs: list[bytes] = []
        for lo in range(low, high + 1, EXPORT_IDS):
            (blob,) = conn.execute(
                # One printf per task (not a chain of ||, which copies the line at every step);
                # the task range walks the (task_id, annotator) index in order, so neither the
                # GROUP BY nor the ORDER BY sorts.
                "SELECT CAST(group_concat(line, char(10)) AS BLOB) FROM ("
                ' SELECT printf(\'{"task_id":%d,"n":%d,"value":%s,"data":%s}\', a.task_id, COUNT(*),'
                "  json_quote(MAX(a.value)), t.data) AS line"
                " FROM label_annotations a JOIN label_tasks t ON t.id = a.task_id"
                " WHERE a.task_id BETWEEN ? AND ? AND a.kind = 'label' AND t.project_id = ?"
                " GROUP BY a.task_id ORDER BY a.task_id)",
                (lo, min(high, lo + EXPORT_IDS - 1), pid),
            ).fetchone()
            if blob:
                blobs.append(blob)
        lines = b"\n".join(blobs)
        del blobs
        try:
            read = pajson.read_json(
                pa.BufferReader(lines),
                read_options=pajson.ReadOptions(block_size=max(1 << 20, len(lines) // 8 + 1)),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        del lines
        ids = read.column("task_id").combine_chunks().cast(pa.int64())
        if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
            read = read.take(pc.sort_indices(ids))  # group_concat kept no order: put it back
            ids = read.column("task_id").combine_chunks().cast(pa.int64())
        values = read.column("value").combine_chunks()
        hows = pa.array(["single"] * len(ids), pa.string())
        several = pc.filter(ids, pc.greater(read.column("n").combine_chunks(), 1)).to_pylist()
        special = self._consensus_of(pid, several)
        if special:
            where = pc.index_in(ids, value_set=pa.array(list(special), pa.int64()))
            chosen_values = pa.array([v for v, _ in special.values()], pa.string())
            chosen_hows = pa.array([h for _, h in special.values()], pa.string())
            hit = pc.is_valid(where)
            if pc.sum(hit).as_py() != len(special):
                return None  # a reviewer settled a task nobody labeled: the row-by-row path has it
            values = pc.if_else(hit, pc.take(chosen_values, where), values)
            hows = pc.if_else(hit, pc.take(chosen_hows, where), hows)
        keep = pc.is_valid(values)  # a tie without a reviewer has no consensus label
        data_col = read.column("data").combine_chunks()
        columns: dict[str, Any] = {"task_id": ids}
        if isinstance(data_col.type, pa.StructType):
            for i in range(data_col.type.num_fields):
                name = data_col.type.field(i).name
                if name not in ("label", "value", "consensus", "task_id"):
                    columns[name] = data_col.field(i)
        encoded = values.dictionary_encode()
        classes = pa.array(
            [None if v is None else class_of(_dec.decode(v)) for v in encoded.dictionary.to_pylist()],
            pa.string(),
        )
        columns["label"] = pc.take(classes, encoded.indices)
        columns["value"] = values
        columns["consensus"] = hows
        return pa.table(columns).filter(keep)

    def _consensus_of(self, pid: int, several: Sequence[int]) -> dict[int, tuple[str | None, str]]:
        """The consensus of the tasks ``several`` (more than one label each) and of every task a
        reviewer settled: (value text, 'majority' or 'reviewer'); a tie's value is None."""
        out: dict[int, tuple[str | None, str]] = {}
        for i in range(0, len(several), 500):
            chunk = list(several[i : i + 500])
            votes: dict[int, list[str]] = defaultdict(list)
            for task_id, value in self.db.conn.execute(
                f"SELECT task_id, value FROM label_annotations WHERE task_id IN ({','.join('?' * len(chunk))})"
                " AND kind = 'label' ORDER BY id",
                chunk,
            ):
                votes[task_id].append(value)
            for task_id, vs in votes.items():
                out[task_id] = (agreement.majority(vs), "majority")
        for task_id, value in self.db.conn.execute(
            "SELECT task_id, resolved_value FROM label_reviews WHERE project_id = ? AND resolved_value IS NOT NULL"
            " ORDER BY resolved_at",
            (pid,),
        ):
            out[task_id] = (value, "reviewer")
        return out

    def export(
        self, name: str, path: str | Path, fmt: str | None = None, *, record: bool = True
    ) -> ExportResult:
        """Write the labeled tasks; a Parquet export is recorded as a dataset (its sha256) in tracking."""
        r = self._row(name)
        out = Path(path).expanduser().absolute()
        fmt = fmt or exports.guess_format(out)
        if fmt not in exports.FORMATS:
            raise InvalidInput(f"format {fmt!r} is not one of {', '.join(exports.FORMATS)}", field="format")
        pid = r["id"]
        n = 0
        if fmt in ("parquet", "csv"):
            fast = self._export_columns(pid)
            if fast is not None:
                writer_t = exports.write_parquet_table if fmt == "parquet" else exports.write_csv_table
                exports.place(out, lambda p: writer_t(fast, p))
                n = fast.num_rows
            else:
                chosen = self._consensus_text(pid)
                table: dict[str, list[Any]] = {"task_id": []}
                labels: list[str | None] = []
                values: list[str] = []
                hows: list[str] = []
                seen = 0
                label_of: dict[str, str | None] = {}
                for tid, data in self.db.conn.execute(
                    "SELECT id, data FROM label_tasks WHERE project_id = ? ORDER BY id", (pid,)
                ):
                    if tid not in chosen:
                        continue
                    value, how = chosen[tid]
                    d = _dec.decode(data)
                    for k, v in d.items():
                        col = table.get(k)
                        if col is None:
                            col = table[k] = [None] * seen
                        col.append(v)
                    seen += 1
                    table["task_id"].append(tid)
                    for col in table.values():
                        if len(col) < seen:
                            col.append(None)
                    if value not in label_of:
                        label_of[value] = class_of(_dec.decode(value))
                    labels.append(label_of[value])
                    values.append(value)
                    hows.append(how)
                for k in ("label", "value", "consensus"):
                    table.pop(k, None)
                table.update({"label": labels, "value": values, "consensus": hows})
                writer = exports.write_parquet if fmt == "parquet" else exports.write_csv
                exports.place(out, lambda p: writer(table, p))
                n = seen
        else:
            task_rows = self.db.conn.execute(
                "SELECT id, data FROM label_tasks WHERE project_id = ? ORDER BY id", (pid,)
            ).fetchall()
            anns: dict[int, list[Any]] = defaultdict(list)
            for a in self.annotations(name):
                anns[a.task_id].append(a)
            docs: list[dict[str, Any]] = []
            for tid, data in task_rows:
                if tid not in anns:
                    continue
                d = _dec.decode(data)
                if fmt == "json":
                    docs.append(
                        {
                            "id": tid,
                            "data": d,
                            "annotations": [
                                {
                                    "id": a.id,
                                    "completed_by": a.annotator,
                                    "created_at": a.created_at,
                                    "lead_time": a.lead_time_s,
                                    "result": exports.labelstudio_result(a.value or {}),
                                }
                                for a in anns[tid]
                            ],
                        }
                    )
                else:
                    for a in anns[tid]:
                        row = {
                            "id": tid,
                            **d,
                            "annotator": a.annotator,
                            "annotation_id": a.id,
                            "created_at": a.created_at,
                        }
                        row.update(a.value or {})
                        docs.append(row)
            exports.place(out, lambda p: exports.write_json(docs, p))
            n = len(docs)
        from mlbox.tracking.datasets import version_of

        version = version_of(out)
        run_id = None
        if record and fmt == "parquet" and self.tracking is not None:
            run = self.tracking.create_run("labeling", f"export {name}")
            self.tracking.log_dataset(
                run.id,
                name=out.name,
                digest=version.digest,
                source=version.source,
                rows=version.rows,
                schema=version.schema,
                context="labeled",
            )
            self.tracking.end_run(run.id)
            run_id = run.id
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO label_exports (project_id, format, path, digest, rows, run_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pid, fmt, str(out), version.digest, n, run_id, time.time()),
            )
        return ExportResult(name, fmt, str(out), n, version.digest, run_id)


def _text(data: dict[str, Any]) -> str | None:
    t = data.get("text")
    return t if isinstance(t, str) else None


def _annotation(a: sqlite3.Row) -> Annotation:
    return Annotation(
        a["id"],
        a["task_id"],
        a["annotator"],
        a["kind"],
        None if a["value"] is None else _dec.decode(a["value"]),
        a["comment"],
        a["lead_time_s"],
        bool(a["from_prelabel"]),
        a["created_at"],
    )


def _review(r: sqlite3.Row) -> Review:
    return Review(
        r["id"],
        r["task_id"],
        r["reason"],
        r["detail"],
        r["created_by"],
        r["created_at"],
        r["resolved_by"],
        None if r["resolved_value"] is None else _dec.decode(r["resolved_value"]),
    )
