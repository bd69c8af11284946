"""The command line and environment of one job attempt, built from its spec (pure functions).

Function references run through ``python -m mlbox.scheduler.entry``; the
torchrun launcher wraps the Python entry in ``python -m torch.distributed.run
--standalone --nproc_per_node=N`` where N is the number of leased GPUs, and
``CUDA_VISIBLE_DEVICES`` lists exactly those GPUs (in PCI bus order, NVML's
numbering), so each rank's ``cuda:LOCAL_RANK`` is one of the job's GPUs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlbox.scheduler import environment
from mlbox.scheduler.schemas import JobSpec

PYTHON_NAMES = ("python", "python3")
KWARGS_ENV = "MLBOX_JOB_KWARGS"


def _is_python(exe: str, python: str) -> bool:
    name = os.path.basename(exe)
    return exe == python or name in PYTHON_NAMES or (name.startswith("python3.") and name[8:].isdigit())


def job_argv(spec: JobSpec, python: str, n_gpus: int) -> list[str]:
    """What the shim executes for this spec."""
    if spec.launcher == "torchrun":
        launcher = [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={max(1, n_gpus)}",
        ]
        if spec.script is not None:
            return [*launcher, spec.script, *spec.script_args]
        if spec.function is not None:
            return [*launcher, "-m", "mlbox.scheduler.entry", spec.function]
        assert spec.command is not None
        cmd = spec.command
        if _is_python(cmd[0], python) and len(cmd) > 1:
            rest = cmd[1:]
            return [*launcher, *rest]  # ``python -m mod`` and ``python train.py`` read the same to torchrun
        return [*launcher, "--no-python", *cmd]
    if spec.script is not None:
        return [python, spec.script, *spec.script_args]
    if spec.function is not None:
        return [python, "-m", "mlbox.scheduler.entry", spec.function]
    assert spec.command is not None
    return list(spec.command)


def interpreter(spec: JobSpec, env: Mapping[str, str], appliance_python: str) -> str:
    """The Python a script, function or torchrun job runs with: the submitter's (``spec.python``);
    else the appliance's own under the ``appliance`` policy, else ``python`` on the job's PATH."""
    if spec.python:
        return spec.python
    if spec.env_policy == "appliance":
        return appliance_python
    return environment.python_on_path(env) or appliance_python


def shown_python(spec: JobSpec, env: Mapping[str, str], python: str) -> str | None:
    """The interpreter a job's record names: the one it was started with when mlbox chose it,
    else for a command ``python`` as its PATH resolves it (``sh -c 'which python'`` agrees)."""
    if spec.command is None or spec.launcher == "torchrun":
        return python
    first = spec.command[0]
    if os.path.isabs(first) and _is_python(first, python):
        return first
    return environment.python_on_path(env)


def job_env(
    base: Mapping[str, str],
    spec: JobSpec,
    *,
    home: Path,
    job_id: int,
    attempt: int,
    run_id: int | None,
    gpus: Sequence[int],
    checkpoint_dir: Path,
    secrets: Sequence[str] = (),
) -> dict[str, str]:
    """``base`` is the appliance's environment; how much of it the job sees is its spec's
    ``env_policy`` (`mlbox.scheduler.environment`). No variable holding one of ``secrets``
    (the API token) reaches the job, whoever put it there."""
    env = environment.base_env(spec.env_policy, base)
    env.update(spec.env)
    env = environment.without_secrets(env, secrets)
    env.update(
        {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus),
            "MLBOX_HOME": str(home),
            "MLBOX_JOB_ID": str(job_id),
            "MLBOX_JOB_ATTEMPT": str(attempt),
            "MLBOX_CHECKPOINT_DIR": str(checkpoint_dir),
            "MLBOX_EXPERIMENT": spec.experiment,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if run_id is not None:
        env["MLBOX_RUN_ID"] = str(run_id)
    if spec.function is not None:
        env[KWARGS_ENV] = json.dumps(spec.kwargs)
    return env
