"""The pipelines service: the one object front ends call.

A run is a persisted state machine (`mlbox.pipelines.machine`): every step's state, attempt
and output live in ``step_runs``, so a killed appliance resumes a run where it stopped. The
driver (`advance`, called by the jobs loop through `reconcile_once`, or in a loop by
`wait`) holds the active runs in memory and writes each pass's changes in one transaction;
``pipeline_runs.rev`` tells it when another process (a retry from the CLI) wrote in between.

The driver's own commits skip the fsync (`PipelineService._relaxed`): kill -9 loses nothing,
a power cut at most the last transitions (those steps run again).

No step runs twice at once: a step is claimed by ``UPDATE ... WHERE state = 'ready'``, and
an in-process step's claim names its process (``worker``); only the claim of a dead process
is given back. A light step runs in this process's thread pool; a step that asks for
resources or ``job=True`` runs as a scheduler job (`mlbox.pipelines.jobstep`) with its own
tracking run. An in-process step's ``timeout_s`` is the driver's: past it the step fails
and its late result is dropped (a thread cannot be killed; it runs on).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mlbox.pipelines import capture, lineage, machine, triggers, upstream
from mlbox.pipelines.config import PipelineSettings
from mlbox.pipelines.define import Graph, Node, PipelineDef, module_stamp, resolve
from mlbox.pipelines.execute import cache_key, inputs, run_body
from mlbox.pipelines.migrations import migrations
from mlbox.pipelines.schemas import PipelineRun, Schedule, StepRun
from mlbox.pipelines.values import Stored
from mlbox.registry.service import RegistryService
from mlbox.scheduler.processes import is_alive, process_start
from mlbox.scheduler.schemas import JobSpec, Resources
from mlbox.scheduler.service import SchedulerService
from mlbox.store import ArtifactStore, Database, Home
from mlbox.store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from mlbox.features.service import FeatureStore
    from mlbox.tracking.service import TrackingService

Changes = dict[str, list[int]]

_STEP_COLS = (
    "id, run_id, node, step, deps, state, attempt, as_job, job_id, cache_key, cached_from,"
    " out_kind, out_hash, started_at, finished_at, message, code_hash"
)


@dataclass
class _Step:
    id: int
    node: str
    deps: list[str]
    state: str
    attempt: int
    as_job: bool
    use_cache: bool
    retries: int
    backoff_s: float
    not_before: float
    worker: str | None
    job_id: int | None
    out_kind: str | None
    out_payload: str | None
    out_hash: str | None
    started_at: float = 0.0


@dataclass
class _Run:
    id: int
    ref: str
    params: dict[str, Any]
    no_cache: bool
    rev: int
    steps: dict[str, _Step]
    order: list[str]
    graph: Graph
    deps: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    by_id: dict[int, str] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    """The steps ready or running: what a pass looks at (not the whole graph)."""
    fresh: bool = True


@dataclass(frozen=True)
class _Result:
    step_id: int
    run_id: int
    attempt: int
    stored: Stored | None
    error: str | None
    started_at: float
    finished_at: float
    output: str = ""
    """What the step printed and logged (`mlbox.pipelines.capture`)."""


def _worker_id() -> str:
    return f"{os.getpid()}:{process_start(os.getpid()) or 0}"


def _printed(output: str) -> str:
    """A step's captured output as it goes in its log (ending in a newline)."""
    if not output:
        return ""
    return output if output.endswith("\n") else output + "\n"


def _worker_alive(worker: str | None) -> bool:
    if not worker:
        return False
    pid_s, _, start_s = worker.partition(":")
    try:
        pid, start = int(pid_s), float(start_s)
    except ValueError:
        return False
    return is_alive(pid, start or None)


