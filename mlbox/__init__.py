"""mlbox: the machine-learning platform in one box.

``import mlbox`` gives the tracking client with the names an MLflow user knows::

    import mlbox

    with mlbox.start_run(experiment="digits"):
        mlbox.log_params({"lr": 0.01})
        for step in range(100):
            mlbox.log_metric("loss", 1 / (step + 1), step=step)

Importing stays light: torch, sklearn, duckdb and the UI load only when used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbox.store.errors import Conflict, IntegrityError, InvalidInput, MlboxError, NotFound
from mlbox.tracking import client as _client
from mlbox.tracking.client import ActiveRun, Client, set_home
from mlbox.tracking.schemas import ArtifactInfo, DatasetInfo, Run

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "Client",
    "Conflict",
    "IntegrityError",
    "InvalidInput",
    "MlboxError",
    "NotFound",
    "__version__",
    "active_run",
    "end_run",
    "flush",
    "log_artifact",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "set_experiment",
    "set_home",
    "set_tag",
    "set_tags",
    "start_run",
]


def _c() -> Client:
    return _client._default or _client.default_client()


def set_experiment(name: str) -> None:
    """Runs started after this call go to experiment ``name`` (created on first use)."""
    _c().set_experiment(name)


def start_run(
    run_name: str | None = None,
    *,
    experiment: str | None = None,
    tags: Mapping[str, object] | None = None,
    run_id: int | None = None,
    log_code: bool = True,
    log_environment: bool = True,
) -> ActiveRun:
    """Start a run; use it as ``with mlbox.start_run(): ...``.

    Records the code version (git sha, dirty flag, the diff as an artifact) and
    the environment (Python, packages, host, CPUs, GPUs) unless told not to.
    """
    return _c().start_run(
        run_name,
        experiment=experiment,
        tags=tags,
        run_id=run_id,
        log_code=log_code,
        log_environment=log_environment,
    )


def active_run() -> ActiveRun | None:
    return _c().active_run()


def end_run(status: str = "finished") -> Run | None:
    return _c().end_run(status)


def flush() -> None:
    """Block until every metric logged so far is durable."""
    _c().flush()


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log one point; without ``step`` the series' next step (0, 1, 2, …) is used.

    Returns at once: a background writer commits points in batches. NaN and
    ±inf are stored as given (a diverging loss is worth seeing).
    """
    _c().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _c().log_metrics(metrics, step)


def log_param(key: str, value: object) -> None:
    """Params are write-once per run: logging another value raises `Conflict`."""
    _c().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _c().log_params(params)


def set_tag(key: str, value: object) -> None:
    _c().set_tag(key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    _c().set_tags(tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Store a file or a whole folder with the active run (content-addressed, verified)."""
    return _c().log_artifact(local_path, artifact_path)


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    return _c().log_text(text, artifact_file)


def log_dataset(
    data: Any, name: str | None = None, *, context: str = "training", source: str | None = None
) -> DatasetInfo:
    """Record the data version (sha256 of its content) of a path, frame or array."""
    return _c().log_dataset(data, name, context=context, source=source)
