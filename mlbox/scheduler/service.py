"""The scheduler service: the jobs table, GPU leases and the reconciliation pass.

The jobs table is the truth and the bus: submit, cancel and retry only write
rows; `reconcile_once` (the appliance's scheduler loop, every tick) looks at
the rows and at the operating system and makes them agree — it reaps ended
attempts, re-adopts attempts left running by a previous appliance, stops
what was cancelled, timed out or preempted, and starts what placement says.

Invariants, each held by the database rather than by memory:

* an attempt starts only after a conditional UPDATE moved its row from
  waiting to running (``attempt = attempt + 1`` in the same statement), so two
  appliances can never start the same attempt, and a retry happens only after
  the previous attempt's process group is known gone (and SIGKILLed to make sure);
* a GPU lease is a row whose primary key is the GPU: a GPU is never leased twice;
* every attempt has its own folder whose ``exit.json`` the shim writes, so an
  attempt's outcome is known even when the appliance that started it is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from mlbox.scheduler import holders, launch, processes
from mlbox.scheduler.config import SchedulerSettings
from mlbox.scheduler.executor import LocalExecutor
from mlbox.scheduler.inventory import discover, usage
from mlbox.scheduler.migrations import migrations
from mlbox.scheduler.outcomes import decide
from mlbox.scheduler.placement import Holding, Waiting, place
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
)
from mlbox.scheduler.validation import check_spec, why_impossible
from mlbox.store import Database, Home
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking.service import TrackingService

LOG_CHUNK = 1 << 20
RUN_STATUS = {"succeeded": "finished", "failed": "failed", "queued": "failed"}
"""Run status for a job's final state; anything stopped on purpose is ``killed``."""


