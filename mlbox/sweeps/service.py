"""The sweep service: studies whose trials run as jobs, driven by a reconciliation pass.

It owns the sweep tables (`mlbox.sweeps.migrations`); jobs are the
scheduler's and runs the tracking service's, asked through their services.
Invariants:

* A trial row and its job are written in one transaction (the scheduler's
  ``submit`` nests as a savepoint), so a crash never leaves a trial without a
  job or a job the sweep does not know.
* The sweep is driven by `reconcile_once` (the appliance's scheduler loop
  calls it every tick): it reads trials' metrics from their runs, reports them
  to the study, stops pruned jobs, tells finished ones and asks for new trials
  while fewer than ``parallel`` are live. Any process may drive: each pass is
  one ``BEGIN IMMEDIATE`` transaction per sweep and the study is rebuilt when
  the sweep's ``revision`` moved (`mlbox.sweeps.driver`).
* Stopping is a row change plus job cancels; the pass finishes the trials as
  their jobs end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec

from mlbox.scheduler.service import SchedulerService
from mlbox.store import Database, Home
from mlbox.store.errors import Conflict, InvalidInput, MlboxError, NotFound
from mlbox.sweeps import study as studies
from mlbox.sweeps.driver import Driver
from mlbox.sweeps.migrations import migrations
from mlbox.sweeps.params import placeholders
from mlbox.sweeps.schemas import (
    LIVE_SWEEP_STATES,
    PRUNERS,
    SAMPLERS,
    Sweep,
    SweepDetail,
    SweepSpec,
    Trial,
)
from mlbox.sweeps.space import Space, parse_mapping, parse_python
from mlbox.tracking.service import TrackingService
from mlbox.tracking.validation import check_key

if TYPE_CHECKING:
    from mlbox.registry.schemas import ModelVersion

log = logging.getLogger("mlbox.sweeps")

MAX_TRIALS = 100_000
MAX_PARALLEL = 1024
MAX_FAILED_PASSES = 5
"""A sweep whose pass raises this many times in a row is marked failed (its jobs cancelled)."""


def _value(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


def trial_from_row(r: sqlite3.Row) -> Trial:
    return Trial(
        sweep_id=r["sweep_id"],
        number=r["number"],
        state=r["state"],
        params=json.loads(r["params"]),
        value=r["value"],
        job_id=r["job_id"],
        run_id=r["run_id"],
        last_step=r["last_step"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        message=r["message"],
    )


def check_spec(spec: SweepSpec) -> tuple[SweepSpec, Space]:
    """The spec as it will run (grid trials capped at the grid's size) and its parsed space."""
    check_key(spec.metric, "metric")
    if spec.direction not in ("minimize", "maximize"):
        raise InvalidInput(
            f"direction must be minimize or maximize, got {spec.direction!r}", field="direction"
        )
    if spec.objective not in ("last", "best"):
        raise InvalidInput(f"objective must be last or best, got {spec.objective!r}", field="objective")
    if spec.sampler not in SAMPLERS:
        raise InvalidInput(
            f"sampler must be one of {', '.join(SAMPLERS)}, got {spec.sampler!r}", field="sampler"
        )
    if spec.pruner not in PRUNERS:
        raise InvalidInput(f"pruner must be one of {', '.join(PRUNERS)}, got {spec.pruner!r}", field="pruner")
    for name, value, low, high in (
        ("n_trials", spec.n_trials, 1, MAX_TRIALS),
        ("parallel", spec.parallel, 1, MAX_PARALLEL),
        ("gpus_per_trial", spec.gpus_per_trial, 0, 1024),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"{name} must be an integer from {low} to {high}, got {value!r}", field=name)
    if not spec.cpus_per_trial > 0:
        raise InvalidInput("cpus_per_trial must be above 0", field="cpus_per_trial")
    for name, t in (("timeout_s", spec.timeout_s), ("trial_timeout_s", spec.trial_timeout_s)):
        if t is not None and not (t > 0 and math.isfinite(t)):
            raise InvalidInput(f"{name} must be a positive number of seconds", field=name)
    if not spec.command or not all(isinstance(a, str) for a in spec.command):
        raise InvalidInput("the trial command must be a non-empty list of strings", field="command")
    if spec.name is not None and (not spec.name.strip() or len(spec.name) > 200):
        raise InvalidInput("name must be non-empty text of at most 200 characters", field="name")
    if (spec.space is None) == (spec.space_source is None):
        raise InvalidInput("give a search space: either space (a mapping) or space_source", field="space")
    if spec.space is not None:
        space = parse_mapping(spec.space)
    else:
        assert spec.space_source is not None
        space = parse_python(spec.space_source, spec.space_filename)
    if not space.is_function:
        unknown = placeholders(spec.command) - {p.name for p in space.params}
        if unknown:
            raise InvalidInput(
                f"the command names {{{sorted(unknown)[0]}}}, which is not a parameter of the space",
                field="command",
            )
    studies.make_pruner(spec)
    studies.make_sampler(spec, space)
    if spec.sampler == "grid":
        size = math.prod(len(v) for v in space.grid().values())
        spec = msgspec.structs.replace(spec, n_trials=min(spec.n_trials, size))
    return spec, space


class SweepService:
    def __init__(
        self, db: Database, home: Home, tracking: TrackingService, scheduler: SchedulerService
    ) -> None:
        self.db = db
        self.home = home
        self.tracking = tracking
        self.scheduler = scheduler
        self._lock = threading.RLock()
        self.driver = Driver(db, tracking, scheduler)
        self._failed_passes: dict[int, int] = {}
        migrations.apply(db)

    # -- writes ------------------------------------------------------------------

    def create(self, spec: SweepSpec, *, now: float | None = None) -> Sweep:
        """Record a sweep and ask its first trials at once, so a spec the scheduler refuses
        (more GPUs per trial than exist, say) fails here and leaves nothing behind."""
        spec, space = check_spec(spec)
        now = time.time() if now is None else now
        sweep_id = 0
        with self._lock:
            try:
                with self.db.atomic() as conn:
                    cur = conn.execute(
                        "INSERT INTO sweeps (name, state, spec, space, experiment, created_at)"
                        " VALUES ('', 'running', ?, ?, '', ?)",
                        (msgspec.json.encode(spec).decode(), json.dumps(space.to_json()), now),
                    )
                    sweep_id = int(cur.lastrowid or 0)
                    name = spec.name or f"sweep-{sweep_id}"
                    experiment = spec.experiment or name
                    check_key(experiment, "experiment")
                    conn.execute(
                        "UPDATE sweeps SET name = ?, experiment = ? WHERE id = ?",
                        (name, experiment, sweep_id),
                    )
                    self.driver.drive(sweep_id, now=now, strict=True)
            except BaseException:
                self.driver.forget(sweep_id)  # rolled back: the kept study must go too
                raise
        return self.get(sweep_id)

    def stop(self, sweep_id: int) -> Sweep:
        """Ask no more trials and cancel the live ones' jobs; the pass finishes the sweep."""
        with self.db.atomic() as conn:
            sweep = self.get(sweep_id)
            if sweep.state not in LIVE_SWEEP_STATES:
                return sweep
            conn.execute(
                "UPDATE sweeps SET state = 'stopping' WHERE id = ? AND state = 'running'", (sweep_id,)
            )
            for t in self.trials(sweep_id, states=("running",)):
                if t.job_id is not None:
                    # already finished or gone: the pass tells the trial all the same
                    with contextlib.suppress(Conflict, NotFound):
                        self.scheduler.cancel(t.job_id)
        return self.get(sweep_id)

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass: ask for trials where GPUs are free, tell finished ones, stop pruned ones."""
        now = time.time() if now is None else now
        changed: dict[str, list[int]] = {
            "sweep_trials_started": [],
            "sweep_jobs_pruned": [],
            "sweeps_done": [],
        }
        rows = self.db.query("SELECT id FROM sweeps WHERE state IN ('running', 'stopping') ORDER BY id")
        with self._lock:
            for r in rows:
                sweep_id = r["id"]
                try:
                    out = self.driver.drive(sweep_id, now=now)
                except Exception as exc:  # one bad sweep must not stop the others; the next pass retries
                    self._failed_passes[sweep_id] = n = self._failed_passes.get(sweep_id, 0) + 1
                    text = exc.message if isinstance(exc, MlboxError) else f"{type(exc).__name__}: {exc}"
                    log.warning("sweep %s: pass %d failed: %s", sweep_id, n, text, exc_info=n == 1)
                    if n >= MAX_FAILED_PASSES:
                        self.driver.abandon(sweep_id, f"failed {n} passes in a row: {text}", now=now)
                        self._failed_passes.pop(sweep_id, None)
                        changed["sweeps_done"].append(sweep_id)
                    continue
                self._failed_passes.pop(sweep_id, None)
                for key, ids in out.items():
                    changed.setdefault(key, []).extend(ids)
        return {k: v for k, v in changed.items() if v}

    # -- reads -------------------------------------------------------------------

    def get(self, sweep_id: int) -> Sweep:
        row = self.db.query_one("SELECT * FROM sweeps WHERE id = ?", (sweep_id,))
        if row is None:
            raise NotFound(f"no sweep with id {sweep_id}", field="sweep_id")
        return self._sweep(row)

    def list_sweeps(self, *, states: list[str] | None = None, limit: int = 100) -> list[Sweep]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self.db.query(
                f"SELECT * FROM sweeps WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?", (*states, limit)
            )
        else:
            rows = self.db.query("SELECT * FROM sweeps ORDER BY id DESC LIMIT ?", (limit,))
        return [self._sweep(r) for r in rows]

    def trials(self, sweep_id: int, *, states: tuple[str, ...] | None = None) -> list[Trial]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self.db.query(
                f"SELECT * FROM sweep_trials WHERE sweep_id = ? AND state IN ({marks}) ORDER BY number",
                (sweep_id, *states),
            )
        else:
            rows = self.db.query("SELECT * FROM sweep_trials WHERE sweep_id = ? ORDER BY number", (sweep_id,))
        return [trial_from_row(r) for r in rows]

    def detail(self, sweep_id: int) -> SweepDetail:
        return SweepDetail(sweep=self.get(sweep_id), trials=self.trials(sweep_id))

    def curves(self, sweep_id: int) -> dict[int, list[tuple[int, float | None]]]:
        """Every trial's reported intermediate values (step, value), for plots."""
        self.get(sweep_id)
        out: dict[int, list[tuple[int, float | None]]] = {}
        for r in self.db.query(
            "SELECT number, step, value FROM sweep_values WHERE sweep_id = ? ORDER BY number, step",
            (sweep_id,),
        ):
            out.setdefault(r["number"], []).append((r["step"], r["value"]))
        return out

    def best(self, sweep_id: int) -> Trial:
        """The complete trial with the best value (the first one on ties)."""
        sweep = self.get(sweep_id)
        order = "ASC" if sweep.spec.direction == "minimize" else "DESC"
        row = self.db.query_one(
            "SELECT * FROM sweep_trials WHERE sweep_id = ? AND state = 'complete' AND value IS NOT NULL"
            f" ORDER BY value {order}, number LIMIT 1",
            (sweep_id,),
        )
        if row is None:
            raise NotFound(f"sweep {sweep_id} has no complete trial yet", field="sweep_id")
        return trial_from_row(row)

    def register_best(self, sweep_id: int, model_name: str, *, artifact_path: str = "model") -> ModelVersion:
        """Register the best trial's logged model (its run's ``model`` artifact) as a new version."""
        from mlbox.registry.service import RegistryService
        from mlbox.store.artifacts import ArtifactStore

        best = self.best(sweep_id)
        if best.run_id is None:
            raise NotFound(f"trial {best.number} of sweep {sweep_id} has no run", field="sweep_id")
        registry = RegistryService(
            self.db,
            ArtifactStore(self.home.artifacts),
            self.tracking,
            cache_dir=self.home.root / "cache" / "models",
        )
        try:
            return registry.register(
                model_name,
                run_id=best.run_id,
                artifact_path=artifact_path,
                description=f"best trial {best.number} of sweep {sweep_id} ({best.value})",
            )
        except NotFound as exc:
            if exc.field in ("artifact_path", "path"):
                raise NotFound(
                    f"the best trial ({best.number}, run {best.run_id}) logged no {artifact_path!r} "
                    "artifact: log one with mlbox.log_model(model)",
                    field="artifact_path",
                ) from None
            raise

    def _sweep(self, row: sqlite3.Row) -> Sweep:
        spec = msgspec.json.decode(row["spec"], type=SweepSpec)
        counts = {
            r["state"]: r["n"]
            for r in self.db.query(
                "SELECT state, COUNT(*) AS n FROM sweep_trials WHERE sweep_id = ? GROUP BY state",
                (row["id"],),
            )
        }
        best: Trial | None = None
        if counts.get("complete"):
            order = "ASC" if spec.direction == "minimize" else "DESC"
            b = self.db.query_one(
                "SELECT * FROM sweep_trials WHERE sweep_id = ? AND state = 'complete' AND value IS NOT NULL"
                f" ORDER BY value {order}, number LIMIT 1",
                (row["id"],),
            )
            best = None if b is None else trial_from_row(b)
        return Sweep(
            id=row["id"],
            name=row["name"],
            state=row["state"],
            spec=spec,
            experiment=row["experiment"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            message=row["message"],
            counts=counts,
            best_trial=None if best is None else best.number,
            best_value=None if best is None else _value(best.value),
            best_params=None if best is None else best.params,
        )


def spec_from_mapping(data: dict[str, Any]) -> SweepSpec:
    """A `SweepSpec` from loose values (YAML settings, CLI flags); errors name the field."""
    try:
        return msgspec.convert(data, SweepSpec, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.split("`$.", 1)[1].split("`", 1)[0].split("[", 1)[0] if "`$." in text else None
        raise InvalidInput(f"bad sweep setting: {text}", field=field) from None
