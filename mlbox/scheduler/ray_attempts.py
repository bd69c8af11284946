"""The reconciliation pass's Ray half: submit claimed attempts, follow them, stop them.

The jobs table stays the truth. An attempt is claimed exactly as a local one
(`Reconciler.claim`, with its Ray submission id stored in the same UPDATE) and
only then submitted; a pass that finds a running row re-attaches by that id,
so an appliance killed with ``kill -9`` picks its Ray jobs up again. Should
the crash fall between the claim and the submission, Ray has no job of that id
and the pass submits it then; Ray refuses a second submission of one id, so an
attempt never runs twice. Ray's job logs are appended to the job's log file,
so ``mlbox jobs logs -f``, the API and the TUI read them as any job's.

A Ray job gets no path into the home: it gets the appliance's address and a token
of its own (``MLBOX_URL``, ``MLBOX_JOB_TOKEN``; `mlbox.scheduler.job_tokens`),
minted in the claim's transaction and revoked when the attempt ends, and logs
through the HTTP API with it (`mlbox.remote`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING

import msgspec

from mlbox.scheduler import job_tokens, launch, ray_spec
from mlbox.scheduler.ray_executor import RayExecutor, RayUnavailable
from mlbox.scheduler.schemas import JobSpec, Resources
from mlbox.store import private

if TYPE_CHECKING:
    from mlbox.scheduler.reconcile import Reconciler

LOG_EVERY_S = 0.5
"""How often a running Ray job's logs are copied into its log file."""
SUBMITS_PER_PASS = 64
"""Waiting jobs submitted per pass (Ray queues those the cluster cannot fit yet)."""
OFFSET_FILE = "ray_log_offset"
FREE_EVERY_S = 1.0
"""How often the cluster's free resources are read for `RayAttempts.room` (one HTTP request)."""
POLL_EVERY_S = 0.5
"""How often one running Ray job's status is asked (each ask is an HTTP request to the dashboard);
at once when a stop is asked for or its timeout is due."""
ASKS_PER_PASS = 16
"""Running Ray jobs asked about per pass, those asked longest ago first (stops and timeouts
always): a pass stays short with hundreds of jobs on the cluster, so the next submission waits
for no one (the pass runs again at once when something is submitted)."""