class _LeaseTaken(Exception):
    """A GPU of the placement was leased meanwhile (another appliance): skip this start."""


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
        self._pass_lock = threading.Lock()
        self.executor = LocalExecutor(sys.executable)
        self._seen: set[tuple[int, int]] = set()
        self._inventory: list[Gpu] | None = None
        self._host = socket.gethostname()
        self._started = processes.create_time(os.getpid())
        migrations.apply(db)

    # -- paths -----------------------------------------------------------------

    def job_dir(self, job_id: int) -> Path:
        return self.home.root / "jobs" / str(job_id)

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

    def _schedulable(self) -> list[Gpu]:
        """The inventory less the GPUs held outside jobs (placement may neither use nor preempt them)."""
        held = holders.held_by_holders(self.db)
        return [g for g in self.inventory() if g.index not in held]

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

    def cpus_total(self) -> float:
        return self.settings.cpus if self.settings.cpus is not None else float(os.cpu_count() or 1)

    # -- writing ---------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """Queue a job (validated; `InvalidInput` names the field). It starts on a scheduler pass."""
        check_spec(spec, gpus_available=len(self.inventory()), cpus_available=self.cpus_total())
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
        now = time.time()
        with self.db.atomic() as conn:
            row = self._row(job_id)
            if row["state"] in WAITING_STATES:
                conn.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?, message = 'cancelled before it ran'"
                    " WHERE id = ?",
                    (now, job_id),
                )
            elif row["state"] == "running" and row["stop_reason"] != "cancel":
                conn.execute(
                    "UPDATE jobs SET stop_reason = 'cancel', stop_requested_at = ? WHERE id = ?",
                    (now, job_id),
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
        """One pass over the jobs table (the appliance's scheduler loop calls it every tick)."""
        with self._pass_lock:
            now = time.time() if now is None else now
            changed: dict[str, list[int]] = {}
            self.executor.reap()
            holders.reap(self.db)
            for row in self.db.query("SELECT * FROM jobs WHERE state = 'running'"):
                self._check_running(row, now, changed)
            self._place(now, changed)
            return changed

    def _check_running(self, row: sqlite3.Row, now: float, changed: dict[str, list[int]]) -> None:
        key = (row["id"], row["attempt"])
        folder = self.attempt_dir(*key)
        ours, code = self.executor.returncode(key)
        pid, started = row["pid"], row["pid_started"]
        if ours:
            alive = code is None
        elif pid is None:
            found = processes.find_by_marker(str(folder))
            if found is not None:
                pid, started = found
                with self.db.atomic() as conn:
                    conn.execute(
                        "UPDATE jobs SET pid = ?, pid_started = ? WHERE id = ? AND attempt = ? AND pid IS NULL",
                        (pid, started, *key),
                    )
                alive = True
            elif (
                processes.read_exit(folder) is None
                and now - (row["started_at"] or now) < self.settings.lost_after_s
            ):
                return  # being started (by another appliance, maybe): look again next pass
            else:
                alive = False
        else:
            alive = processes.is_alive(pid, started, marker=str(folder))
        if not alive:
            self._finish(row, pid, started, now, changed)
            return
        if not ours and key not in self._seen:
            self._seen.add(key)
            changed.setdefault("adopted", []).append(row["id"])
        reason, term_sent = row["stop_reason"], row["term_sent_at"]
        timeout = row["timeout_s"]
        if reason is None and timeout is not None and now - row["started_at"] > timeout:
            reason = "timeout"
            with self.db.atomic() as conn:
                conn.execute(
                    "UPDATE jobs SET stop_reason = 'timeout', stop_requested_at = ?"
                    " WHERE id = ? AND attempt = ? AND stop_reason IS NULL",
                    (now, *key),
                )
        if reason is None:
            return
        if term_sent is None:
            processes.signal_group(pid, started, signal.SIGTERM)
            with self.db.atomic() as conn:
                conn.execute("UPDATE jobs SET term_sent_at = ? WHERE id = ? AND attempt = ?", (now, *key))
            changed.setdefault("stopping", []).append(row["id"])
        elif now - term_sent >= self.settings.kill_grace_s:
            processes.kill_group(pid, started)

    def _finish(
        self,
        row: sqlite3.Row,
        pid: int | None,
        started: float | None,
        now: float,
        changed: dict[str, list[int]],
    ) -> None:
        """The attempt's process is gone: record how it ended and decide what comes next."""
        job_id, attempt = row["id"], row["attempt"]
        if pid is not None:  # nothing of this attempt may outlive it (a retry must not overlap it)
            processes.kill_group(pid, started)
        _, child_code = self.executor.returncode((job_id, attempt))
        self.executor.forget((job_id, attempt))
        record = processes.read_exit(self.attempt_dir(job_id, attempt))
        code = record.exit_code if record is not None else child_code
        o = decide(
            stop_reason=row["stop_reason"],
            exit_code=code,
            started=pid is not None,
            attempt=attempt,
            retries_used=row["retries_used"],
            max_retries=row["max_retries"],
            timeout_s=row["timeout_s"],
        )
        terminal = o.state in TERMINAL_STATES
        with self.db.atomic() as conn:
            cur = conn.execute(
                "UPDATE jobs SET state = ?, exit_code = ?, finished_at = ?, retries_used = ?, message = ?,"
                " queued_at = ?, stop_reason = NULL, stop_requested_at = NULL, term_sent_at = NULL"
                " WHERE id = ? AND state = 'running' AND attempt = ?",
                (
                    o.state,
                    code,
                    None if o.requeued else now,
                    o.retries_used,
                    o.message,
                    now if o.requeued else row["queued_at"],
                    job_id,
                    attempt,
                ),
            )
            if cur.rowcount != 1:
                return  # another appliance recorded it first
            conn.execute("DELETE FROM gpu_leases WHERE job_id = ?", (job_id,))
            conn.execute(
                "UPDATE job_attempts SET finished_at = ?, exit_code = ?, outcome = ? WHERE job_id = ? AND attempt = ?",
                (record.finished_at if record else now, code, o.outcome, job_id, attempt),
            )
        if row["run_id"] is not None:
            self.tracking.end_run(row["run_id"], RUN_STATUS.get(o.state, "killed"))
        kind = "finished" if terminal else ("preempted" if o.state == "preempted" else "requeued")
        changed.setdefault(kind, []).append(job_id)
        self.wake.set()

    def _place(self, now: float, changed: dict[str, list[int]]) -> None:
        held: dict[int, list[int]] = {}
        for lease in self.db.query("SELECT gpu, job_id FROM gpu_leases"):
            held.setdefault(lease[1], []).append(lease[0])
        running = [
            Holding(r[0], r[1], tuple(held.get(r[0], ())), r[2], bool(r[3]), r[4] or 0.0, r[5] is not None)
            for r in self.db.query(
                "SELECT id, priority, cpus, preemptible, started_at, stop_reason FROM jobs WHERE state = 'running'"
            )
        ]
        waiting = self._candidates(running, now)
        if not waiting:
            return
        decision = place(
            waiting,
            running,
            self._schedulable(),
            now=now,
            cpus_total=self.cpus_total(),
            starve_after_s=self.settings.starve_after_s,
        )
        for victim in decision.preempt:
            with self.db.atomic() as conn:
                conn.execute(
                    "UPDATE jobs SET stop_reason = 'preempt', stop_requested_at = ?"
                    " WHERE id = ? AND state = 'running' AND stop_reason IS NULL",
                    (now, victim),
                )
            changed.setdefault("preempting", []).append(victim)
        if decision.impossible:
            self._note_impossible(decision.impossible)
        for job_id, gpus in decision.starts:
            if self._start(job_id, gpus, now):
                changed.setdefault("started", []).append(job_id)

    def _candidates(self, running: list[Holding], now: float) -> list[Waiting]:
        """The waiting jobs placement could act on this pass, read as plain tuples.

        With a deep queue most jobs can do nothing: they need more GPUs than are
        free or freeing up, may preempt nobody, and are not the first to starve.
        Placement skips exactly those (`placement.place`), so SQLite filters them
        out here and a pass stays cheap with 10,000 queued jobs.
        """
        total = len(self._schedulable())
        free_or_soon = total - sum(len(r.gpus) for r in running if not r.stopping)
        victims = [r.priority for r in running if r.preemptible and not r.stopping]
        lowest = min(victims) if victims else None
        cols = "id, priority, created_at, queued_at, gpus, gpu_memory_mb, cpus"
        waiting_states = "state IN ('queued', 'preempted')"
        order = "ORDER BY priority DESC, created_at, id"
        cur = self.db.conn.execute(
            f"SELECT {cols} FROM jobs INDEXED BY jobs_queue WHERE {waiting_states}"
            " AND (gpus <= ? OR gpus > ? OR (? IS NOT NULL AND priority > ?))"
            f" UNION SELECT * FROM (SELECT {cols} FROM jobs INDEXED BY jobs_queue WHERE {waiting_states} AND queued_at <= ? {order} LIMIT 1)"
            f" {order}",
            (free_or_soon, total, lowest, lowest, now - self.settings.starve_after_s),
        )
        cur.row_factory = None
        return list(map(Waiting._make, cur.fetchall()))

    def _note_impossible(self, job_ids: list[int]) -> None:
        """Jobs that cannot fit stay queued (the inventory may grow back) and say why."""
        inventory, cpus_total = self.inventory(), self.cpus_total()
        with self.db.atomic() as conn:
            for job_id in job_ids:
                row = conn.execute(
                    "SELECT gpus, gpu_memory_mb, cpus FROM jobs WHERE id = ?", (job_id,)
                ).fetchone()
                why = why_impossible(row["gpus"], row["gpu_memory_mb"], row["cpus"], inventory, cpus_total)
                conn.execute(
                    "UPDATE jobs SET message = ? WHERE id = ? AND state IN ('queued', 'preempted')"
                    " AND message IS NOT ?",
                    (why, job_id, why),
                )

    def _claim(self, job_id: int, gpus: tuple[int, ...], now: float) -> sqlite3.Row | None:
        """Move the row to running as a new attempt and lease its GPUs, or nothing at all."""
        try:
            with self.db.atomic() as conn:
                cur = conn.execute(
                    "UPDATE jobs SET state = 'running', attempt = attempt + 1, pid = NULL, pid_started = NULL,"
                    " started_at = ?, finished_at = NULL, exit_code = NULL, stop_reason = NULL,"
                    " stop_requested_at = NULL, term_sent_at = NULL, gpu_list = ?, message = NULL"
                    " WHERE id = ? AND state IN ('queued', 'preempted')",
                    (now, msgspec.json.encode(list(gpus)).decode(), job_id),
                )
                if cur.rowcount != 1:
                    return None
                row: sqlite3.Row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                try:
                    conn.executemany(
                        "INSERT INTO gpu_leases (gpu, job_id, attempt, since) VALUES (?, ?, ?, ?)",
                        [(g, job_id, row["attempt"], now) for g in gpus],
                    )
                except sqlite3.IntegrityError:
                    raise _LeaseTaken from None
                conn.execute(
                    "INSERT INTO job_attempts (job_id, attempt, gpus, started_at, outcome)"
                    " VALUES (?, ?, ?, ?, 'running')",
                    (job_id, row["attempt"], msgspec.json.encode(list(gpus)).decode(), now),
                )
                spec = msgspec.json.decode(row["spec"], type=JobSpec)
                if row["run_id"] is None:
                    run = self.tracking.create_run(
                        spec.experiment,
                        spec.name,
                        tags={"mlbox.job_id": job_id},
                        host=self._host,
                        pid=os.getpid(),
                        pid_started=self._started,
                    )
                    conn.execute("UPDATE jobs SET run_id = ? WHERE id = ?", (run.id, job_id))
                else:
                    self.tracking.attach_run(
                        row["run_id"], host=self._host, pid=os.getpid(), pid_started=self._started
                    )
                return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        except _LeaseTaken:
            return None

    def _start(self, job_id: int, gpus: tuple[int, ...], now: float) -> bool:
        row = self._claim(job_id, gpus, now)
        if row is None:
            return False
        key = (job_id, row["attempt"])
        spec = msgspec.json.decode(row["spec"], type=JobSpec)
        checkpoints = self.checkpoint_dir(job_id)
        checkpoints.mkdir(parents=True, exist_ok=True)
        env = launch.job_env(
            os.environ,
            spec,
            home=self.home.root,
            job_id=job_id,
            attempt=key[1],
            run_id=row["run_id"],
            gpus=gpus,
            checkpoint_dir=checkpoints,
        )
        spawned = self.executor.spawn(
            key,
            spec,
            gpus=gpus,
            env=env,
            folder=self.attempt_dir(*key),
            log_path=self.log_path(job_id),
            workdir=Path(spec.workdir) if spec.workdir else self.job_dir(job_id),
            now=now,
        )
        if spawned is None:
            return True
        pid, pid_started = spawned
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE jobs SET pid = ?, pid_started = ? WHERE id = ? AND attempt = ?",
                (pid, pid_started, *key),
            )
            conn.execute("UPDATE job_attempts SET pid = ? WHERE job_id = ? AND attempt = ?", (pid, *key))
            self.tracking.attach_run(row["run_id"], host=self._host, pid=pid, pid_started=pid_started)
        return True

    def close(self, *, kill: bool = False) -> None:
        """Forget this process's children (they keep running; a later pass re-adopts them)."""
        if kill:
            self.executor.kill_all()
        self.executor.children.clear()
