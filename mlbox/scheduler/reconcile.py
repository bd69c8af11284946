"""The reconciliation pass: make the operating system agree with the jobs table.

`SchedulerService.reconcile_once` (the appliance's scheduler loop, every tick)
runs `Reconciler.reconcile`: it reaps ended attempts, re-adopts attempts left
running by a previous appliance, stops what was cancelled, timed out or
preempted, and starts what placement says. The service's other methods only
write rows; this is the one place that starts and stops processes.

Invariants it keeps, each held by the database rather than by memory:

* an attempt starts only after a conditional UPDATE moved its row from
  waiting to running (``attempt = attempt + 1`` in the same statement, `claim`),
  so two appliances can never start the same attempt, and a retry happens only
  after the previous attempt's process group is known gone (and SIGKILLed to make sure);
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
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from mlbox.scheduler import holders, job_tokens, launch, processes
from mlbox.scheduler.environment import env_prefix
from mlbox.scheduler.executor import LocalExecutor
from mlbox.scheduler.outcomes import decide, failure_reason
from mlbox.scheduler.placement import Holding, Waiting, place
from mlbox.scheduler.schemas import TERMINAL_STATES, Gpu, JobSpec
from mlbox.scheduler.validation import why_impossible
from mlbox.store import private

if TYPE_CHECKING:
    from mlbox.scheduler.ray_attempts import RayAttempts
    from mlbox.scheduler.service import SchedulerService

RUN_STATUS = {"succeeded": "finished", "failed": "failed", "queued": "failed", "pruned": "pruned"}
"""Run status for a job's final state; anything else stopped on purpose is ``killed``."""
LOG_TAIL = 8192
"""How much of the end of a job's log is read for why its attempt failed."""


class _LeaseTaken(Exception):
    """A GPU of the placement was leased meanwhile (another appliance): skip this start."""


