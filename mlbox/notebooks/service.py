"""The notebook service: JupyterLab servers as jobs, culled when idle; headless notebook runs.

A server is a scheduler job owned by ``notebook:<id>``, so it holds its GPUs
in the one lease table beside training jobs and sweeps; this service keeps
what only a notebook knows (token, port, activity) in its own table and
drives the job from `reconcile_once` (called every scheduler tick by the
appliance): it learns the port the server bound, asks the server what it
has been doing (at most every ``poll_s``), and cancels the job of a server
idle past its limit (`mlbox.notebooks.idle`). A cancel or cull is a row the
scheduler reconciles, so a crash between deciding and stopping loses nothing.
"""

from __future__ import annotations

import builtins
import json
import secrets
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlbox.notebooks import probe
from mlbox.notebooks.config import NotebookSettings
from mlbox.notebooks.idle import decide
from mlbox.notebooks.jupyter import ServerPaths, read_server_info, write_private
from mlbox.notebooks.migrations import migrations
from mlbox.notebooks.params import parameters_source
from mlbox.notebooks.schemas import ACTIVE_STATES, NOTEBOOK_STATES, Notebook
from mlbox.scheduler.schemas import Job, JobSpec, Resources
from mlbox.scheduler.service import SchedulerService
from mlbox.store import Database, Home, private
from mlbox.store.errors import Conflict, InvalidInput, NotFound

NOTEBOOK_EXPERIMENT = "notebooks"
OWNER_PREFIX = "notebook:"
SERVER_CPUS = 0.5
"""CPU share a notebook server reserves: it idles for hours, so it must not hold a whole core
of the scheduler's budget away from training jobs; GPUs are what it really holds."""


def owner_of(notebook_id: int) -> str:
    return f"{OWNER_PREFIX}{notebook_id}"


def check_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInput(
            f"idle timeout must be a positive number of seconds, got {value!r}", field="idle_timeout_s"
        )
    return float(value)


def check_gpus(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"gpus must be a whole number >= 0, got {value!r}", field="gpus")
    return value