class PipelineService:
    def __init__(
        self,
        db: Database,
        home: Home,
        settings: PipelineSettings | None = None,
        *,
        artifacts: ArtifactStore | None = None,
        scheduler: SchedulerService | None = None,
        registry: RegistryService | None = None,
        predictions: Path | None = None,
        tracking: TrackingService | None = None,
        features: FeatureStore | None = None,
    ) -> None:
        self.db = db
        self.home = home
        self.settings = settings or PipelineSettings()
        self.artifacts = artifacts or ArtifactStore(home.artifacts)
        self.scheduler = scheduler
        self.registry = registry
        self.predictions = predictions
        self.tracking = tracking
        """Followed by ``dataset`` triggers (a logged dataset's digest)."""
        self.features = features
        """Followed by ``training_set`` triggers."""
        """The prediction log's folder (`mlbox.serving.predlog`): lineage reads its version column."""
        migrations.apply(db)
        self._lock = threading.RLock()
        self._runs: dict[int, _Run] = {}
        self._done: queue.Queue[_Result] = queue.Queue()
        self._pool: ThreadPoolExecutor | None = None
        self._worker = _worker_id()
        self._graphs: dict[str, tuple[PipelineDef, Graph]] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}
        """Each resolved module's file (mtime, size) when it was imported (`module_stamp`)."""
        self._output: dict[int, capture.Buffer] = {}
        """What the in-process steps running now have printed so far, by step run id."""
        self.folder_settle_s = 1.0
        """A watched file must keep its size and time this long before it starts a run."""

    # -- defining and starting runs -----------------------------------------------------------

    def graph(self, ref: str | PipelineDef) -> tuple[PipelineDef, Graph]:
        """The pipeline and its traced (validated) graph, by ``module:name`` or the object."""
        if isinstance(ref, PipelineDef):
            pdef = ref
            key = pdef.ref
            if key not in self._graphs or self._graphs[key][0] is not pdef:
                self._graphs[key] = (pdef, pdef.trace())
            return self._graphs[key]
        # A module edited since it was imported is imported again: the appliance lives long, and
        # the runs it fires (schedules) and the in-process steps it runs must be today's code.
        cached = self._graphs.get(ref)
        stamp = module_stamp(ref)
        if cached is not None and self._stamps.get(ref, stamp) == stamp:
            return cached
        pdef = resolve(ref, self._import_roots(ref), reload=cached is not None)
        self._graphs[ref] = (pdef, pdef.trace())
        self._stamps[ref] = module_stamp(ref)
        return self._graphs[ref]

    def _import_roots(self, ref: str) -> list[str]:
        """The folders runs and schedules of ``ref`` were submitted from."""
        rows = self.db.query(
            "SELECT import_root FROM pipeline_runs WHERE ref = ? AND import_root IS NOT NULL"
            " UNION SELECT import_root FROM pipeline_schedules WHERE ref = ? AND import_root IS NOT NULL",
            (ref, ref),
        )
        return [str(r["import_root"]) for r in rows]

    def submit(
        self,
        pipeline: str | PipelineDef,
        params: Mapping[str, Any] | None = None,
        *,
        no_cache: bool = False,
        no_cache_steps: list[str] | tuple[str, ...] = (),
        trigger: str = "manual",
        partition: str | None = None,
        lane: str | None = None,
        lane_limit: int | None = None,
    ) -> PipelineRun:
        """Validate and persist a run (nothing runs here: `advance` does); `InvalidInput` names
        the step or field at fault before anything is written."""
        pdef, graph = self.graph(pipeline)
        given = dict(params or {})
        if partition is not None and "partition" in pdef.params and "partition" not in given:
            given["partition"] = partition
        values = pdef.resolve_params(given)
        for n in no_cache_steps:
            if n not in graph.nodes:
                raise InvalidInput(f"pipeline {pdef.name!r} has no step {n!r}", field="no_cache_steps")
        order = graph.order()
        now = time.time()
        state = "queued" if lane else "running"
        with self.db.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO pipeline_runs (pipeline, ref, params, state, no_cache, trigger, partition, lane,"
                " lane_limit, created_at, import_root) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pdef.name,
                    pdef.ref,
                    msgspec.json.encode(values).decode(),
                    state,
                    int(no_cache),
                    trigger,
                    partition,
                    lane,
                    lane_limit,
                    now,
                    pdef.import_root,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO step_runs (run_id, node, step, deps, bindings, code_hash, as_job, use_cache,"
                " retries, backoff_s, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        n,
                        node.step.name,
                        msgspec.json.encode(node.deps).decode(),
                        msgspec.json.encode({k: b.to_json() for k, b in node.bindings.items()}).decode(),
                        node.step.code_hash,
                        int(node.step.options.runs_as_job),
                        int(node.step.options.cache and n not in no_cache_steps),
                        node.step.options.retries,
                        node.step.options.backoff_s,
                        "ready" if not node.deps else "pending",
                    )
                    for n in order
                    for node in (graph.nodes[n],)
                ],
            )
        self._wake()
        return self.get_run(run_id)

    # -- reading ----------------------------------------------------------------------------

    def _run_row(self, row: Any, steps: list[StepRun] | None = None) -> PipelineRun:
        return PipelineRun(
            id=row["id"],
            pipeline=row["pipeline"],
            ref=row["ref"],
            params=msgspec.json.decode(row["params"]),
            state=row["state"],
            no_cache=bool(row["no_cache"]),
            trigger=row["trigger"],
            partition=row["partition"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            message=row["message"],
            steps=steps or [],
        )

    @staticmethod
    def _step_row(row: Any) -> StepRun:
        return StepRun(
            id=row["id"],
            run_id=row["run_id"],
            node=row["node"],
            step=row["step"],
            deps=msgspec.json.decode(row["deps"]),
            state=row["state"],
            attempt=row["attempt"],
            as_job=bool(row["as_job"]),
            job_id=row["job_id"],
            cache_key=row["cache_key"],
            cached_from=row["cached_from"],
            out_kind=row["out_kind"],
            out_hash=row["out_hash"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            message=row["message"],
            code_hash=row["code_hash"],
        )

    def get_run(self, run_id: int) -> PipelineRun:
        row = self.db.query_one("SELECT * FROM pipeline_runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFound(f"pipeline run {run_id} does not exist", field="run_id")
        return self._run_row(row, self.steps(run_id))

    def steps(self, run_id: int) -> list[StepRun]:
        rows = self.db.query(f"SELECT {_STEP_COLS} FROM step_runs WHERE run_id = ? ORDER BY id", (run_id,))
        return [self._step_row(r) for r in rows]

    def list_runs(self, *, pipeline: str | None = None, limit: int = 100) -> list[PipelineRun]:
        if pipeline:
            rows = self.db.query(
                "SELECT * FROM pipeline_runs WHERE pipeline = ? ORDER BY id DESC LIMIT ?", (pipeline, limit)
            )
        else:
            rows = self.db.query("SELECT * FROM pipeline_runs ORDER BY id DESC LIMIT ?", (limit,))
        return [self._run_row(r) for r in rows]

    def known_refs(self) -> list[str]:
        """The pipelines (``module:name``) that ran here or have a trigger, newest first: what
        the TUI offers to start."""
        rows = self.db.query(
            "SELECT ref, MAX(at) AS at FROM (SELECT ref, created_at AS at FROM pipeline_runs"
            " UNION ALL SELECT ref, created_at FROM pipeline_schedules) GROUP BY ref ORDER BY at DESC LIMIT 50"
        )
        return [str(r["ref"]) for r in rows]

    def names(self) -> list[str]:
        """The names of the pipelines that ran here."""
        return [
            r["pipeline"] for r in self.db.query("SELECT DISTINCT pipeline FROM pipeline_runs ORDER BY 1")
        ]

    def step_log(self, run_id: int, node: str) -> str:
        """What a step wrote: its job's log for a job step, else its attempts' record."""
        row = self.db.query_one(
            "SELECT id, log, job_id FROM step_runs WHERE run_id = ? AND node = ?", (run_id, node)
        )
        if row is None:
            raise NotFound(f"run {run_id} has no step {node!r}", field="node")
        text = str(row["log"])
        buf = self._output.get(int(row["id"]))
        if buf is not None:
            text += f"(running) output so far:\n{buf.text()}"
        if row["job_id"] is not None and self.scheduler is not None:
            try:
                data, _ = self.scheduler.read_log(int(row["job_id"]))
                text += data.decode("utf-8", "replace")
            except Exception as exc:  # a job whose log is gone still shows the step's record
                text += f"(job log unavailable: {exc})\n"
        return text

    def output(self, run_id: int, node: str) -> Any:
        """The value a finished step produced (read back from storage)."""
        from mlbox.pipelines.values import decode

        row = self.db.query_one(
            "SELECT state, out_kind, out_payload FROM step_runs WHERE run_id = ? AND node = ?", (run_id, node)
        )
        if row is None:
            raise NotFound(f"run {run_id} has no step {node!r}", field="node")
        if row["state"] not in machine.OK or row["out_kind"] is None:
            raise Conflict(
                f"step {node!r} of run {run_id} has no output (it is {row['state']})", field="node"
            )
        return decode(row["out_kind"], row["out_payload"], self.artifacts)

    # -- retry and cancel -------------------------------------------------------------------

    def retry(self, run_id: int, node: str | None = None) -> PipelineRun:
        """Run ``node`` again (or every failed and cancelled step) and the steps downstream of it
        that ended without a value; a step that has its value is never run again."""
        with self._lock, self.db.atomic() as conn:
            run = self.get_run(run_id)
            states = {s.node: s.state for s in run.steps}
            deps = {s.node: s.deps for s in run.steps}
            if node is not None and node not in states:
                raise NotFound(f"run {run_id} has no step {node!r}", field="node")
            if node is not None and states[node] not in machine.DEAD:
                raise Conflict(
                    f"step {node!r} is {states[node]}: only an ended step without a value is retried",
                    field="node",
                )
            again = machine.to_retry(deps, states, node)
            if not again:
                raise Conflict(f"run {run_id} has no failed or cancelled step to retry", field="run_id")
            conn.executemany(
                "UPDATE step_runs SET state = 'pending', not_before = 0, message = NULL, worker = NULL,"
                " job_id = NULL, finished_at = NULL WHERE run_id = ? AND node = ?",
                [(run_id, n) for n in again],
            )
            changes = machine.propagate(
                [s.node for s in run.steps], deps, {**states, **{n: "pending" for n in again}}
            )
            conn.executemany(
                "UPDATE step_runs SET state = ? WHERE run_id = ? AND node = ?",
                [(s, run_id, n) for n, s in changes.items()],
            )
            conn.execute(
                "UPDATE pipeline_runs SET state = 'running', finished_at = NULL, message = NULL, rev = rev + 1"
                " WHERE id = ?",
                (run_id,),
            )
        self._wake()
        return self.get_run(run_id)

    def cancel(self, run_id: int) -> PipelineRun:
        """Steps not started are cancelled at once; a running job is stopped; a running
        in-process step finishes, but its result is dropped."""
        jobs: list[int] = []
        with self._lock, self.db.atomic() as conn:
            run = self.get_run(run_id)
            if run.state not in ("queued", "running"):
                raise Conflict(f"pipeline run {run_id} is {run.state}", field="run_id")
            now = time.time()
            for s in run.steps:
                if s.state in ("pending", "ready", "running"):
                    conn.execute(
                        "UPDATE step_runs SET state = 'cancelled', finished_at = ?, message = 'cancelled'"
                        " WHERE id = ?",
                        (now, s.id),
                    )
                    if s.state == "running" and s.job_id is not None:
                        jobs.append(s.job_id)
            conn.execute(
                "UPDATE pipeline_runs SET state = 'cancelled', finished_at = ?, message = 'cancelled',"
                " rev = rev + 1 WHERE id = ?",
                (now, run_id),
            )
            self._runs.pop(run_id, None)
        if self.scheduler is not None:
            for job_id in jobs:
                with contextlib.suppress(Conflict):
                    self.scheduler.cancel(job_id)
        return self.get_run(run_id)

    # -- the driver ---------------------------------------------------------------------------

    def _wake(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake.set()

    def _load(self, run_id: int) -> _Run | None:
        row = self.db.query_one("SELECT * FROM pipeline_runs WHERE id = ?", (run_id,))
        if row is None or row["state"] != "running":
            return None
        try:
            _pdef, graph = self.graph(row["ref"])
        except InvalidInput as exc:
            self._fail_run(run_id, f"cannot load the pipeline: {exc}")
            return None
        steps: dict[str, _Step] = {}
        for r in self.db.query(
            "SELECT id, node, deps, state, attempt, as_job, use_cache, retries, backoff_s, not_before, worker,"
            " job_id, out_kind, out_payload, out_hash, started_at FROM step_runs WHERE run_id = ?",
            (run_id,),
        ):
            steps[r["node"]] = _Step(
                r["id"],
                r["node"],
                msgspec.json.decode(r["deps"]),
                r["state"],
                r["attempt"],
                bool(r["as_job"]),
                bool(r["use_cache"]),
                r["retries"],
                r["backoff_s"],
                r["not_before"],
                r["worker"],
                r["job_id"],
                r["out_kind"],
                r["out_payload"],
                r["out_hash"],
                r["started_at"] or 0.0,
            )
        if set(steps) != set(graph.nodes):
            self._fail_run(run_id, "the pipeline's steps changed since the run started")
            return None
        deps = {n: s.deps for n, s in steps.items()}
        order = graph.order()
        children: dict[str, list[str]] = {}
        for n, ds in deps.items():
            for d in ds:
                children.setdefault(d, []).append(n)
        return _Run(
            run_id,
            row["ref"],
            msgspec.json.decode(row["params"]),
            bool(row["no_cache"]),
            row["rev"],
            steps,
            order,
            graph,
            deps,
            children,
            {s.id: n for n, s in steps.items()},
            {n: i for i, n in enumerate(order)},
            {n for n, s in steps.items() if s.state in ("ready", "running")},
        )

    def _fail_run(self, run_id: int, message: str) -> None:
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE pipeline_runs SET state = 'failed', finished_at = ?, message = ?, rev = rev + 1 WHERE id = ?",
                (time.time(), message, run_id),
            )

    def _start_queued(self) -> None:
        """A backfill's queued runs start while fewer than their lane's limit are running."""
        lanes = self.db.query(
            "SELECT lane, MIN(lane_limit) AS lim, SUM(state = 'running') AS running FROM pipeline_runs"
            " WHERE lane IS NOT NULL AND state IN ('queued', 'running') GROUP BY lane HAVING SUM(state = 'queued') > 0"
        )
        for lane in lanes:
            free = int(lane["lim"] or 1) - int(lane["running"] or 0)
            if free <= 0:
                continue
            with self.db.atomic() as conn:
                ids = [
                    r["id"]
                    for r in conn.execute(
                        "SELECT id FROM pipeline_runs WHERE lane = ? AND state = 'queued' ORDER BY id LIMIT ?",
                        (lane["lane"], free),
                    )
                ]
                conn.executemany(
                    "UPDATE pipeline_runs SET state = 'running', rev = rev + 1 WHERE id = ?",
                    [(i,) for i in ids],
                )

    def advance(self, now: float | None = None) -> Changes:
        """One pass over every active run: record finished steps, start ready ones. Never blocks
        on a step."""
        with self._lock:
            return self._advance(time.time() if now is None else now)

    def _advance(self, now: float) -> Changes:
        changes: Changes = {"started": [], "succeeded": [], "failed": [], "cached": [], "runs_ended": []}
        results: dict[int, list[_Result]] = {}
        while True:
            try:
                r = self._done.get_nowait()
            except queue.Empty:
                break
            results.setdefault(r.run_id, []).append(r)
        self._start_queued()
        active = {
            int(r["id"]): int(r["rev"])
            for r in self.db.query("SELECT id, rev FROM pipeline_runs WHERE state = 'running'")
        }
        for run_id in list(self._runs):
            if run_id not in active:
                del self._runs[run_id]
        for run_id, rev in active.items():
            run = self._runs.get(run_id)
            if run is None or run.rev != rev:
                loaded = self._load(run_id)
                if loaded is None:
                    self._runs.pop(run_id, None)
                    continue
                run = self._runs[run_id] = loaded
            self._step_run(run, results.pop(run_id, []), now, changes)
        # named apart from the other services' keys (the jobs loop merges every service's changes)
        return {
            f"pipeline_steps_{k}" if k != "runs_ended" else "pipeline_runs_ended": v
            for k, v in changes.items()
            if v
        }

    @contextlib.contextmanager
    def _relaxed(self) -> Iterator[None]:
        """The driver's commits are not fsynced (``synchronous = NORMAL``, WAL): a step's
        transition survives kill -9 of the appliance (what a resume needs), while a power cut
        may lose the last few, whose steps then run again. An fsync per transition would cost
        more than the step itself (7 ms against 1 ms per step of a chain on this machine's disk)."""
        conn = self.db.conn
        if conn.in_transaction:  # inside a caller's transaction: its durability stands
            yield
            return
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    @staticmethod
    def _track(run: _Run, st: _Step) -> None:
        """Keep ``run.live`` (the steps ready or running) in step with ``st.state``."""
        if st.state in ("ready", "running"):
            run.live.add(st.node)
        else:
            run.live.discard(st.node)

    def _follow(self, conn: Any, run: _Run, settled: list[str], now: float) -> None:
        """Steps downstream of the ones that just ended become ready or skipped (cascading);
        on a run's first pass here every step is looked at."""
        if run.fresh:
            run.fresh = False
            states = {n: s.state for n, s in run.steps.items()}
            changed = machine.propagate(run.order, run.deps, states)
        else:
            changed = {}
            todo = [c for n in settled for c in run.children.get(n, [])]
            while todo:
                c = todo.pop()
                st = run.steps[c]
                if st.state != "pending" or c in changed:
                    continue
                ups = [run.steps[d].state for d in st.deps]
                if any(u in machine.DEAD for u in ups):
                    changed[c] = st.state = "skipped"
                    todo.extend(run.children.get(c, []))
                elif all(u in machine.OK for u in ups):
                    changed[c] = st.state = "ready"
        for n, state in changed.items():
            st = run.steps[n]
            st.state = state
            self._track(run, st)
            conn.execute(
                "UPDATE step_runs SET state = ?, finished_at = ? WHERE id = ?",
                (state, now if state == "skipped" else None, st.id),
            )

    def _step_run(self, run: _Run, results: list[_Result], now: float, changes: Changes) -> None:
        launch: list[tuple[_Step, Node, dict[str, tuple[str, str]]]] = []
        jobs: list[_Step] = []
        settled: list[str] = []
        with self._relaxed(), self.db.atomic() as conn:
            # 1. results of in-process steps
            for res in results:
                node_name = run.by_id.get(res.step_id)
                st = None if node_name is None else run.steps[node_name]
                if (
                    st is None
                    or st.state != "running"
                    or st.attempt != res.attempt
                    or st.worker != self._worker
                ):
                    continue  # cancelled or retried meanwhile: the result is dropped
                printed = _printed(res.output)
                if res.stored is not None:
                    self._succeed(
                        conn, st, res.stored, res.finished_at, f"attempt {res.attempt}: succeeded\n{printed}"
                    )
                    changes["succeeded"].append(st.id)
                else:
                    self._failed(conn, st, res.error or "failed", now, res.finished_at, printed)
                    changes["failed"].append(st.id)
                self._track(run, st)
                settled.append(st.node)
            # 2. job steps and claims of dead processes
            for n in sorted(run.live, key=run.index.__getitem__):
                st = run.steps[n]
                if st.state != "running":
                    continue
                if st.as_job:
                    self._check_job(conn, st, now, changes)
                elif st.worker == self._worker:
                    self._timed_out(conn, run, st, now, changes)
                elif not _worker_alive(st.worker):
                    conn.execute("UPDATE step_runs SET state = 'ready', worker = NULL WHERE id = ?", (st.id,))
                    st.state, st.worker = "ready", None
                self._track(run, st)
                if st.state in machine.TERMINAL:
                    settled.append(n)
            # 3. what follows, and 4. start what is ready (a cache hit settles at once: again)
            while True:
                self._follow(conn, run, settled, now)
                settled = []
                batch: list[tuple[_Step, str]] = []
                for n in sorted(run.live, key=run.index.__getitem__):
                    st = run.steps[n]
                    if st.state != "ready" or st.not_before > now:
                        continue
                    key = self._cached(conn, run, st, now, changes)
                    if key is None:
                        settled.append(n)
                    else:
                        batch.append((st, key))
                for st in self._claim(conn, run, batch, now, changes):
                    if st.as_job:
                        jobs.append(st)
                    else:
                        node = run.graph.nodes[st.node]
                        upstream = {
                            d: (run.steps[d].out_kind or "", run.steps[d].out_payload or "") for d in st.deps
                        }
                        launch.append((st, node, upstream))
                if not settled:
                    break
            for st in jobs:
                self._submit_job(conn, run, st)
                self._track(run, st)
            # 5. the run
            ended = "running"
            if not run.live:
                states = {n: s.state for n, s in run.steps.items()}
                ended = machine.run_state(states.values())
            if ended != "running":
                failed = [n for n, s in states.items() if s == "failed"]
                conn.execute(
                    "UPDATE pipeline_runs SET state = ?, finished_at = ?, message = ? WHERE id = ?",
                    (ended, now, f"failed: {', '.join(failed)}" if failed else None, run.id),
                )
                changes["runs_ended"].append(run.id)
            row = conn.execute(
                "UPDATE pipeline_runs SET rev = rev + 1 WHERE id = ? RETURNING rev", (run.id,)
            ).fetchone()
            run.rev = int(row[0])
        if ended != "running":
            self._runs.pop(run.id, None)
        for st, node, upstream in launch:
            self._pool_submit(run, st, node, upstream)

    def _cached(self, conn: Any, run: _Run, st: _Step, now: float, changes: Changes) -> str | None:
        """Reuse an earlier result (None: the step settled); else the step's cache key."""
        node = run.graph.nodes[st.node]
        key = cache_key(node, run.params, {d: run.steps[d].out_hash or "" for d in st.deps})
        if st.use_cache and not run.no_cache:
            hit = conn.execute(
                "SELECT id, out_kind, out_payload, out_hash FROM step_runs WHERE cache_key = ?"
                " AND state = 'succeeded' AND id != ? ORDER BY id DESC LIMIT 1",
                (key, st.id),
            ).fetchone()
            if hit is not None and self._still_stored(hit["out_kind"], hit["out_payload"]):
                conn.execute(
                    "UPDATE step_runs SET state = 'cached', cache_key = ?, cached_from = ?, out_kind = ?,"
                    " out_payload = ?, out_hash = ?, started_at = ?, finished_at = ?, message = ?,"
                    " log = log || ? || char(10) WHERE id = ?",
                    (
                        key,
                        hit["id"],
                        hit["out_kind"],
                        hit["out_payload"],
                        hit["out_hash"],
                        now,
                        now,
                        f"cached: the result of step run {hit['id']}",
                        f"cache hit: the result of step run {hit['id']} (key {key[:12]})",
                        st.id,
                    ),
                )
                st.state, st.out_kind, st.out_payload, st.out_hash = (
                    "cached",
                    hit["out_kind"],
                    hit["out_payload"],
                    hit["out_hash"],
                )
                self._track(run, st)
                changes["cached"].append(st.id)
                return None
        return key

    def _claim(
        self, conn: Any, run: _Run, batch: list[tuple[_Step, str]], now: float, changes: Changes
    ) -> list[_Step]:
        """Claim the ready steps of ``batch`` in one statement per kind; the ones this driver got
        (another driver may have claimed some first)."""
        if not batch:
            return []
        conn.executemany("UPDATE step_runs SET cache_key = ? WHERE id = ?", [(k, st.id) for st, k in batch])
        claimed: set[int] = set()
        for as_job, worker in ((False, self._worker), (True, None)):
            ids = [st.id for st, _ in batch if st.as_job == as_job]
            if not ids:
                continue
            rows = conn.execute(
                "UPDATE step_runs SET state = 'running', attempt = attempt + 1, worker = ?, started_at = ?,"
                " finished_at = NULL WHERE state = 'ready' AND id IN (SELECT value FROM json_each(?)) RETURNING id",
                (worker, now, msgspec.json.encode(ids).decode()),
            ).fetchall()
            claimed.update(int(r[0]) for r in rows)
        out: list[_Step] = []
        for st, _key in batch:
            if st.id not in claimed:
                continue
            st.state, st.attempt, st.worker = "running", st.attempt + 1, None if st.as_job else self._worker
            st.started_at = now
            self._track(run, st)
            self._record_inputs(conn, st, run.graph.nodes[st.node], run.params, now)
            changes["started"].append(st.id)
            out.append(st)
        return out

    def referenced_objects(self) -> set[str]:
        """The artifact store objects step results are (frames, arrays): ``mlbox gc`` keeps them."""
        rows = self.db.query(
            "SELECT DISTINCT out_payload FROM step_runs WHERE out_kind IN ('frame', 'polars', 'array')"
        )
        return {r[0] for r in rows if r[0]}

    def _still_stored(self, kind: str, payload: str) -> bool:
        if kind in ("frame", "polars", "array"):
            return self.artifacts.exists(payload)
        return True

    def _succeed(self, conn: Any, st: _Step, stored: Stored, finished_at: float, log: str) -> None:
        conn.execute(
            "UPDATE step_runs SET state = 'succeeded', out_kind = ?, out_payload = ?, out_hash = ?, finished_at = ?,"
            " message = NULL, log = log || ? WHERE id = ?",
            (stored.kind, stored.payload, stored.hash, finished_at, log, st.id),
        )
        st.state, st.out_kind, st.out_payload, st.out_hash = (
            "succeeded",
            stored.kind,
            stored.payload,
            stored.hash,
        )
        if stored.kind in lineage.RECORDED_KINDS:
            conn.execute(
                "INSERT INTO pipeline_lineage (step_run_id, direction, kind, ref, sha256, at) VALUES (?, 'out', ?, ?, ?, ?)",
                (st.id, stored.kind, lineage.output_ref(stored), stored.hash, finished_at),
            )

    def _record_inputs(self, conn: Any, st: _Step, node: Node, params: Mapping[str, Any], now: float) -> None:
        """The raw files a step is given (a parameter or constant naming a file), with their hash now."""
        for b in node.bindings.values():
            value = params.get(b.ref) if b.kind == "param" else b.value if b.kind == "const" else None
            found = lineage.file_input(value)
            if found is not None:
                conn.execute(
                    "INSERT INTO pipeline_lineage (step_run_id, direction, kind, ref, sha256, at)"
                    " VALUES (?, 'in', 'file', ?, ?, ?)",
                    (st.id, found[0], found[1], now),
                )

    def _failed(
        self, conn: Any, st: _Step, error: str, now: float, finished_at: float, printed: str = ""
    ) -> None:
        """Another attempt after the backoff while retries are left, else ``failed``."""
        delay = machine.retry_delay(st.attempt, st.retries, st.backoff_s)
        first = error.strip().splitlines()[-1] if error.strip() else "failed"
        log = f"attempt {st.attempt}: failed\n{printed}{error}\n"
        if delay is None:
            conn.execute(
                "UPDATE step_runs SET state = 'failed', finished_at = ?, message = ?, worker = NULL, log = log || ?"
                " WHERE id = ?",
                (finished_at, first, log, st.id),
            )
            st.state = "failed"
        else:
            conn.execute(
                "UPDATE step_runs SET state = 'ready', not_before = ?, message = ?, worker = NULL, job_id = NULL,"
                " log = log || ? WHERE id = ?",
                (now + delay, f"retrying in {delay:g}s: {first}", log, st.id),
            )
            st.state, st.not_before, st.job_id = "ready", now + delay, None
        st.worker = None

    def _timed_out(self, conn: Any, run: _Run, st: _Step, now: float, changes: Changes) -> None:
        """An in-process step past its ``timeout_s`` fails (or is retried) now. Its thread cannot
        be stopped: it runs on, holding a pool worker, and its result is dropped when it comes
        (the attempt no longer matches a running step)."""
        limit = run.graph.nodes[st.node].step.options.timeout_s
        if limit is None or now - st.started_at <= limit:
            return
        buf = self._output.pop(st.id, None)
        printed = _printed(buf.text()) if buf is not None else ""
        message = (
            f"timed out after {limit:g}s (an in-process step's thread cannot be stopped: it runs on,"
            " and its result will be ignored)"
        )
        self._failed(conn, st, message, now, now, printed)
        changes["failed"].append(st.id)

    def _check_job(self, conn: Any, st: _Step, now: float, changes: Changes) -> None:
        if self.scheduler is None or st.job_id is None:
            return
        job = self.scheduler.get(st.job_id)
        if not job.terminal:
            return
        row = conn.execute(
            "SELECT out_kind, out_payload, out_hash FROM step_runs WHERE id = ?", (st.id,)
        ).fetchone()
        if job.state == "succeeded" and row["out_kind"] is not None:
            stored = Stored(row["out_kind"], row["out_payload"], row["out_hash"])
            self._succeed(
                conn, st, stored, job.finished_at or now, f"attempt {st.attempt}: job {job.id} succeeded\n"
            )
            changes["succeeded"].append(st.id)
        else:
            self._failed(
                conn, st, f"job {job.id} {job.state}: {job.message or ''}", now, job.finished_at or now
            )
            changes["failed"].append(st.id)

    def _submit_job(self, conn: Any, run: _Run, st: _Step) -> None:
        if self.scheduler is None:
            self._failed(conn, st, "a job step needs the scheduler", time.time(), time.time())
            return
        opts = run.graph.nodes[st.node].step.options
        pname = run.graph.pipeline
        job = self.scheduler.submit(
            JobSpec(
                name=f"{pname}.{st.node}",
                function="mlbox.pipelines.jobstep:run_step",
                kwargs={"step_run_id": st.id, "attempt": st.attempt},
                resources=Resources(gpus=opts.gpus, gpu_memory_mb=opts.gpu_memory_mb, cpus=opts.cpus or 1.0),
                timeout_s=opts.timeout_s,
                python=sys.executable,
                env={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                experiment=f"pipeline-{pname}",
                owner=f"pipeline:{run.id}",
            )
        )
        conn.execute("UPDATE step_runs SET job_id = ? WHERE id = ?", (job.id, st.id))
        st.job_id = job.id

    def _pool_submit(self, run: _Run, st: _Step, node: Node, upstream: dict[str, tuple[str, str]]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="mlbox-step")
        self._pool.submit(self._execute, run.id, run.params, st.id, st.attempt, node, upstream)

    def _execute(
        self,
        run_id: int,
        params: dict[str, Any],
        step_id: int,
        attempt: int,
        node: Node,
        upstream: dict[str, tuple[str, str]],
    ) -> None:
        started = time.time()
        buf = self._output[step_id] = capture.Buffer()
        try:
            with capture.captured(buf):
                stored = run_body(node, inputs(node, params, upstream, self.artifacts), self.artifacts)
            res = _Result(step_id, run_id, attempt, stored, None, started, time.time(), buf.text())
        except BaseException:
            res = _Result(
                step_id,
                run_id,
                attempt,
                None,
                traceback.format_exc(limit=8),
                started,
                time.time(),
                buf.text(),
            )
        finally:
            if self._output.get(step_id) is buf:
                del self._output[step_id]
        self._done.put(res)
        self._wake()

    def wait(self, run_id: int, timeout_s: float | None = None, *, drive: bool = True) -> PipelineRun:
        """Drive (or, with ``drive=False``, watch) the run until it ends."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if drive:
                self.advance()
            row = self.db.query_one("SELECT state FROM pipeline_runs WHERE id = ?", (run_id,))
            if row is None:
                raise NotFound(f"pipeline run {run_id} does not exist", field="run_id")
            if row["state"] not in ("queued", "running"):
                return self.get_run(run_id)
            if deadline is not None and time.monotonic() > deadline:
                return self.get_run(run_id)
            if drive:
                try:
                    r = self._done.get(timeout=0.05)
                    self._done.put(r)
                except queue.Empty:
                    pass
            else:
                time.sleep(0.1)

    # -- schedules and triggers -------------------------------------------------------------

    def add_schedule(
        self,
        pipeline: str,
        kind: str,
        spec: str,
        params: Mapping[str, Any] | None = None,
        *,
        catchup: str = "latest",
        now: float | None = None,
    ) -> Schedule:
        """A cron schedule, a watched folder or an alias to follow; checked before it is stored."""
        pdef, _graph = self.graph(pipeline)
        given = dict(params or {})
        if kind == "cron":
            triggers.parse_cron(spec)
        elif kind == "folder":
            triggers.check_folder(spec)
            if "path" not in pdef.params:
                raise InvalidInput(
                    f"pipeline {pdef.name!r} needs a 'path' parameter to be fed files", field="pipeline"
                )
        elif kind == "alias":
            name, sep, alias = spec.partition("@")
            if not sep or not name or not alias:
                raise InvalidInput(f"an alias to follow reads model@alias, not {spec!r}", field="spec")
            if self.registry is None:
                raise InvalidInput("following a model alias needs the registry", field="kind")
        elif kind == "dataset":
            upstream.split_dataset_spec(spec)
            if self.tracking is None:
                raise InvalidInput("following a dataset needs the tracking service", field="kind")
        elif kind == "training_set":
            if not spec.strip():
                raise InvalidInput("a training set to follow needs its name", field="spec")
            if self.features is None:
                raise InvalidInput("following a training set needs the feature store", field="kind")
        else:
            raise InvalidInput(
                f"schedule kind must be cron, folder, alias, dataset or training_set, not {kind!r}",
                field="kind",
            )
        if catchup not in ("none", "latest", "all"):
            raise InvalidInput(f"catch-up must be none, latest or all, not {catchup!r}", field="catchup")
        probe = dict(given)
        if kind == "folder":
            probe["path"] = probe.get("path", "")
        if kind == "alias" and "model" in pdef.params:
            probe["model"] = probe.get("model", "")
        if kind in ("dataset", "training_set") and kind in pdef.params:
            probe[kind] = probe.get(kind, "")
        if "partition" in pdef.params:
            probe.setdefault("partition", "")
        pdef.resolve_params(probe)
        state = self._alias_version(spec) if kind == "alias" else self._upstream(kind, spec)[0]
        t = time.time() if now is None else now
        with self.db.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO pipeline_schedules (ref, kind, spec, params, catchup, last_tick, state, created_at,"
                " import_root) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pdef.ref,
                    kind,
                    spec,
                    msgspec.json.encode(given).decode(),
                    catchup,
                    t,
                    state,
                    t,
                    pdef.import_root,
                ),
            )
            sid = int(cur.lastrowid or 0)
        return self.get_schedule(sid)

    def get_schedule(self, schedule_id: int) -> Schedule:
        row = self.db.query_one("SELECT * FROM pipeline_schedules WHERE id = ?", (schedule_id,))
        if row is None:
            raise NotFound(f"schedule {schedule_id} does not exist", field="schedule_id")
        return self._schedule(row)

    @staticmethod
    def _schedule(row: Any) -> Schedule:
        return Schedule(
            id=row["id"],
            ref=row["ref"],
            kind=row["kind"],
            spec=row["spec"],
            params=msgspec.json.decode(row["params"]),
            catchup=row["catchup"],
            last_tick=row["last_tick"],
            enabled=bool(row["enabled"]),
            created_at=row["created_at"],
        )

    def schedules(self) -> list[Schedule]:
        return [self._schedule(r) for r in self.db.query("SELECT * FROM pipeline_schedules ORDER BY id")]

    def remove_schedule(self, schedule_id: int) -> None:
        self.get_schedule(schedule_id)
        with self.db.atomic() as conn:
            conn.execute("DELETE FROM pipeline_seen_files WHERE schedule_id = ?", (schedule_id,))
            conn.execute("DELETE FROM pipeline_schedules WHERE id = ?", (schedule_id,))

    def fire_triggers(self, now: float | None = None) -> list[int]:
        """Start the runs that cron ticks and arrived files call for; the started run ids."""
        t = time.time() if now is None else now
        started: list[int] = []
        for sch in self.schedules():
            if not sch.enabled:
                continue
            try:
                if sch.kind == "cron":
                    started += self._fire_cron(sch, t)
                elif sch.kind == "folder":
                    started += self._fire_folder(sch, t)
                elif sch.kind == "alias":
                    started += self._fire_alias(sch)
                elif sch.kind in ("dataset", "training_set"):
                    started += self._fire_upstream(sch)
            except InvalidInput:
                continue  # a folder removed since: the schedule waits for it
        return started

    def _fire_cron(self, sch: Schedule, now: float) -> list[int]:
        ticks = triggers.due_ticks(sch.spec, sch.last_tick or sch.created_at, now, sch.catchup)
        latest = triggers.last_tick_before(sch.spec, sch.last_tick or sch.created_at, now)
        if latest is None:
            return []
        ids: list[int] = []
        with self.db.atomic() as conn:
            row = conn.execute("SELECT last_tick FROM pipeline_schedules WHERE id = ?", (sch.id,)).fetchone()
            if row["last_tick"] != sch.last_tick:
                return []  # another process fired these ticks
            for tick in ticks:
                ids.append(
                    self.submit(
                        sch.ref, sch.params, trigger=f"cron:{sch.id}", partition=triggers.tick_partition(tick)
                    ).id
                )
            conn.execute("UPDATE pipeline_schedules SET last_tick = ? WHERE id = ?", (latest, sch.id))
        return ids

    def _alias_version(self, spec: str) -> str:
        """``name/version`` the alias points at now ('' while it points nowhere)."""
        if self.registry is None:
            return ""
        try:
            v = self.registry.resolve(spec)
        except NotFound:
            return ""
        return f"{v.name}/{v.version}"

    def _fire_alias(self, sch: Schedule) -> list[int]:
        """A run when the alias moved (its ``model`` parameter, if it has one, names the version)."""
        now_at = self._alias_version(sch.spec)
        with self.db.atomic() as conn:
            row = conn.execute("SELECT state FROM pipeline_schedules WHERE id = ?", (sch.id,)).fetchone()
            if row is None or row["state"] == now_at or not now_at:
                if row is not None and not now_at and row["state"]:
                    conn.execute("UPDATE pipeline_schedules SET state = '' WHERE id = ?", (sch.id,))
                return []
            conn.execute("UPDATE pipeline_schedules SET state = ? WHERE id = ?", (now_at, sch.id))
            pdef, _ = self.graph(sch.ref)
            params = {**sch.params, **({"model": now_at} if "model" in pdef.params else {})}
            return [self.submit(sch.ref, params, trigger=f"alias:{sch.spec}").id]

    def _upstream(self, kind: str, spec: str) -> tuple[str, str]:
        """``(state, value)`` of the dataset or training set a schedule follows (`upstream`)."""
        if kind == "dataset" and self.tracking is not None:
            return upstream.dataset_state(self.tracking, spec)
        if kind == "training_set" and self.features is not None:
            return upstream.training_set_state(self.features, spec)
        return "", ""

    def _fire_upstream(self, sch: Schedule) -> list[int]:
        """A run when the followed data's content hash changed (not when it was only logged
        again with the same content); its ``dataset`` / ``training_set`` parameter, if it has one,
        names the digest / training set id."""
        state, value = self._upstream(sch.kind, sch.spec)
        if not state:
            return []
        with self.db.atomic() as conn:
            row = conn.execute("SELECT state FROM pipeline_schedules WHERE id = ?", (sch.id,)).fetchone()
            if row is None or row["state"] == state:
                return []
            conn.execute("UPDATE pipeline_schedules SET state = ? WHERE id = ?", (state, sch.id))
            pdef, _ = self.graph(sch.ref)
            params = {**sch.params, **({sch.kind: value} if sch.kind in pdef.params else {})}
            return [self.submit(sch.ref, params, trigger=f"{sch.kind}:{sch.spec}").id]

    def _fire_folder(self, sch: Schedule, now: float) -> list[int]:
        seen = {
            r["name"]: r
            for r in self.db.query(
                "SELECT name, size, mtime, run_id FROM pipeline_seen_files WHERE schedule_id = ?", (sch.id,)
            )
        }
        ids: list[int] = []
        for name, size, mtime in triggers.scan_folder(sch.spec):
            old = seen.get(name)
            with self.db.atomic() as conn:
                if old is None or (old["run_id"] is None and (old["size"] != size or old["mtime"] != mtime)):
                    conn.execute(
                        "INSERT INTO pipeline_seen_files (schedule_id, name, size, mtime) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (schedule_id, name) DO UPDATE SET size = excluded.size, mtime = excluded.mtime",
                        (sch.id, name, size, mtime),
                    )
                    continue
                if old["run_id"] is not None or now - mtime < self.folder_settle_s:
                    continue
                path = os.path.join(sch.spec, name)
                run = self.submit(sch.ref, {**sch.params, "path": path}, trigger=f"file:{name}")
                conn.execute(
                    "UPDATE pipeline_seen_files SET run_id = ? WHERE schedule_id = ? AND name = ?",
                    (run.id, sch.id, name),
                )
                ids.append(run.id)
        return ids

    def backfill(
        self,
        pipeline: str,
        start: str,
        end: str,
        *,
        parallel: int = 2,
        params: Mapping[str, Any] | None = None,
    ) -> list[PipelineRun]:
        """One run per day from ``start`` to ``end`` (inclusive), at most ``parallel`` at once."""
        if parallel < 1:
            raise InvalidInput("parallel must be at least 1", field="parallel")
        days = triggers.day_partitions(start, end)
        pdef, _ = self.graph(pipeline)
        if "partition" not in pdef.params:
            raise InvalidInput(
                f"pipeline {pdef.name!r} has no 'partition' parameter to backfill", field="pipeline"
            )
        lane = f"backfill:{pdef.name}:{start}..{end}:{time.time():.6f}"
        return [
            self.submit(pipeline, params, trigger="backfill", partition=d, lane=lane, lane_limit=parallel)
            for d in days
        ]

    # -- lineage ----------------------------------------------------------------------------

    def _lineage(self) -> lineage.Lineage:
        return lineage.Lineage(
            self.db, find_request=self._find_request, served=self._served, model_info=self._model_info
        )

    def lineage_back(self, request_id: str) -> lineage.LineageGraph:
        """A served prediction back to the raw files (`mlbox.pipelines.lineage`)."""
        return self._lineage().backward(request_id)

    def lineage_forward(self, path: str) -> lineage.LineageGraph:
        """A raw file forward to the model versions and served versions it influenced."""
        if "\x00" in path:  # no file has one; the OS refuses the name with ValueError (a 500)
            raise InvalidInput("path must not contain a NUL character", field="path")
        return self._lineage().forward(path)

    def made_by(self, kind: str, ref: str) -> list[lineage.MadeBy]:
        """The step runs (with pipeline run, code version and inputs) that made ``ref``."""
        return self._lineage().made_by(kind, ref)

    def _predictions(self, model: str | None = None) -> Any:
        from mlbox.serving.predlog import read_predictions

        if self.predictions is None:
            return None
        return read_predictions(self.predictions, model)

    def _find_request(self, request_id: str) -> tuple[str, int] | None:
        import polars as pl

        frame = self._predictions()
        if frame is None or frame.is_empty():
            return None
        hit = frame.filter(pl.col("request_id") == request_id)
        if hit.is_empty():
            return None
        return str(hit["model"][0]), int(hit["version"][0])

    def _served(self, name: str, version: int) -> int:
        import polars as pl

        frame = self._predictions(name)
        if frame is None or frame.is_empty():
            return 0
        return int(frame.filter(pl.col("version") == version).height)

    def _model_info(self, name: str, version: int) -> tuple[int | None, list[str]]:
        if self.registry is None:
            return None, []
        v = self.registry.get_version(name, version)
        return v.run_id, list(v.aliases)

    # -- the loop -----------------------------------------------------------------------------

    def reconcile_once(self, now: float | None = None) -> Changes:
        """One pass of the jobs loop: fire due triggers, then advance every active run."""
        started = self.fire_triggers(now)
        changed = self.advance(now)
        if started:
            changed["pipeline_runs_triggered"] = started
        return changed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
