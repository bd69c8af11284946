"""The scheduler service: the jobs table, GPU leases and the reconciliation pass.

The jobs table is the truth and the bus: submit, cancel and retry only write
rows; `reconcile_once` (the appliance's scheduler loop, every tick) looks at
the rows and at the operating system and makes them agree. That pass lives in
`mlbox.scheduler.reconcile`, with the invariants it keeps (one start per
attempt, one lease per GPU, an outcome per attempt folder); this module is
the API: reading jobs, their logs and the GPUs, and the writes that queue,
cancel and retry them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from mlbox.scheduler import holders, job_tokens
from mlbox.scheduler.config import SchedulerSettings
from mlbox.scheduler.environment import without_secrets
from mlbox.scheduler.inventory import discover, usage
from mlbox.scheduler.job_files import JobFiles
from mlbox.scheduler.migrations import migrations
from mlbox.scheduler.reconcile import Reconciler
from mlbox.scheduler.schemas import (
    JOB_STATES,
    TERMINAL_STATES,
    WAITING_STATES,
    Attempt,
    Gpu,
    GpuStatus,
    Job,
    JobSpec,
    Lease,
    Resources,
)
from mlbox.scheduler.validation import check_spec
from mlbox.store import Database, Home
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking.service import TrackingService

LOG_CHUNK = 1 << 20


class SchedulerService:
    def __init__(
        self, db: Database, home: Home, tracking: TrackingService, settings: SchedulerSettings
    ) -> None:
        self.db = db
        self.home = home
        self.tracking = tracking
        self.settings = settings
        self.wake = threading.Event()
        """Set by submit/cancel/retry: a loop waiting in `wait_for_work` runs its next pass at once."""
        self._inventory: list[Gpu] | None = None
        self.reconciler = Reconciler(self)
        self.files = JobFiles(self)
        """What a job on a Ray node uploads: its run's artifacts and its checkpoints."""
        migrations.apply(db)

    # -- paths -----------------------------------------------------------------

    @property
    def jobs_folder(self) -> Path:
        """Every job's folder (attempts, logs, checkpoints) is below this one."""
        return self.home.root / "jobs"

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_folder / str(job_id)

    def checkpoint_dir(self, job_id: int) -> Path:
        """The same for every attempt of a job, so a retried job resumes from it."""
        return self.job_dir(job_id) / "checkpoints"

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return self.job_dir(job_id) / "attempts" / str(attempt)

    def log_path(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "output.log"

    # -- reading ---------------------------------------------------------------

    def _job(self, row: sqlite3.Row) -> Job:
        return Job(
            id=row["id"],
            spec=msgspec.json.decode(row["spec"], type=JobSpec),
            state=row["state"],
            attempt=row["attempt"],
            gpus=msgspec.json.decode(row["gpu_list"], type=list[int]),
            pid=row["pid"],
            run_id=row["run_id"],
            exit_code=row["exit_code"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            message=row["message"],
            log_path=str(self.log_path(row["id"])),
            retries_used=row["retries_used"],
            checkpoint_dir=str(self.checkpoint_dir(row["id"])),
            stop_reason=row["stop_reason"],
            python=row["python"],
            env_prefix=row["env_prefix"],
            executor_job_id=row["executor_job_id"],
            node=row["node"],
        )

    def _row(self, job_id: int) -> sqlite3.Row:
        row = self.db.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(f"no job {job_id}", field="job_id")
        return row

    def get(self, job_id: int) -> Job:
        return self._job(self._row(job_id))

    def list_jobs(
        self, states: Sequence[str] | None = None, owner: str | None = None, limit: int = 200
    ) -> list[Job]:
        """Newest first."""
        where, params = [], []  # type: ignore[var-annotated]
        if states:
            bad = [s for s in states if s not in JOB_STATES]
            if bad:
                raise InvalidInput(
                    f"state must be one of {', '.join(JOB_STATES)}; got {bad[0]!r}", field="state"
                )
            where.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidInput("limit must be from 1 to 100000", field="limit")
        sql = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self.db.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [self._job(r) for r in rows]

    def attempts(self, job_id: int) -> list[Attempt]:
        self._row(job_id)
        rows = self.db.query("SELECT * FROM job_attempts WHERE job_id = ? ORDER BY attempt", (job_id,))
        return [
            Attempt(
                job_id=r["job_id"],
                attempt=r["attempt"],
                pid=r["pid"],
                gpus=msgspec.json.decode(r["gpus"], type=list[int]),
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                exit_code=r["exit_code"],
                outcome=r["outcome"],
            )
            for r in rows
        ]

    def read_log(self, job_id: int, offset: int = 0) -> tuple[bytes, int]:
        """Bytes of the job's log from ``offset`` (at most 1 MiB) and the offset to read from next."""
        self._row(job_id)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset must be a whole number >= 0", field="offset")
        try:
            with open(self.log_path(job_id), "rb") as f:
                if offset >= os.fstat(f.fileno()).st_size:  # nothing there yet; a seek that far is EINVAL
                    return b"", offset
                f.seek(offset)
                data = f.read(LOG_CHUNK)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    def wait(self, job_id: int, timeout_s: float | None = None) -> Job:
        """Poll until the job is terminal; `TimeoutError` after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pause = 0.02
        while True:
            job = self.get(job_id)
            if job.terminal:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout_s:g} s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    # -- GPUs ------------------------------------------------------------------

    def inventory(self) -> list[Gpu]:
        if self._inventory is None:
            self._inventory = discover(self.settings.gpus)
        return self._inventory

    def leases(self) -> list[Lease]:
        """Jobs' leases, and holders' (a served model: job_id None, owner and name the holder)."""
        rows = self.db.query(
            "SELECT l.gpu, l.job_id, l.since, COALESCE(j.owner, l.holder) AS owner,"
            " COALESCE(j.name, l.holder) AS name FROM gpu_leases l"
            " LEFT JOIN jobs j ON j.id = l.job_id ORDER BY l.gpu"
        )
        return [Lease(r["gpu"], r["job_id"], r["owner"], r["name"], r["since"]) for r in rows]

    def lease_gpus(self, holder: str, count: int = 1) -> list[int]:
        """Lease free GPUs to a holder that is not a job (``serving:churn/3``); Conflict when none."""
        leased = holders.lease(self.db, [g.index for g in self.inventory()], holder, count)
        self.wake.set()
        return leased

    def release_gpus(self, holder: str) -> None:
        if holders.release(self.db, holder):
            self.wake.set()

    def gpu_board(self) -> list[GpuStatus]:
        gpus = self.inventory()
        leases = {lease.gpu: lease for lease in self.leases()}
        used = usage(gpus)
        return [
            GpuStatus(
                gpu=g,
                lease=leases.get(g.index),
                utilization=used.get(g.index, (None, None))[0],
                memory_used_mb=used.get(g.index, (None, None))[1],
            )
            for g in gpus
        ]

    def cluster(self) -> dict[str, dict[str, float]] | None:
        """The Ray cluster's resources (``total`` and ``available``, by name) when the executor is
        Ray (empty when it does not answer); None with the local executor (the GPU board applies)."""
        ray = self.reconciler.ray
        return None if ray is None else ray.ray.cluster()

    def room(self, resources: Resources) -> int | None:
        """How many more jobs asking ``resources`` could start now on a Ray cluster (its free
        resources; a sweep asks no more trials than that); None with the local executor, whose
        placement queues what does not fit."""
        ray = self.reconciler.ray
        return None if ray is None else ray.room(resources, time.time())

    def job_grant(self, token: str) -> job_tokens.Grant | None:
        """What a job token allows while its attempt runs (the API's guard asks), else None."""
        return job_tokens.grant(self.db, token)

    def cpus_total(self) -> float:
        return self.settings.cpus if self.settings.cpus is not None else float(os.cpu_count() or 1)

    # -- writing ---------------------------------------------------------------

    def secrets(self) -> list[str]:
        """What must never reach a job nor be stored in its spec: the API token, when one exists
        (read, never created: a home without an appliance has none yet)."""
        try:
            token = self.home.token_path.read_text().strip()
        except OSError:
            return []
        return [token] if token else []

    def submit(self, spec: JobSpec) -> Job:
        """Queue a job (validated; `InvalidInput` names the field). It starts on a scheduler pass.

        Variables holding the API token are dropped from ``env`` before it is stored."""
        if self.reconciler.ray is not None:  # placement is the cluster's: Ray queues what does not fit yet
            check_spec(spec)
        else:
            check_spec(spec, gpus_available=len(self.inventory()), cpus_available=self.cpus_total())
        kept = without_secrets(spec.env, self.secrets())
        if kept != spec.env:
            spec = msgspec.structs.replace(spec, env=kept)
        now = time.time()
        r = spec.resources
        with self.db.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (name, owner, spec, state, priority, gpus, gpu_memory_mb, cpus, preemptible,"
                " max_retries, timeout_s, created_at, queued_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    spec.owner,
                    msgspec.json.encode(spec).decode(),
                    spec.priority,
                    r.gpus,
                    r.gpu_memory_mb,
                    float(r.cpus),
                    int(spec.preemptible),
                    spec.max_retries,
                    spec.timeout_s,
                    now,
                    now,
                ),
            )
            job_id = int(cur.lastrowid or 0)
        self.wake.set()
        return self.get(job_id)

    def cancel(self, job_id: int) -> Job:
        """A waiting job is cancelled at once; a running one is stopped by the next pass (TERM, then KILL)."""
        return self._stop(job_id, "cancelled", reason="cancel", run_status=None, overrides=True)

    def prune(self, job_id: int) -> Job:
        """Stop a sweep trial its pruner gave up on: like `cancel`, but the job ends ``pruned``
        (and its run too), so every screen calls it by the one word. A stop already asked for
        (a cancel, a timeout) keeps its reason."""
        return self._stop(job_id, "pruned", reason="prune", run_status="pruned", overrides=False)

    def _stop(self, job_id: int, state: str, *, reason: str, run_status: str | None, overrides: bool) -> Job:
        """End a waiting job in ``state`` now, or ask the next pass to stop a running one for
        ``reason``; ``overrides``: replace a stop already asked for with another reason."""
        now = time.time()
        with self.db.atomic() as conn:
            row = self._row(job_id)
            if row["state"] in WAITING_STATES:
                conn.execute(
                    "UPDATE jobs SET state = ?, finished_at = ?, message = ? WHERE id = ?",
                    (state, now, f"{state} before it ran", job_id),
                )
                if run_status is not None and row["run_id"] is not None:
                    self.tracking.end_run(row["run_id"], run_status, now=now)
            elif row["state"] == "running" and (
                row["stop_reason"] is None or (overrides and row["stop_reason"] != reason)
            ):
                conn.execute(
                    "UPDATE jobs SET stop_reason = ?, stop_requested_at = ? WHERE id = ?",
                    (reason, now, job_id),
                )
        self.wake.set()
        return self.get(job_id)

    def retry(self, job_id: int) -> Job:
        """Queue a finished job again; its next start is a new attempt (same run, same checkpoints)."""
        with self.db.atomic() as conn:
            row = self._row(job_id)
            if row["state"] not in TERMINAL_STATES:
                raise Conflict(
                    f"job {job_id} is {row['state']}; only a finished job can be retried", field="job_id"
                )
            conn.execute(
                "UPDATE jobs SET state = 'queued', queued_at = ?, finished_at = NULL, retries_used = 0,"
                " message = 'retried by hand' WHERE id = ?",
                (time.time(), job_id),
            )
        self.wake.set()
        return self.get(job_id)

    # -- the reconciliation pass -------------------------------------------------

    def wait_for_work(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, less when something was submitted, cancelled or retried."""
        self.wake.wait(timeout_s)
        self.wake.clear()

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass over the jobs table (the appliance's scheduler loop calls it every tick);
        the changes it made, by kind (`reconcile.Reconciler.reconcile`)."""
        return self.reconciler.reconcile(now)

    def close(self, *, kill: bool = False) -> None:
        """Forget this process's children (they keep running; a later pass re-adopts them)."""
        executor = self.reconciler.executor
        if kill:
            executor.kill_all()
        executor.children.clear()