class NotebookService:
    def __init__(
        self, db: Database, home: Home, scheduler: SchedulerService, settings: NotebookSettings | None = None
    ) -> None:
        self.db = db
        self.home = home
        self.scheduler = scheduler
        self.settings = settings or NotebookSettings()
        self._polled: dict[int, float] = {}
        migrations.apply(db)

    @property
    def folder(self) -> Path:
        return self.home.root / "notebooks"

    def paths(self, notebook_id: int) -> ServerPaths:
        return ServerPaths.of(self.folder, notebook_id)

    # -- reading -----------------------------------------------------------------

    def _from_row(self, row: Any) -> Notebook:
        url = None
        if row["port"] is not None:
            url = f"http://127.0.0.1:{row['port']}/lab?token={row['token']}"
        timeout = row["idle_timeout_s"]
        return Notebook(
            id=row["id"],
            job_id=row["job_id"],
            state=row["state"],
            gpus=row["gpus"],
            root_dir=row["root_dir"],
            url=url,
            idle_timeout_s=self.settings.idle_s if timeout is None else timeout,
            created_at=row["created_at"],
            started_at=row["started_at"],
            last_activity=row["last_activity"],
            busy=bool(row["busy"]),
            finished_at=row["finished_at"],
            message=row["message"],
        )

    def _row(self, notebook_id: int) -> Any:
        row = self.db.query_one("SELECT * FROM notebooks WHERE id = ?", (notebook_id,))
        if row is None:
            raise NotFound(f"no notebook {notebook_id}", field="notebook_id")
        return row

    def get(self, notebook_id: int) -> Notebook:
        return self._from_row(self._row(notebook_id))

    def url(self, notebook_id: int) -> str:
        """The server's URL with its token; Conflict while it has not bound a port yet."""
        nb = self.get(notebook_id)
        if nb.state not in ACTIVE_STATES:
            raise Conflict(f"notebook {notebook_id} is {nb.state}", field="notebook_id")
        if nb.url is None:
            raise Conflict(f"notebook {notebook_id} is still starting", field="notebook_id")
        return nb.url

    def base_url(self, notebook_id: int) -> tuple[str, str] | None:
        """``(http://127.0.0.1:PORT, token)`` once the port is known."""
        row = self._row(notebook_id)
        if row["port"] is None:
            return None
        return f"http://127.0.0.1:{row['port']}", str(row["token"])

    def list_notebooks(
        self, states: Sequence[str] | None = None, limit: int = 200
    ) -> builtins.list[Notebook]:
        where, params = "", []
        bad = [s for s in states or () if s not in NOTEBOOK_STATES]
        if bad:
            raise InvalidInput(
                f"unknown notebook state {bad[0]!r}; one of {', '.join(NOTEBOOK_STATES)}", field="state"
            )
        if states:
            where = f"WHERE state IN ({','.join('?' * len(states))})"
            params = list(states)
        rows = self.db.query(f"SELECT * FROM notebooks {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [self._from_row(r) for r in rows]

    # -- starting and stopping -------------------------------------------------------

    def start(
        self, gpus: int = 0, idle_timeout_s: float | None = None, root_dir: str | Path | None = None
    ) -> Notebook:
        """Queue a JupyterLab server as a job; its URL is known once the job runs and binds a port."""
        check_gpus(gpus)
        timeout = check_timeout(idle_timeout_s)
        if root_dir is None:
            root = private.make_dirs(self.folder / "files")
        else:
            root = Path(root_dir).expanduser()
            if not root.is_dir():
                raise InvalidInput(f"root_dir {str(root)!r} is not a folder", field="root_dir")
            root = root.resolve()
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.atomic() as conn:
            cur = conn.execute(
                "INSERT INTO notebooks (state, gpus, root_dir, token, idle_timeout_s, created_at)"
                " VALUES ('starting', ?, ?, ?, ?, ?)",
                (gpus, str(root), token, timeout, now),
            )
            nid = int(cur.lastrowid or 0)
            paths = self.paths(nid)
            # Written inside the transaction: should it fail, no row names a missing token.
            write_private(paths.token_file, token)
            private.make_dirs(paths.runtime)
            job = self.scheduler.submit(self._server_spec(nid, gpus, root, paths))
            conn.execute("UPDATE notebooks SET job_id = ? WHERE id = ?", (job.id, nid))
        return self.get(nid)

    def _server_spec(self, nid: int, gpus: int, root: Path, paths: ServerPaths) -> JobSpec:
        return JobSpec(
            name=f"notebook {nid}",
            command=[sys.executable, "-m", "mlbox.notebooks.launch", "--root-dir", str(root)],
            resources=Resources(gpus=gpus, cpus=SERVER_CPUS),
            env={
                "MLBOX_NOTEBOOK_ID": str(nid),
                "JUPYTER_RUNTIME_DIR": str(paths.runtime),
                "JUPYTER_PATH": str(paths.jupyter_path),
                "JUPYTER_TOKEN_FILE": str(paths.token_file),
            },
            workdir=str(root),
            experiment=NOTEBOOK_EXPERIMENT,
            owner=owner_of(nid),
        )

    def _finish(self, nid: int, state: str, message: str | None, now: float) -> None:
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE notebooks SET state = ?, message = ?, finished_at = ?, busy = 0"
                " WHERE id = ? AND state IN ('starting', 'running')",
                (state, message, now, nid),
            )
        self._polled.pop(nid, None)

    def _job(self, nb: Notebook) -> Job | None:
        try:
            return self.scheduler.get(nb.job_id)
        except NotFound:
            return None

    def stop(self, notebook_id: int) -> Notebook:
        """Stop the server: cancel its job (the scheduler's next pass ends its processes and frees
        its GPUs). A server already marked stopped whose job still runs is cancelled again, so
        stopping twice never reports a server stopped while its job runs on unasked."""
        nb = self.get(notebook_id)
        job = self._job(nb)
        with self.db.atomic():  # both or neither: a crash in between leaves no half-stopped server
            if job is not None and not job.terminal:
                self.scheduler.cancel(job.id)
            if nb.state in ACTIVE_STATES:
                self._finish(notebook_id, "stopped", "stopped by user", time.time())
        return self.get(notebook_id)

    def stop_here(self, notebook_id: int, grace_s: float) -> Notebook:
        """`stop`, then end the server's processes from this process, as the scheduler's pass
        would (`mlbox.notebooks.halt`): for a front end with no appliance running to do it.
        `Conflict` when they could not be stopped."""
        nb = self.stop(notebook_id)
        job = self._job(nb)
        if job is None or job.terminal:
            return nb
        if job.pid is None:
            raise Conflict(
                f"notebook {notebook_id} cannot be stopped yet: its job {job.id} is still being started;"
                " try again in a moment",
                field="notebook_id",
            )
        from mlbox.notebooks.halt import halt_group  # psutil, imported when a stop needs it

        left = halt_group(job.pid, str(self.scheduler.attempt_dir(job.id, job.attempt)), grace_s)
        if left:
            raise Conflict(
                f"could not stop notebook {notebook_id}: process(es) {', '.join(map(str, left))}"
                f" of its job {job.id} still run",
                field="notebook_id",
            )
        return nb

    # -- the loop -----------------------------------------------------------------

    def reconcile_once(self, now: float | None = None) -> dict[str, list[int]]:
        """One pass: follow each server's job, learn its port, cull the idle (no browser,
        no busy kernel, no GPU work for longer than its timeout)."""
        now = time.time() if now is None else now
        culled: list[int] = []
        ended: list[int] = []
        for row in self.db.query("SELECT * FROM notebooks WHERE state IN ('starting', 'running')"):
            nid = int(row["id"])
            try:
                job = self.scheduler.get(int(row["job_id"]))
            except NotFound:
                self._finish(nid, "failed", "its job is gone", now)
                ended.append(nid)
                continue
            if job.terminal:
                self._job_ended(nid, job, now)
                ended.append(nid)
            elif job.state == "running" and self._follow(row, job, now):
                culled.append(nid)
        return {"notebooks_culled": culled, "notebooks_ended": ended}

    def _job_ended(self, nid: int, job: Job, now: float) -> None:
        if job.state == "succeeded":
            self._finish(nid, "stopped", "server shut down", now)
        elif job.state == "cancelled":
            self._finish(nid, "stopped", f"job {job.id} cancelled", now)
        else:
            detail = f": {job.message}" if job.message else ""
            self._finish(nid, "failed", f"job {job.id} {job.state}{detail}", now)

    def _follow(self, row: Any, job: Job, now: float) -> bool:
        """Track one running server; True when it was culled."""
        nid = int(row["id"])
        port = row["port"]
        if port is None:
            info = read_server_info(self.paths(nid).runtime)
            if info is None:
                return False
            port = int(info["port"])
            with self.db.atomic() as conn:
                conn.execute(
                    "UPDATE notebooks SET port = ?, state = 'running', started_at = ?,"
                    " last_activity = ? WHERE id = ? AND state = 'starting'",
                    (port, now, now, nid),
                )
            self._polled[nid] = now
            return False
        if now - self._polled.get(nid, 0.0) < self.settings.poll_s:
            return False
        self._polled[nid] = now
        server = probe.poll(f"http://127.0.0.1:{port}", str(row["token"]))
        leased = set(job.gpus)
        utilization = [g.utilization for g in self.scheduler.gpu_board() if g.gpu.index in leased]
        timeout = self.settings.idle_s if row["idle_timeout_s"] is None else float(row["idle_timeout_s"])
        since = row["last_activity"] if row["last_activity"] is not None else now
        verdict = decide(now=now, since=since, server=server, gpu_utilization=utilization, timeout_s=timeout)
        if verdict.cull:
            with self.db.atomic():
                self.scheduler.cancel(job.id)
                self._finish(nid, "culled", f"culled: {verdict.reason}", now)
            return True
        with self.db.atomic() as conn:
            conn.execute(
                "UPDATE notebooks SET last_activity = ?, busy = ?, message = ? WHERE id = ? AND state = 'running'",
                (verdict.last_activity, int(verdict.busy), verdict.reason, nid),
            )
        return False

    # -- headless runs ------------------------------------------------------------

    def run(
        self,
        path: str | Path,
        params: Mapping[str, Any] | None = None,
        gpus: int = 0,
        timeout_s: float | None = None,
    ) -> Job:
        """Execute a notebook headless as a job; the executed notebook and its HTML export
        become artifacts of the job's run (also when a cell fails: the job then fails)."""
        check_gpus(gpus)
        params = dict(params or {})
        parameters_source(params)  # refuses bad names and values now, not in the job
        src = Path(path).expanduser()
        if src.suffix != ".ipynb" or not src.is_file():
            raise InvalidInput(f"{str(src)!r} is not a notebook file (.ipynb)", field="path")
        try:
            import nbformat

            nbformat.read(str(src), as_version=4)
        except Exception as exc:  # nbformat raises several kinds for a broken file
            raise InvalidInput(f"{str(src)!r} is not a readable notebook: {exc}", field="path") from None
        # The job runs the notebook as it is now, not as it may be when the job starts.
        frozen = self.folder / "runs" / secrets.token_hex(8) / src.name
        private.make_dirs(frozen.parent)
        private.write_bytes(frozen, src.read_bytes())
        command = [
            sys.executable,
            "-m",
            "mlbox.notebooks.headless",
            str(frozen),
            "--params",
            json.dumps(params),
            "--source",
            str(src.resolve()),
        ]
        spec = JobSpec(
            name=f"notebook run {src.name}",
            command=command,
            resources=Resources(gpus=gpus),
            timeout_s=timeout_s,
            workdir=str(src.resolve().parent),
            experiment=NOTEBOOK_EXPERIMENT,
        )
        try:
            return self.scheduler.submit(spec)
        except BaseException:
            shutil.rmtree(frozen.parent, ignore_errors=True)
            raise

    def list(self, states: Sequence[str] | None = None, limit: int = 200) -> builtins.list[Notebook]:
        """Notebooks, newest first (the name the CLI and API use)."""
        return self.list_notebooks(states, limit)
