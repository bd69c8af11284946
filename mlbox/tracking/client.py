"""The tracking client behind ``import mlbox``: MLflow's names, mlbox's stores.

A process has one `Client` (made from the environment on first use) and at
most one active run. Metrics go through the background `MetricWriter`; params,
tags, artifacts and datasets are written at once. Inside a job the scheduler
sets ``MLBOX_RUN_ID`` and `start_run` attaches to that run instead of making
a new one; a job on a Ray node (no home, ``MLBOX_URL`` and a job token) logs to
it over HTTP (`mlbox.remote.RemoteTracking`).
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from mlbox import remote
from mlbox.settings import Settings
from mlbox.store import ArtifactStore, Database, Home
from mlbox.store.errors import Conflict, InvalidInput
from mlbox.tracking import datasets as data_versions
from mlbox.tracking import provenance
from mlbox.tracking.schemas import TERMINAL_STATUSES, ArtifactInfo, DatasetInfo, Run
from mlbox.tracking.service import DEFAULT_EXPERIMENT, TrackingService
from mlbox.tracking.validation import check_key, check_step, check_value
from mlbox.tracking.writer import MetricWriter


def _process_started() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:
        return None


def end_status(status: object) -> str:
    """The status a run ends with, in mlbox's spelling; InvalidInput before anything changes.

    Case does not matter, so MLflow's ``mlflow.end_run("FINISHED")`` (a script using
    ``import mlbox as mlflow``) ends the run as ``finished``.
    """
    word = status.strip().lower() if isinstance(status, str) else None
    if word not in TERMINAL_STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(TERMINAL_STATUSES)} (any case); got {status!r}",
            field="status",
        )
    return word


class ActiveRun:
    """The run being logged to; a context manager that ends it.

    Leaving the block normally finishes the run, an exception marks it failed
    and Ctrl-C (KeyboardInterrupt) marks it killed; the exception propagates.
    """

    def __init__(self, client: Client, run: Run, writer: MetricWriter) -> None:
        self._client = client
        self.info = run
        self.id = run.id
        self.writer = writer
        self._steps: dict[str, int] = {}
        self._keys: set[str] = set()

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            status = "finished"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "killed"
        else:
            status = "failed"
        self._client.end_run(status)

    def __repr__(self) -> str:
        return f"<ActiveRun id={self.id} name={self.info.name!r}>"


class Client:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        api = None if settings is not None else remote.from_env()
        if api is not None:  # a job on a Ray node: no home here, its own run over HTTP (mlbox.remote)
            self.tracking = cast(TrackingService, remote.RemoteTracking(api))
        else:
            home = Home(self.settings.home).ensure()
            self.tracking = TrackingService(Database(home.db_path), ArtifactStore(home.artifacts))
        self.experiment = os.environ.get("MLBOX_EXPERIMENT") or DEFAULT_EXPERIMENT
        self._active: ActiveRun | None = None
        self._lock = threading.RLock()
        atexit.register(self._at_exit)

    # -- runs ---------------------------------------------------------------

    def set_experiment(self, name: str) -> None:
        check_key(name, "experiment")
        self.experiment = name

    def start_run(
        self,
        run_name: str | None = None,
        *,
        experiment: str | None = None,
        tags: Mapping[str, object] | None = None,
        run_id: int | None = None,
        log_code: bool = True,
        log_environment: bool = True,
    ) -> ActiveRun:
        """Start (or, with ``run_id`` or ``MLBOX_RUN_ID``, resume) the active run."""
        with self._lock:
            if self._active is not None:
                raise Conflict(
                    f"run {self._active.id} is already active; end it first (mlbox.end_run())",
                    field="run",
                )
            attach = run_id if run_id is not None else os.environ.get("MLBOX_RUN_ID")
            svc = self.tracking
            if attach is not None:
                try:
                    rid = int(attach)
                except ValueError:
                    raise InvalidInput(f"MLBOX_RUN_ID={attach!r} is not a run id", field="run_id") from None
                run = svc.attach_run(
                    rid, host=socket.gethostname(), pid=os.getpid(), pid_started=_process_started()
                )
                if tags:
                    svc.set_tags(rid, dict(tags))
            else:
                code = provenance.code_version() if log_code else None
                env = provenance.environment() if log_environment else None
                run = svc.create_run(
                    experiment or self.experiment,
                    run_name,
                    tags=dict(tags or {}),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    pid_started=_process_started(),
                    code=code,
                    environment=env,
                )
                if code is not None and code.diff:
                    svc.log_artifact_bytes(run.id, "code/diff.patch", code.diff.encode())
                if log_environment:
                    reqs = "".join(f"{k}=={v}\n" for k, v in provenance.packages().items())
                    svc.log_artifact_bytes(run.id, "environment/requirements.txt", reqs.encode())
            rid = run.id
            writer = MetricWriter(
                lambda rows: svc.log_metrics(rid, rows),
                lambda: svc.heartbeat(rid),
                heartbeat_s=self.settings.heartbeat_s,
            )
            self._active = ActiveRun(self, run, writer)
            return self._active

    def active_run(self) -> ActiveRun | None:
        return self._active

    def _require_active(self) -> ActiveRun:
        if self._active is None and os.environ.get("MLBOX_RUN_ID"):
            # inside a job the run already exists: log to it without ceremony, as MLflow
            # starts a run implicitly on the first log call
            self.start_run()
        if self._active is None:
            raise Conflict("no active run: call mlbox.start_run() first", field="run")
        return self._active

    def end_run(self, status: str = "finished") -> Run | None:
        """Flush the metrics and end the active run; a no-op when none is active.

        The status is checked first (`end_status`): a bad one raises and the run stays
        active, rather than being dropped here and marked crashed later by the reaper.
        """
        status = end_status(status)
        with self._lock:
            active = self._active
            if active is None:
                return None
            self._active = None
            try:
                active.writer.close()
            finally:
                run = self.tracking.end_run(active.id, status)
            return run

    def flush(self) -> None:
        """Block until every metric logged so far is durable."""
        if self._active is not None:
            self._active.writer.flush()

    def _at_exit(self) -> None:
        if self._active is not None:
            failed = getattr(sys, "last_value", None) is not None
            try:
                self.end_run("failed" if failed else "finished")
            except Exception as exc:  # the interpreter is going away; say why, don't raise
                print(f"mlbox: could not end run at exit: {exc}", file=sys.stderr)

    # -- logging -----------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        run = self._require_active()
        if key not in run._keys:
            check_key(key, "metric")
            run._keys.add(key)
        if type(value) is not float:
            value = check_value(key, value)
        if step is None:
            step = run._steps.get(key, -1) + 1
        elif type(step) is not int:
            step = check_step(key, step)
        run._steps[key] = step
        run.writer.add(key, step, time.time(), value)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not isinstance(metrics, Mapping):
            raise InvalidInput("metrics must be a mapping of name to number", field="metrics")
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_param(self, key: str, value: object) -> None:
        self.tracking.log_params(self._require_active().id, {key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        if not isinstance(params, Mapping):
            raise InvalidInput("params must be a mapping of name to value", field="params")
        self.tracking.log_params(self._require_active().id, dict(params))

    def set_tag(self, key: str, value: object) -> None:
        self.tracking.set_tags(self._require_active().id, {key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self.tracking.set_tags(self._require_active().id, dict(tags))

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
        return self.tracking.log_artifact(self._require_active().id, local_path, artifact_path)

    def log_text(self, text: str, artifact_file: str) -> ArtifactInfo:
        return self.tracking.log_artifact_bytes(self._require_active().id, artifact_file, text.encode())

    def log_dataset(
        self, data: Any, name: str | None = None, *, context: str = "training", source: str | None = None
    ) -> DatasetInfo:
        """Record a dataset's content hash (its version), rows and schema for the active run."""
        run = self._require_active()
        version = data_versions.version_of(data, source)
        if name is None:
            name = Path(data).name if isinstance(data, (str, Path)) else "dataset"
        return self.tracking.log_dataset(
            run.id,
            name=name,
            digest=version.digest,
            source=version.source,
            rows=version.rows,
            schema=version.schema,
            context=context,
        )


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process's client, made from the environment on first use."""
    global _default
    if _default is not None:
        return _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def set_home(home: str | Path) -> Client:
    """Point this process's client at another ``MLBOX_HOME`` (like MLflow's tracking URI)."""
    global _default
    with _default_lock:
        if _default is not None and _default.active_run() is not None:
            raise Conflict("cannot change home while a run is active", field="home")
        from dataclasses import replace

        base = _default.settings if _default is not None else Settings.from_env()
        _default = Client(replace(base, home=Path(home).expanduser()))
        return _default
