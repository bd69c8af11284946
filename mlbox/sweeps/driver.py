"""One pass over one sweep: follow live trials, prune, tell, ask — in one transaction.

The pass runs under ``BEGIN IMMEDIATE``, so two processes driving the same
sweep (the appliance, and a ``mlbox sweep`` in the foreground) take turns; the
in-memory Optuna study is kept between passes and rebuilt from the tables
whenever the sweep's ``revision`` is not the one it was built at. A pass that
raises rolls back and drops the kept study, so memory never runs ahead of the
tables.

On a Ray cluster (``MLBOX_EXECUTOR=ray://``) trials are Ray jobs like any job, pruned
the same way (the pass asks the scheduler to stop them, which stops the Ray job), and
a pass asks no more trials than the cluster's free resources hold now
(`SchedulerService.room`), so Optuna is not asked for trials that would only wait in
Ray's queue without the results of those before them.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from mlbox.scheduler.outcomes import reason_of
from mlbox.scheduler.schemas import Job, JobSpec, Resources
from mlbox.scheduler.service import SchedulerService
from mlbox.store import Database
from mlbox.store.errors import Conflict, InvalidInput, MlboxError, NotFound
from mlbox.sweeps import study as studies
from mlbox.sweeps.params import substitute, trial_env
from mlbox.sweeps.schemas import LIVE_SWEEP_STATES, SweepSpec
from mlbox.sweeps.space import Space
from mlbox.tracking.service import TrackingService

if TYPE_CHECKING:
    import optuna


@dataclass
class _Kept:
    revision: int
    study: optuna.Study
    space: Space


@dataclass
class _Pass:
    """What one pass is working on (the sweep's row, decoded)."""

    conn: sqlite3.Connection
    sweep_id: int
    name: str
    state: str
    spec: SweepSpec
    experiment: str
    created_at: float
    kept: _Kept
    now: float
    out: dict[str, list[int]]
    dirty: bool = False


JOB_FIELDS = {
    "resources.gpus": "gpus_per_trial",
    "resources.cpus": "cpus_per_trial",
    "timeout_s": "trial_timeout_s",
    "name": "name",
}
"""A field the scheduler refuses in a trial's job, named as the sweep spec names it."""


def trial_failure(job: Job) -> str:
    """Why a trial's job failed, in the job's own words (its message carries the reason read
    from its log: ``cannot start 'x': no such file``, the exception of a traceback)."""
    code = "" if job.exit_code is None else f" (exit code {job.exit_code})"
    reason = reason_of(job.message)
    return f"job failed{code}" + (f": {reason}" if reason else "")


def _stored(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


class Driver:
    def __init__(self, db: Database, tracking: TrackingService, scheduler: SchedulerService) -> None:
        self.db = db
        self.tracking = tracking
        self.scheduler = scheduler
        self._kept: dict[int, _Kept] = {}

    def forget(self, sweep_id: int) -> None:
        self._kept.pop(sweep_id, None)

    def drive(self, sweep_id: int, *, now: float, strict: bool = False) -> dict[str, list[int]]:
        """One pass; ``strict`` (at creation) lets a refused first submit raise instead of failing the sweep."""
        room = self._room(sweep_id)  # asked before the transaction: it may be a request to the cluster
        try:
            with self.db.atomic() as conn:
                return self._drive(conn, sweep_id, now, strict, room)
        except BaseException:
            self.forget(sweep_id)
            raise

    # -- the pass ------------------------------------------------------------------

    def _room(self, sweep_id: int) -> int | None:
        """How many more trials the executor can start now: on a Ray cluster, what its free
        resources hold of one trial's request; None with the local executor (its placement queues)."""
        if self.scheduler.reconciler.ray is None:
            return None
        row = self.db.query_one("SELECT spec FROM sweeps WHERE id = ?", (sweep_id,))
        if row is None:
            return None
        spec = msgspec.json.decode(row["spec"], type=SweepSpec)
        return self.scheduler.room(Resources(gpus=spec.gpus_per_trial, cpus=spec.cpus_per_trial))

    def _drive(
        self, conn: sqlite3.Connection, sweep_id: int, now: float, strict: bool, room: int | None = None
    ) -> dict[str, list[int]]:
        row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None or row["state"] not in LIVE_SWEEP_STATES:
            self.forget(sweep_id)
            return {}
        spec = msgspec.json.decode(row["spec"], type=SweepSpec)
        kept = self._kept.get(sweep_id)
        if kept is None or kept.revision != row["revision"]:
            space = Space.from_json(json.loads(row["space"]))
            study = studies.rebuild(f"sweep-{sweep_id}", spec, space, self._records(conn, sweep_id))
            kept = _Kept(row["revision"], study, space)
        self._kept[sweep_id] = kept
        p = _Pass(
            conn,
            sweep_id,
            row["name"],
            row["state"],
            spec,
            row["experiment"],
            row["created_at"],
            kept,
            now,
            {"sweep_trials_started": [], "sweep_jobs_pruned": [], "sweeps_done": []},
        )
        live = conn.execute(
            "SELECT number, job_id, run_id, last_step FROM sweep_trials"
            " WHERE sweep_id = ? AND state = 'running' ORDER BY number",
            (sweep_id,),
        ).fetchall()
        still = sum(0 if self._follow(p, t) else 1 for t in live)
        total = conn.execute("SELECT COUNT(*) FROM sweep_trials WHERE sweep_id = ?", (sweep_id,)).fetchone()[
            0
        ]
        timed_out = spec.timeout_s is not None and now - p.created_at >= spec.timeout_s
        while p.state == "running" and still < spec.parallel and total < spec.n_trials and not timed_out:
            if room is not None and room <= 0:
                break  # a Ray cluster holds no more trials now: ask when one ends or it grows
            if not self._ask(p, total, strict):
                break
            still += 1
            total += 1
            room = None if room is None else room - 1
        if p.state in LIVE_SWEEP_STATES and still == 0:
            if p.state == "stopping":
                self._end(p, "stopped", None)
            elif total >= spec.n_trials or timed_out:
                self._end(p, "finished", self._summary(p, timed_out))
        if p.dirty:
            conn.execute("UPDATE sweeps SET revision = revision + 1 WHERE id = ?", (sweep_id,))
            kept.revision += 1
        return p.out

    def _records(self, conn: sqlite3.Connection, sweep_id: int) -> list[studies.TrialRecord]:
        values: dict[int, dict[int, float]] = {}
        for v in conn.execute("SELECT number, step, value FROM sweep_values WHERE sweep_id = ?", (sweep_id,)):
            values.setdefault(v["number"], {})[v["step"]] = math.nan if v["value"] is None else v["value"]
        return [
            studies.TrialRecord(
                number=r["number"],
                state=r["state"],
                params=json.loads(r["params"]),
                distributions=json.loads(r["distributions"]),
                system_attrs=json.loads(r["system_attrs"]),
                value=r["value"],
                values=values.get(r["number"], {}),
            )
            for r in conn.execute(
                "SELECT * FROM sweep_trials WHERE sweep_id = ? ORDER BY number", (sweep_id,)
            )
        ]

    def _follow(self, p: _Pass, t: sqlite3.Row) -> bool:
        """Bring one live trial up to date; True when it is no longer live."""
        number = t["number"]
        try:
            job = self.scheduler.get(t["job_id"])
        except NotFound:
            self._finish(p, number, "failed", None, f"job {t['job_id']} is gone")
            return True
        run_id = t["run_id"]
        if run_id is None and job.run_id is not None:
            run_id = job.run_id
            p.conn.execute(
                "UPDATE sweep_trials SET run_id = ? WHERE sweep_id = ? AND number = ?",
                (run_id, p.sweep_id, number),
            )
            self._label_run(p, number, run_id)
        points = self._new_points(run_id, p.spec.metric, t["last_step"])
        stop = False
        if points:
            done, stop = studies.report(
                p.kept.study, number, points, may_prune=not job.terminal and p.state == "running"
            )
            self._record_values(p, number, done)
        if job.terminal:
            self._finish_from_job(p, number, job, run_id)
            return True
        if stop and p.state == "running":
            with contextlib.suppress(Conflict):  # it ended meanwhile: pruned all the same
                self.scheduler.prune(job.id)
            value = studies.tell(p.kept.study, number, "pruned")
            step = p.kept.study.trials[number].last_step
            self._finish(p, number, "pruned", value, f"pruned at step {step}")
            p.out["sweep_jobs_pruned"].append(job.id)
            return True
        return False

    def _new_points(self, run_id: int | None, metric: str, last_step: int | None) -> list[tuple[int, float]]:
        """The metric's points past ``last_step``, one per step (the last logged wins)."""
        if run_id is None:
            return []
        latest = next((m for m in self.tracking.metric_keys(run_id) if m.key == metric), None)
        if latest is None or (last_step is not None and latest.step <= last_step):
            return []
        series = self.tracking.metric_series(run_id, metric)
        by_step: dict[int, float] = {}
        for step, value in zip(series.steps, series.values, strict=True):
            if last_step is None or step > last_step:
                by_step[step] = value
        return sorted(by_step.items())

    def _record_values(self, p: _Pass, number: int, done: list[tuple[int, float]]) -> None:
        if not done:
            return
        p.conn.executemany(
            "INSERT OR REPLACE INTO sweep_values (sweep_id, number, step, value) VALUES (?, ?, ?, ?)",
            [(p.sweep_id, number, s, _stored(v)) for s, v in done],
        )
        p.conn.execute(
            "UPDATE sweep_trials SET last_step = ?, system_attrs = ? WHERE sweep_id = ? AND number = ?",
            (
                done[-1][0],
                json.dumps(studies.system_attrs(p.kept.study, number)),
                p.sweep_id,
                number,
            ),
        )
        p.dirty = True

    def _finish_from_job(self, p: _Pass, number: int, job: Job, run_id: int | None) -> None:
        if job.state != "succeeded":
            if job.state == "cancelled":
                why = "stopped with the sweep" if p.state == "stopping" else "job cancelled"
            elif job.state == "timed_out":
                why = "job timed out"
            else:
                why = trial_failure(job)
            studies.tell(p.kept.study, number, "failed")
            self._finish(p, number, "failed", None, why)
            return
        values: list[float] = []
        if run_id is not None:
            try:
                values = list(self.tracking.metric_series(run_id, p.spec.metric).values)
            except NotFound:
                values = []
        value = studies.objective_value(values, p.spec.objective, p.spec.direction)
        if value is None or not math.isfinite(value):
            studies.tell(p.kept.study, number, "failed")
            why = f"logged no metric {p.spec.metric!r}" if value is None else f"{p.spec.metric} is {value}"
            self._finish(p, number, "failed", None, why)
            return
        kept = studies.tell(p.kept.study, number, "complete", value)
        self._finish(p, number, "complete", kept, None)

    def _finish(self, p: _Pass, number: int, state: str, value: float | None, message: str | None) -> None:
        p.conn.execute(
            "UPDATE sweep_trials SET state = ?, value = ?, finished_at = ?, message = ?, system_attrs = ?"
            " WHERE sweep_id = ? AND number = ?",
            (
                state,
                _stored(value),
                p.now,
                message,
                json.dumps(studies.system_attrs(p.kept.study, number)),
                p.sweep_id,
                number,
            ),
        )
        p.dirty = True

    def _ask(self, p: _Pass, number: int, strict: bool) -> bool:
        """Ask for trial ``number`` and submit its job; False when the sweep cannot go on."""
        try:
            asked = studies.ask(p.kept.study, p.kept.space)
            if asked.number != number:
                raise RuntimeError(f"study asked trial {asked.number}, the tables expect {number}")
            job = self.scheduler.submit(self._job_spec(p, asked.number, asked.params))
        except MlboxError as exc:
            if strict:
                field = JOB_FIELDS.get(exc.field or "", exc.field)
                raise type(exc)(exc.message, field=field) from None
            self._fail(p, f"trial {number}: {exc.message}")
            return False
        except Exception as exc:
            if strict:
                raise InvalidInput(
                    f"the search space failed: {type(exc).__name__}: {exc}", field="space"
                ) from None
            self._fail(p, f"trial {number}: {type(exc).__name__}: {exc}")
            return False
        p.conn.execute(
            "INSERT INTO sweep_trials (sweep_id, number, state, params, distributions, system_attrs,"
            " job_id, run_id, started_at) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
            (
                p.sweep_id,
                asked.number,
                json.dumps(asked.params),
                json.dumps(asked.distributions),
                json.dumps(asked.system_attrs),
                job.id,
                job.run_id,
                p.now,
            ),
        )
        if job.run_id is not None:
            self._label_run(p, asked.number, job.run_id, asked.params)
        p.out["sweep_trials_started"].append(job.id)
        p.dirty = True
        return True

    def _job_spec(self, p: _Pass, number: int, params: dict[str, Any]) -> JobSpec:
        s = p.spec
        return JobSpec(
            name=f"{p.name}-t{number}",
            command=substitute(s.command, params),
            resources=Resources(gpus=s.gpus_per_trial, cpus=s.cpus_per_trial),
            timeout_s=s.trial_timeout_s,
            env={**s.env, **trial_env(p.sweep_id, number, params)},
            env_policy=s.env_policy,
            workdir=s.workdir,
            experiment=p.experiment,
            owner=f"sweep:{p.sweep_id}",
        )

    def _label_run(self, p: _Pass, number: int, run_id: int, params: dict[str, Any] | None = None) -> None:
        """The trial's params and sweep tags on its run, so runs compare like any others."""
        if params is None:
            row = p.conn.execute(
                "SELECT params FROM sweep_trials WHERE sweep_id = ? AND number = ?", (p.sweep_id, number)
            ).fetchone()
            params = json.loads(row["params"])
        try:
            self.tracking.set_tags(run_id, {"mlbox.sweep": p.sweep_id, "mlbox.trial": number})
            self.tracking.log_params(run_id, params)
        except (Conflict, NotFound, InvalidInput):
            pass  # the script logged its own params first (another spelling), or the run is gone

    def _fail(self, p: _Pass, message: str) -> None:
        """The sweep cannot go on (its space raised, the scheduler refused a trial): stop it all."""
        self._fail_rows(p.conn, p.sweep_id, p.now, message)
        p.state = "failed"
        p.out["sweeps_done"].append(p.sweep_id)
        p.dirty = True
        self.forget(p.sweep_id)

    def abandon(self, sweep_id: int, message: str, *, now: float) -> None:
        """Fail a sweep whose passes keep raising (a corrupt row, a bug), so it neither wedges
        the loop nor keeps trials holding GPUs for nothing."""
        self.forget(sweep_id)
        with self.db.atomic() as conn:
            self._fail_rows(conn, sweep_id, now, message)

    def _fail_rows(self, conn: sqlite3.Connection, sweep_id: int, now: float, message: str) -> None:
        for t in conn.execute(
            "SELECT number, job_id FROM sweep_trials WHERE sweep_id = ? AND state = 'running'", (sweep_id,)
        ).fetchall():
            with contextlib.suppress(Conflict, NotFound):
                self.scheduler.cancel(t["job_id"])
            conn.execute(
                "UPDATE sweep_trials SET state = 'failed', finished_at = ?, message = ?"
                " WHERE sweep_id = ? AND number = ?",
                (now, "sweep failed", sweep_id, t["number"]),
            )
        conn.execute(
            "UPDATE sweeps SET state = 'failed', finished_at = ?, message = ? WHERE id = ?",
            (now, message, sweep_id),
        )

    def _end(self, p: _Pass, state: str, message: str | None) -> None:
        p.conn.execute(
            "UPDATE sweeps SET state = ?, finished_at = ?, message = COALESCE(?, message) WHERE id = ?",
            (state, p.now, message, p.sweep_id),
        )
        p.state = state
        p.out["sweeps_done"].append(p.sweep_id)
        p.dirty = True

    def _summary(self, p: _Pass, timed_out: bool) -> str | None:
        counts = dict(
            p.conn.execute(
                "SELECT state, COUNT(*) FROM sweep_trials WHERE sweep_id = ? GROUP BY state", (p.sweep_id,)
            ).fetchall()
        )
        if timed_out:
            return f"timeout after {p.spec.timeout_s:g} s"
        if counts and not counts.get("complete"):
            if set(counts) == {"failed"}:
                row = p.conn.execute(
                    "SELECT number, message FROM sweep_trials WHERE sweep_id = ? AND state = 'failed'"
                    " ORDER BY number DESC LIMIT 1",
                    (p.sweep_id,),
                ).fetchone()
                return f"every trial failed; trial {row['number']}: {row['message'] or 'failed'}"
            return "no trial completed"
        return None
