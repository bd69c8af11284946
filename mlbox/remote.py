"""A job on a Ray node logs through the appliance's HTTP API, with its own job token.

The node cannot open the appliance's SQLite file, so a Ray job gets no
``MLBOX_HOME``: it gets ``MLBOX_URL`` (the appliance's API), ``MLBOX_JOB_TOKEN``
(good for its own run and job while its attempt runs; `mlbox.scheduler.job_tokens`),
``MLBOX_JOB_ID`` and ``MLBOX_RUN_ID``. With those and no home, `from_env` answers a
`JobApi`, and the tracking client (`RemoteTracking`) and `mlbox.checkpoint` go over
HTTP instead of to the store. Standard library only (urllib, imported on the first
call): a process that never calls pays nothing for it.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import msgspec

from mlbox.store.errors import Conflict, InvalidInput, MlboxError, NotFound
from mlbox.tracking.schemas import ArtifactInfo, DatasetInfo, Run, RunDetail
from mlbox.tracking.series import Chunk
from mlbox.tracking.validation import param_text

TIMEOUT_S = 60.0
ERRORS: dict[int, type[MlboxError]] = {400: InvalidInput, 404: NotFound, 409: Conflict}


class RemoteError(MlboxError):
    """The appliance refused a job's call (its token ended with the job, or the route is not its own)."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 502) -> None:
        super().__init__(message, field=field)
        self.http_status = status


class JobApi:
    """The appliance's API as one job sees it: its address, its token and its ids."""

    def __init__(self, url: str, token: str, job_id: int, run_id: int | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.job_id = job_id
        self.run_id = run_id

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | IO[bytes] | None = None,
        size: int | None = None,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> bytes:
        """One request; the answer's bytes, or the appliance's error raised as mlbox's own."""
        import urllib.error  # here: ``import mlbox`` stays light (urllib.request loads ssl, email)
        import urllib.request

        headers = {"Authorization": f"Bearer {self.token}"}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if body is not None:
            headers["Content-Length"] = str(len(body) if isinstance(body, bytes) else size)
            headers.setdefault("Content-Type", "application/octet-stream")
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                said = json.loads(raw)
            except ValueError:
                said = {"error": raw.decode("utf-8", errors="replace")[:200]}
            kind = ERRORS.get(exc.code)
            message = f"{method} {path}: {said.get('error', exc.reason)}"
            if kind is not None:
                raise kind(message, field=said.get("field")) from None
            raise RemoteError(message, field=said.get("field"), status=exc.code) from None
        except OSError as exc:
            raise RemoteError(f"cannot reach the appliance at {self.url}: {exc}") from None

    def put_file(self, path: str, source: Path, query: Mapping[str, str] | None = None) -> bytes:
        """Stream a file's bytes as the body (constant memory, whatever its size)."""
        with open(source, "rb") as f:
            return self.call("PUT", path, body=f, size=os.fstat(f.fileno()).st_size, query=query)


def from_env(environ: Mapping[str, str] | None = None) -> JobApi | None:
    """The job's API when it runs without a home (a Ray job), else None (the store applies)."""
    env = os.environ if environ is None else environ
    url, token, job = env.get("MLBOX_URL"), env.get("MLBOX_JOB_TOKEN"), env.get("MLBOX_JOB_ID")
    if env.get("MLBOX_HOME") or not (url and token and job):
        return None
    run = env.get("MLBOX_RUN_ID")
    try:
        return JobApi(url, token, int(job), int(run) if run else None)
    except ValueError:
        raise InvalidInput(
            f"MLBOX_JOB_ID={job!r} / MLBOX_RUN_ID={run!r} are not ids", field="MLBOX_JOB_ID"
        ) from None


def artifact_files(local_path: Path, artifact_path: str | None) -> list[tuple[Path, str]]:
    """The files of a file or folder and the artifact path each is logged at, as the store
    names them (`mlbox.tracking.service.TrackingService.log_artifact`)."""
    if not local_path.exists():
        raise NotFound(f"no such file or folder: {local_path}", field="local_path")
    base = artifact_path.strip("/") if artifact_path else None
    if not local_path.is_dir():
        return [(local_path, f"{base}/{local_path.name}" if base else local_path.name)]
    files = []
    for dirpath, _dirs, names in os.walk(local_path):
        for name in sorted(names):
            f = Path(dirpath) / name
            rel = f.relative_to(local_path).as_posix()
            files.append((f, f"{base}/{rel}" if base else f"{local_path.name}/{rel}"))
    return files


class RemoteTracking:
    """The part of `mlbox.tracking.service.TrackingService` the tracking client calls, over HTTP,
    for the job's own run only. The run belongs to the scheduler: it made it, and ends it when
    the Ray job ends (so `end_run` and the heartbeat change nothing here)."""

    def __init__(self, api: JobApi) -> None:
        self.api = api

    def _own(self, run_id: int) -> str:
        if run_id != self.api.run_id:
            raise Conflict(
                f"a job on a Ray node logs to its own run ({self.api.run_id}) only, not run {run_id}",
                field="run_id",
            )
        return f"/api/v1/runs/{run_id}"

    def get_run(self, run_id: int) -> Run:
        return msgspec.json.decode(self.api.call("GET", self._own(run_id)), type=RunDetail).run

    def attach_run(self, run_id: int, *, host: str, pid: int, pid_started: float | None) -> Run:
        return self.get_run(run_id)

    def create_run(self, *args: Any, **kwargs: Any) -> Run:
        raise Conflict(
            "a job on a Ray node logs to its job's run (MLBOX_RUN_ID); it cannot start another",
            field="run",
        )

    def end_run(self, run_id: int, status: str = "finished", *, now: float | None = None) -> Run:
        return self.get_run(run_id)

    def heartbeat(self, run_id: int, *, now: float | None = None) -> None:
        return None

    def _batch(self, run_id: int, body: dict[str, Any]) -> None:
        self.api.call("POST", self._own(run_id) + "/log-batch", json_body=body)

    def log_params(self, run_id: int, params: dict[str, object]) -> None:
        self._batch(run_id, {"params": {k: param_text(k, v) for k, v in params.items()}})

    def set_tags(self, run_id: int, tags: dict[str, object]) -> None:
        self._batch(run_id, {"tags": {k: param_text(k, v) for k, v in tags.items()}})

    def log_metrics(self, run_id: int, series: Mapping[str, Chunk], *, now: float | None = None) -> None:
        points = [
            [key, s, t, None if v != v else v]
            for key, chunk in series.items()
            for s, t, v in zip(chunk.steps, chunk.ts, chunk.values, strict=True)
        ]
        if points:
            self._batch(run_id, {"metrics": points})

    def log_artifact_bytes(self, run_id: int, path: str, data: bytes) -> ArtifactInfo:
        self._own(run_id)
        answer = self.api.call("PUT", self._artifact_path(path), body=data)
        return msgspec.json.decode(answer, type=ArtifactInfo)

    def log_artifact(
        self, run_id: int, local_path: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        self._own(run_id)
        return [
            msgspec.json.decode(self.api.put_file(self._artifact_path(rel), f), type=ArtifactInfo)
            for f, rel in artifact_files(Path(local_path), artifact_path)
        ]

    def _artifact_path(self, rel: str) -> str:
        return f"/api/v1/jobs/{self.api.job_id}/artifacts/{urllib.parse.quote(rel.lstrip('/'))}"

    def log_dataset(self, run_id: int, **kwargs: Any) -> DatasetInfo:
        raise Conflict("log_dataset is not available to a job on a Ray node yet", field="dataset")