class RayAttempts:
    def __init__(self, reconciler: Reconciler, executor: str) -> None:
        self.reconciler = reconciler
        self.service = reconciler.service
        self.db = reconciler.db
        self.ray = RayExecutor(executor)
        self._synced: dict[str, float] = {}
        self._submitted: set[str] = set()
        self._polled: dict[str, float] = {}
        self._cluster: dict[str, dict[str, float]] = {}
        self._free_at = float("-inf")

    # -- starting --------------------------------------------------------------

    def place(self, now: float, changed: dict[str, list[int]]) -> None:
        rows = self.db.query(
            "SELECT id FROM jobs WHERE state IN ('queued', 'preempted')"
            " ORDER BY priority DESC, created_at, id LIMIT ?",
            (SUBMITS_PER_PASS,),
        )
        for (job_id,) in rows:
            prefix = ray_spec.submission_prefix(self.service.home.root, job_id)
            with self.db.atomic() as conn:
                row = self.reconciler.claim_in(conn, job_id, (), now, submission_prefix=prefix)
                if row is None:
                    continue
                token = job_tokens.mint(conn, job_id, row["attempt"], row["run_id"], now)
            self._header(row, now)
            with contextlib.suppress(RayUnavailable):  # else the next pass finds no such job: submits it
                self._submit(row, token)
            changed.setdefault("started", []).append(job_id)

    def _header(self, row: sqlite3.Row, now: float) -> None:
        job_id, attempt = row["id"], row["attempt"]
        private.make_dirs(self.service.attempt_dir(job_id, attempt))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        header = (
            f"--- mlbox: job {job_id} attempt {attempt} on Ray {self.ray.address}"
            f" as {row['executor_job_id']} at {stamp} ---\n"
        )
        with os.fdopen(
            private.create(self.service.log_path(job_id), exclusive=False, append=True), "ab"
        ) as f:
            f.write(header.encode())

    def api_url(self) -> str | None:
        """Where the job reaches the appliance's API: ``MLBOX_JOB_API_URL``, else the address the
        appliance announced in the home (None when none serves it: the job then cannot log)."""
        if self.service.settings.api_url:
            return self.service.settings.api_url
        try:
            url = json.loads(self.service.home.appliance_path.read_text()).get("url")
        except (OSError, ValueError, AttributeError):
            return None
        return str(url) if url else None

    def _submit(self, row: sqlite3.Row, token: str | None = None) -> None:
        """``token``: the one minted with the claim; a submission after a crash mints a new one."""
        if token is None:
            with self.db.atomic() as conn:
                token = job_tokens.mint(conn, row["id"], row["attempt"], row["run_id"], time.time())
        spec = msgspec.json.decode(row["spec"], type=JobSpec)
        env = launch.job_env(
            {},
            spec,
            home=self.service.home.root,
            job_id=row["id"],
            attempt=row["attempt"],
            run_id=row["run_id"],
            gpus=(),
            checkpoint_dir=self.service.checkpoint_dir(row["id"]),
            secrets=self.service.secrets(),
        )
        url = self.api_url()
        if url is not None:
            env.update({"MLBOX_URL": url, "MLBOX_JOB_TOKEN": token})
        sid = row["executor_job_id"]
        kwargs = ray_spec.submit_kwargs(spec, env)
        self.ray.submit(sid, ray_spec.entrypoint(spec), kwargs)
        self._submitted.add(sid)
        self._polled[sid] = time.time()  # Ray has it: the first ask about it comes a poll later

    def room(self, resources: Resources, now: float) -> int | None:
        """How many more jobs asking ``resources`` the cluster can start now. Two bounds: its
        free resources less the attempts submitted that Ray has not placed yet (no node), which
        sees other clients' jobs; and its total less what this appliance's live attempts hold,
        which the free figure's lag (a cached or not yet refreshed cluster status) cannot hide:
        without it a trial was asked while two placed ones still counted as free. None when
        the cluster does not say (then Ray's own queue is the only limit)."""
        if now - self._free_at >= FREE_EVERY_S:
            self._cluster = self.ray.cluster()
            self._free_at = now
        free, total = self._cluster.get("available", {}), self._cluster.get("total", {})
        if not free:
            return None
        live = self.db.query(
            "SELECT cpus, gpus, gpu_memory_mb, node FROM jobs WHERE state = 'running' AND executor_job_id IS NOT NULL"
        )
        pending = sum(1 for r in live if r["node"] is None)
        request = ray_spec.submit_kwargs(JobSpec(name="room", command=["true"], resources=resources), {})
        ours = ray_spec.held(live)
        left = {name: amount - ours.get(name, 0.0) for name, amount in total.items()}
        return max(0, min(ray_spec.fits(free, request) - pending, ray_spec.fits(left, request)))

    # -- following -------------------------------------------------------------

    def follow(self, rows: list[sqlite3.Row], now: float, changed: dict[str, list[int]]) -> None:
        """Ask Ray about running attempts: each at most every `POLL_EVERY_S`, at most
        `ASKS_PER_PASS` of them per pass (the longest unasked first), a stop or timeout at once;
        the rest wait for the next pass as soon as a submission is waiting (its latency is the
        one that counts)."""
        asks = 0
        for row in sorted(rows, key=lambda r: self._polled.get(r["executor_job_id"], float("-inf"))):
            due = row["timeout_s"] is not None and now - row["started_at"] > row["timeout_s"]
            urgent = row["stop_reason"] is not None or due
            last = self._polled.get(row["executor_job_id"])
            if not urgent and (asks >= ASKS_PER_PASS or (last is not None and now - last < POLL_EVERY_S)):
                continue
            if not urgent and asks and self.service.wake.is_set():
                break  # something was submitted meanwhile: the next pass submits it first
            asks += 1
            self.check(row, now, changed)

    def check(self, row: sqlite3.Row, now: float, changed: dict[str, list[int]]) -> None:
        """Ask Ray about one running attempt and act on what it says."""
        sid: str = row["executor_job_id"]
        key = (row["id"], row["attempt"])
        self._polled[sid] = now
        try:
            info = self.ray.info(sid)
            if info is None:  # claimed, never submitted (a crash, or the cluster was away)
                self._submit(row)
                return
        except RayUnavailable:
            return
        if sid not in self._submitted and key not in self.reconciler._seen:
            self.reconciler._seen.add(key)
            changed.setdefault("adopted", []).append(row["id"])
        if info.node and info.node != row["node"]:
            with self.db.atomic() as conn:
                conn.execute("UPDATE jobs SET node = ? WHERE id = ? AND attempt = ?", (info.node, *key))
        code = ray_spec.exit_code(info.status, info.driver_exit_code)
        if code is not None or now - self._synced.get(sid, 0.0) >= LOG_EVERY_S:
            self._copy_logs(row, sid)
            self._synced[sid] = now
        if code is not None:
            self._synced.pop(sid, None)
            self._polled.pop(sid, None)
            self._submitted.discard(sid)
            self.reconciler._finish(row, None, None, now, changed, exit_code=code)
            return
        self._stop_if_asked(row, sid, now, changed)

    def _stop_if_asked(self, row: sqlite3.Row, sid: str, now: float, changed: dict[str, list[int]]) -> None:
        """Cancel, timeout, prune: Ray's stop (SIGTERM, then SIGKILL after its grace), once."""
        key = (row["id"], row["attempt"])
        reason, timeout = row["stop_reason"], row["timeout_s"]
        if reason is None and timeout is not None and now - row["started_at"] > timeout:
            reason = "timeout"
            with self.db.atomic() as conn:
                conn.execute(
                    "UPDATE jobs SET stop_reason = 'timeout', stop_requested_at = ?"
                    " WHERE id = ? AND attempt = ? AND stop_reason IS NULL",
                    (now, *key),
                )
        if reason is None or row["term_sent_at"] is not None:
            return
        try:
            self.ray.stop(sid)
        except RayUnavailable:
            return
        with self.db.atomic() as conn:
            conn.execute("UPDATE jobs SET term_sent_at = ? WHERE id = ? AND attempt = ?", (now, *key))
        changed.setdefault("stopping", []).append(row["id"])

    def _copy_logs(self, row: sqlite3.Row, sid: str) -> None:
        """Append what Ray logged since the last copy (its offset kept beside the attempt, so a
        restarted appliance goes on where the last one stopped)."""
        folder = self.service.attempt_dir(row["id"], row["attempt"])
        marker = folder / OFFSET_FILE
        try:
            done = int(marker.read_text())
        except (OSError, ValueError):
            done = 0
        try:
            data = self.ray.logs(sid).encode()
        except RayUnavailable:
            return
        if len(data) <= done:
            return
        with os.fdopen(
            private.create(self.service.log_path(row["id"]), exclusive=False, append=True), "ab"
        ) as f:
            f.write(data[done:])
        private.make_dirs(folder)
        tmp = folder / f".{OFFSET_FILE}.tmp"
        tmp.write_text(str(len(data)))
        os.replace(tmp, marker)