class Reconciler:
    """The pass over one scheduler's jobs table, and the processes it started."""

    def __init__(self, service: SchedulerService) -> None:
        self.service = service
        self.db = service.db
        self.settings = service.settings
        self.tracking = service.tracking
        self.executor = LocalExecutor(sys.executable)
        self.ray: RayAttempts | None = None
        """Set when ``MLBOX_EXECUTOR`` names a Ray cluster: attempts become Ray jobs."""
        if self.settings.executor != "local":
            from mlbox.scheduler.ray_attempts import RayAttempts

            self.ray = RayAttempts(self, self.settings.executor)
        self._pass_lock = threading.Lock()
        self._seen: set[tuple[int, int]] = set()
        self._host = socket.gethostname()
        self._started = processes.create_time(os.getpid())

    def _schedulable(self) -> list[Gpu]:
        """The inventory less the GPUs held outside jobs (placement may neither use nor preempt them)."""
        held = holders.held_by_holders(self.db)
        return [g for g in self.service.inventory() if g.index not in held]

    def reconcile(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass over the jobs table (the appliance's scheduler loop calls it every tick)."""
        with self._pass_lock:
            now = time.time() if now is None else now
            changed: dict[str, list[int]] = {}
            self.executor.reap()
            holders.reap(self.db)
            if self.ray is not None:  # submissions first: following running jobs never delays them
                self.ray.place(now, changed)
            rows = self.db.query("SELECT * FROM jobs WHERE state = 'running'")
            if self.ray is not None:  # else a Ray job is left alone: this appliance is not Ray's
                self.ray.follow([r for r in rows if r["executor_job_id"] is not None], now, changed)
            for row in rows:
                if row["executor_job_id"] is None:
                    self._check_running(row, now, changed)
            if self.ray is None:
                self._place(now, changed)
            return changed

    def _check_running(self, row: sqlite3.Row, now: float, changed: dict[str, list[int]]) -> None:
        key = (row["id"], row["attempt"])
        folder = self.service.attempt_dir(*key)
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
        *,
        exit_code: int | None = None,
    ) -> None:
        """The attempt's process is gone: record how it ended and decide what comes next.

        ``exit_code``: what the executor says (a Ray job's), else the shim's ``exit.json``."""
        job_id, attempt = row["id"], row["attempt"]
        if pid is not None:  # nothing of this attempt may outlive it (a retry must not overlap it)
            processes.kill_group(pid, started)
        _, child_code = self.executor.returncode((job_id, attempt))
        self.executor.forget((job_id, attempt))
        record = processes.read_exit(self.service.attempt_dir(job_id, attempt))
        code = record.exit_code if record is not None else child_code
        if exit_code is not None:
            code = exit_code
        reason = None
        if row["stop_reason"] is None and code != 0:
            reason = failure_reason(self._log_tail(job_id, attempt))
        o = decide(
            reason=reason,
            stop_reason=row["stop_reason"],
            exit_code=code,
            started=pid is not None or exit_code is not None,
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
            job_tokens.revoke(conn, job_id)  # a job token ends with its attempt
            conn.execute(
                "UPDATE job_attempts SET finished_at = ?, exit_code = ?, outcome = ? WHERE job_id = ? AND attempt = ?",
                (record.finished_at if record else now, code, o.outcome, job_id, attempt),
            )
        if row["run_id"] is not None:
            self.tracking.end_run(row["run_id"], RUN_STATUS.get(o.state, "killed"))
        kind = "finished" if terminal else ("preempted" if o.state == "preempted" else "requeued")
        changed.setdefault(kind, []).append(job_id)
        self.service.wake.set()

    def _log_tail(self, job_id: int, attempt: int) -> str:
        """The end of the job's log, from this attempt's header on (earlier attempts said their own)."""
        try:
            with open(self.service.log_path(job_id), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - LOG_TAIL))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        header = f"--- mlbox: job {job_id} attempt {attempt} "
        at = text.rfind(header)
        return text[at:] if at >= 0 else text

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
            cpus_total=self.service.cpus_total(),
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
        inventory, cpus_total = self.service.inventory(), self.service.cpus_total()
        held_by = holders.holders_by_gpu(self.db)
        with self.db.atomic() as conn:
            for job_id in job_ids:
                row = conn.execute(
                    "SELECT gpus, gpu_memory_mb, cpus FROM jobs WHERE id = ?", (job_id,)
                ).fetchone()
                why = why_impossible(
                    row["gpus"], row["gpu_memory_mb"], row["cpus"], inventory, cpus_total, held_by
                )
                conn.execute(
                    "UPDATE jobs SET message = ? WHERE id = ? AND state IN ('queued', 'preempted')"
                    " AND message IS NOT ?",
                    (why, job_id, why),
                )

    def claim(
        self, job_id: int, gpus: tuple[int, ...], now: float, *, submission_prefix: str | None = None
    ) -> sqlite3.Row | None:
        """Move the row to running as a new attempt and lease its GPUs, or nothing at all.

        ``submission_prefix``: the attempt goes to Ray, under this prefix and its number, stored
        in the same statement, so a crash after the claim leaves the id to re-attach by."""
        try:
            with self.db.atomic() as conn:
                return self.claim_in(conn, job_id, gpus, now, submission_prefix=submission_prefix)
        except _LeaseTaken:
            return None

    def claim_in(
        self,
        conn: sqlite3.Connection,
        job_id: int,
        gpus: tuple[int, ...],
        now: float,
        *,
        submission_prefix: str | None = None,
    ) -> sqlite3.Row | None:
        """`claim` inside the caller's transaction (the Ray half mints the attempt's job token
        in the same one); `_LeaseTaken` when a GPU was leased meanwhile."""
        cur = conn.execute(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, pid = NULL, pid_started = NULL,"
            " started_at = ?, finished_at = NULL, exit_code = NULL, stop_reason = NULL,"
            " stop_requested_at = NULL, term_sent_at = NULL, gpu_list = ?, message = NULL,"
            " executor_job_id = ? || (attempt + 1), node = NULL"
            " WHERE id = ? AND state IN ('queued', 'preempted')",
            (now, msgspec.json.encode(list(gpus)).decode(), submission_prefix, job_id),
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
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row

    def _start(self, job_id: int, gpus: tuple[int, ...], now: float) -> bool:
        row = self.claim(job_id, gpus, now)
        if row is None:
            return False
        key = (job_id, row["attempt"])
        spec = msgspec.json.decode(row["spec"], type=JobSpec)
        checkpoints = self.service.checkpoint_dir(job_id)
        private.make_dirs(checkpoints)
        env = launch.job_env(
            os.environ,
            spec,
            home=self.service.home.root,
            job_id=job_id,
            attempt=key[1],
            run_id=row["run_id"],
            gpus=gpus,
            checkpoint_dir=checkpoints,
            secrets=self.service.secrets(),
        )
        python = launch.interpreter(spec, env, self.executor.python)
        shown = launch.shown_python(spec, env, python)
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE jobs SET python = ?, env_prefix = ? WHERE id = ? AND attempt = ?",
                (shown, env_prefix(env), *key),
            )
        spawned = self.executor.spawn(
            key,
            spec,
            gpus=gpus,
            env=env,
            folder=self.service.attempt_dir(*key),
            log_path=self.service.log_path(job_id),
            workdir=Path(spec.workdir) if spec.workdir else self.service.job_dir(job_id),
            now=now,
            python=python,
            shown=shown,
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
