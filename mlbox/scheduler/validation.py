"""Checks on a job spec before it is queued: every refusal names the field it is about.

The API decodes JSON into `JobSpec` (types checked by msgspec); the Python
client and other services build it directly, where nothing checks types, so
the numbers are checked here once for every caller.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbox.scheduler.environment import ENV_POLICIES
from mlbox.scheduler.schemas import Gpu, JobSpec
from mlbox.scheduler.wording import counted
from mlbox.store.errors import InvalidInput

FUNCTION_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "MLBOX_RUN_ID",
    "MLBOX_JOB_ID",
    "MLBOX_CHECKPOINT_DIR",
    "MLBOX_JOB_ATTEMPT",
)
MAX_NAME = 200
MAX_PRIORITY = 1_000_000
MAX_RETRIES = 1000


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}; got {value!r}", field=field)
    return value


def _number(value: Any, field: str, *, positive: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise InvalidInput(f"{field} must be a positive number; got {value!r}", field=field)
    return float(value)


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} must be a list of strings", field=field)
    return value


def check_spec(
    spec: JobSpec, *, gpus_available: int | None = None, cpus_available: float | None = None
) -> JobSpec:
    """Return ``spec`` when it can be queued; raise `InvalidInput` naming the bad field."""
    if not isinstance(spec.name, str) or not spec.name.strip() or len(spec.name) > MAX_NAME:
        raise InvalidInput(f"name must be 1 to {MAX_NAME} characters", field="name")
    given = [f for f in ("command", "script", "function") if getattr(spec, f) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "give exactly one of command, script or function"
            + (f" (got {', '.join(given)})" if given else ""),
            field="command",
        )
    if spec.command is not None and not _strings(spec.command, "command"):
        raise InvalidInput("command must not be empty", field="command")
    if spec.script is not None:
        if not isinstance(spec.script, str) or not spec.script.strip():
            raise InvalidInput("script must be a path to a Python file", field="script")
        path = Path(spec.script)
        if not path.is_absolute() and spec.workdir:
            path = Path(spec.workdir) / path
        if not path.is_file():
            raise InvalidInput(f"script {spec.script!r} is not a file", field="script")
    _strings(spec.script_args, "script_args")
    if spec.function is not None and (
        not isinstance(spec.function, str) or not FUNCTION_REF.match(spec.function)
    ):
        raise InvalidInput(
            f"function must be 'package.module:function'; got {spec.function!r}", field="function"
        )
    if not isinstance(spec.kwargs, dict) or not all(isinstance(k, str) for k in spec.kwargs):
        raise InvalidInput("kwargs must be a mapping of names to JSON values", field="kwargs")
    r = spec.resources
    gpus = _int(r.gpus, "resources.gpus", 0, 1024)
    _int(r.gpu_memory_mb, "resources.gpu_memory_mb", 0, 1 << 40)
    _number(r.cpus, "resources.cpus")
    if gpus_available is not None and gpus > gpus_available:
        where = f"only {gpus_available} exist" if gpus_available else "this machine has none"
        raise InvalidInput(
            f"resources.gpus: the job asks for {counted(gpus, 'GPU')} and {where} (MLBOX_GPUS simulates some)",
            field="resources.gpus",
        )
    if cpus_available is not None and r.cpus > cpus_available:
        raise InvalidInput(
            f"resources.cpus: the job asks for {counted(r.cpus, 'core')}, the scheduler has "
            f"{cpus_available:g} (MLBOX_SCHEDULER_CPUS)",
            field="resources.cpus",
        )
    _int(spec.priority, "priority", -MAX_PRIORITY, MAX_PRIORITY)
    _int(spec.max_retries, "max_retries", 0, MAX_RETRIES)
    if spec.timeout_s is not None:
        _number(spec.timeout_s, "timeout_s")
    if not isinstance(spec.env, dict):
        raise InvalidInput("env must be a mapping of names to strings", field="env")
    for key, value in spec.env.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            raise InvalidInput(f"env: {key!r} is not a variable name", field="env")
        if key in RESERVED_ENV:
            raise InvalidInput(f"env: {key} is set by the scheduler", field="env")
        if not isinstance(value, str) or "\0" in value:
            raise InvalidInput(f"env: the value of {key} must be a string", field="env")
    if spec.env_policy not in ENV_POLICIES:
        raise InvalidInput(
            f"env_policy must be one of {', '.join(ENV_POLICIES)}; got {spec.env_policy!r}",
            field="env_policy",
        )
    if spec.python is not None and (
        not isinstance(spec.python, str)
        or not os.path.isabs(spec.python)
        or not os.access(spec.python, os.X_OK)
    ):
        raise InvalidInput(
            f"python {spec.python!r} is not an executable file (an absolute path)", field="python"
        )
    if spec.workdir is not None and (not isinstance(spec.workdir, str) or not Path(spec.workdir).is_dir()):
        raise InvalidInput(f"workdir {spec.workdir!r} is not a folder", field="workdir")
    if spec.launcher not in ("none", "torchrun"):
        raise InvalidInput(f"launcher must be 'none' or 'torchrun'; got {spec.launcher!r}", field="launcher")
    if not isinstance(spec.preemptible, bool):
        raise InvalidInput("preemptible must be true or false", field="preemptible")
    if not isinstance(spec.experiment, str) or not spec.experiment.strip():
        raise InvalidInput("experiment must be a name", field="experiment")
    if spec.owner is not None and (not isinstance(spec.owner, str) or not spec.owner.strip()):
        raise InvalidInput("owner must be a non-empty string or null", field="owner")
    return spec


def why_impossible(
    gpus: int,
    gpu_memory_mb: int,
    cpus: float,
    inventory: list[Gpu],
    cpus_total: float,
    held_by: Mapping[int, str] | None = None,
) -> str:
    """Why a queued job cannot start, in the words its user needs to fix it.

    ``held_by`` names the GPUs leased outside jobs (a served model: ``serving:churn/3``).
    Placement leaves those out, so a job that would fit the machine but not what is left
    waits for them, and says who holds them rather than that the machine is too small.
    """
    if cpus > cpus_total + 1e-9:
        return f"cannot fit: it asks for {counted(cpus, 'core')} and this scheduler has {cpus_total:g}"
    if gpu_memory_mb > 0:
        big = [g for g in inventory if g.memory_mb is None or g.memory_mb >= gpu_memory_mb]
        if len(big) < gpus:
            largest = max((g.memory_mb or 0 for g in inventory), default=0)
            found = (
                f"the only GPU has {largest} MiB"
                if len(inventory) == 1
                else f"{len(big)} of the {len(inventory)} GPUs have that much (the largest has {largest} MiB)"
            )
            return f"cannot fit: it asks for {counted(gpus, 'GPU')} with {gpu_memory_mb} MiB each; {found}"
    held = {i: who for i, who in (held_by or {}).items() if any(g.index == i for g in inventory)}
    if held and gpus <= len(inventory):
        holders = ", ".join(f"GPU {i} by {who.replace(':', ' ', 1)}" for i, who in sorted(held.items()))
        return f"waiting for {counted(gpus, 'GPU')}: held outside jobs: {holders}"
    return f"cannot fit: it asks for {counted(gpus, 'GPU')} and this scheduler has {len(inventory)}"
