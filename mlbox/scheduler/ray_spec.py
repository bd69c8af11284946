"""How a job spec becomes a Ray Jobs API submission (pure functions, no ray import).

Placement on a Ray cluster belongs to Ray: the job's GPUs and cores become the
entrypoint's resource request, its GPU memory a custom resource the cluster's
nodes declare (``ray start --resources='{"gpu_memory_mb": 24000}'``), and its
environment the runtime env. The submission id is derived from the home, the
job and the attempt, so Ray itself refuses a second submission of one attempt
whatever the appliance remembers after a crash.
"""

from __future__ import annotations

import hashlib
import shlex
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlbox.scheduler import launch
from mlbox.scheduler.schemas import JobSpec

GPU_MEMORY_RESOURCE = "gpu_memory_mb"
"""The custom Ray resource a job's ``gpu_memory_mb`` asks for (per GPU)."""
DEVICES = frozenset({"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"})
"""Ray sets ``CUDA_VISIBLE_DEVICES`` for the GPUs it grants: the appliance's word would be wrong."""
HOME_FILES = frozenset({"MLBOX_HOME", "MLBOX_CHECKPOINT_DIR"})
"""Paths into the appliance's home, never given to a Ray job: a node elsewhere cannot open the
home's SQLite file, so a Ray job logs through the HTTP API with its job token (`mlbox.remote`),
a loopback head's too, so that what is tested here is what a cluster does."""
STATUS_CODES = {"SUCCEEDED": 0, "STOPPED": -15, "FAILED": 1}
"""The exit code an ended Ray job reads as when Ray does not report its driver's."""


def home_key(home: Path) -> str:
    """Eight hex digits naming the home, so two homes sharing one cluster never share an id."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:8]


def submission_prefix(home: Path, job_id: int) -> str:
    """The attempt number follows this prefix (the claim appends it in SQL, atomically)."""
    return f"mlbox-{home_key(home)}-{job_id}-"


def entrypoint(spec: JobSpec) -> str:
    """The shell command Ray runs: the job's argv with ``python`` as the worker's interpreter
    (a submitter's own interpreter path means nothing on another node)."""
    return shlex.join(launch.job_argv(spec, "python", spec.resources.gpus))


def submit_kwargs(spec: JobSpec, env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of ``JobSubmissionClient.submit_job`` (less the entrypoint and id)."""
    r = spec.resources
    dropped = DEVICES | HOME_FILES
    runtime_env: dict[str, Any] = {"env_vars": {k: str(v) for k, v in env.items() if k not in dropped}}
    if spec.workdir:
        runtime_env["working_dir"] = spec.workdir
    kwargs: dict[str, Any] = {"runtime_env": runtime_env, "entrypoint_num_cpus": float(r.cpus)}
    if r.gpus:
        kwargs["entrypoint_num_gpus"] = float(r.gpus)
    if r.gpus and r.gpu_memory_mb:
        kwargs["entrypoint_resources"] = {GPU_MEMORY_RESOURCE: float(r.gpu_memory_mb * r.gpus)}
    return kwargs


def fits(available: Mapping[str, float], kwargs: Mapping[str, Any]) -> int:
    """How many more submissions asking ``kwargs``' resources (`submit_kwargs`) the cluster's free
    resources hold now (a request of nothing: as many as anyone would ask)."""
    need = {
        "CPU": float(kwargs.get("entrypoint_num_cpus") or 0.0),
        "GPU": float(kwargs.get("entrypoint_num_gpus") or 0.0),
        **{k: float(v) for k, v in (kwargs.get("entrypoint_resources") or {}).items()},
    }
    counts = [int((available.get(name, 0.0) + 1e-9) // amount) for name, amount in need.items() if amount > 0]
    return min(counts) if counts else 1_000_000


def held(rows: Iterable[sqlite3.Row | Mapping[str, Any]]) -> dict[str, float]:
    """What jobs (rows with ``cpus``, ``gpus``, ``gpu_memory_mb``) hold of a cluster's resources,
    under the names `fits` reads."""
    out = {"CPU": 0.0, "GPU": 0.0, GPU_MEMORY_RESOURCE: 0.0}
    for r in rows:
        out["CPU"] += float(r["cpus"])
        out["GPU"] += float(r["gpus"])
        out[GPU_MEMORY_RESOURCE] += float(r["gpu_memory_mb"] * r["gpus"])
    return out


def exit_code(status: str, driver_exit_code: int | None) -> int | None:
    """The attempt's exit code once Ray says it ended; None while it has not."""
    if status not in STATUS_CODES:
        return None
    if status == "STOPPED":
        return -15
    if driver_exit_code is not None:
        return int(driver_exit_code)
    return STATUS_CODES[status]
