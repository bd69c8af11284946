"""``mlbox.submit(...)``: queue a job from Python (a script, a notebook) into this home's scheduler.

The job is a row in the jobs table; the appliance (``mlbox up`` or the TUI)
starts it. Importing this module stays light: the service is opened on the
first call.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlbox.scheduler.environment import ENV_POLICIES, submitter_env
from mlbox.scheduler.schemas import Job, JobSpec, Resources
from mlbox.scheduler.validation import FUNCTION_REF
from mlbox.store.errors import InvalidInput


def spec_for(
    what: str | Sequence[str] | Callable[..., Any],
    *,
    args: Sequence[str] = (),
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    gpus: int = 0,
    gpu_memory_mb: int = 0,
    cpus: float = 1.0,
    priority: int = 0,
    retries: int = 0,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    torchrun: bool = False,
    preemptible: bool = False,
    experiment: str = "jobs",
    owner: str | None = None,
    kind: str = "auto",
    env_policy: str = "inherit",
    environ: Mapping[str, str] | None = None,
) -> JobSpec:
    """A `JobSpec` from what a person would type: a ``.py`` path (script), ``pkg.mod:fn`` or a
    function object (function), an argv list or a shell-like string (command); ``kind`` forces one.

    The job runs where its submitter is: with ``env_policy="inherit"`` (the default) this
    process's environment (``environ``, default ``os.environ``; mlbox's secrets and session
    variables left out) is captured into the spec, ``env`` laid over it, and script and
    function jobs run on this interpreter. ``env_policy="clean"`` gives the job a minimal
    environment plus ``env``."""
    command = script = function = None
    if callable(what):
        module = getattr(what, "__module__", None)
        if not module or module == "__main__" or "<locals>" in getattr(what, "__qualname__", "<locals>"):
            raise InvalidInput(
                "the function must be importable by the job (defined at module level in a module, "
                "not in __main__ or a notebook cell); pass 'package.module:function'",
                field="function",
            )
        function = f"{module}:{what.__qualname__}"
    elif isinstance(what, str) and kind in ("auto", "function", "script"):
        if kind == "function" or (kind == "auto" and FUNCTION_REF.match(what)):
            function = what
        elif kind == "script" or (what.endswith(".py") and " " not in what):
            script = os.path.abspath(os.path.join(workdir or os.getcwd(), what))
        else:
            command = shlex.split(what)
    elif isinstance(what, str):
        command = shlex.split(what)
    else:
        command = [str(a) for a in what]
    if command is not None and args:
        command = [*command, *args]
    if env_policy not in ENV_POLICIES:
        raise InvalidInput(
            f"env_policy must be one of {', '.join(ENV_POLICIES)}; got {env_policy!r}", field="env_policy"
        )
    captured = submitter_env(os.environ if environ is None else environ) if env_policy == "inherit" else {}
    label = name or (function or os.path.basename(script or "") or os.path.basename((command or ["job"])[0]))
    return JobSpec(
        name=label,
        command=command,
        script=script,
        script_args=list(args) if script is not None else [],
        function=function,
        kwargs=dict(kwargs or {}),
        resources=Resources(gpus=gpus, gpu_memory_mb=gpu_memory_mb, cpus=cpus),
        priority=priority,
        max_retries=retries,
        timeout_s=timeout_s,
        env={**captured, **dict(env or {})},
        env_policy=env_policy,  # type: ignore[arg-type]  # checked by check_spec
        python=sys.executable or None,
        workdir=workdir if workdir is not None else os.getcwd(),
        launcher="torchrun" if torchrun else "none",
        preemptible=preemptible,
        experiment=experiment,
        owner=owner,
    )


def submit(what: str | Sequence[str] | Callable[..., Any], **options: Any) -> Job:
    """Queue a job in this process's ``MLBOX_HOME``; it runs once an appliance is up.

    ``mlbox.submit("train.py", gpus=1, args=["--lr", "0.1"])``,
    ``mlbox.submit("mypkg.train:main", kwargs={"lr": 0.1}, gpus=2, torchrun=True)``,
    ``mlbox.submit(["python", "-c", "print(1)"])``. Options are those of `spec_for`.
    """
    from mlbox.scheduler.service import SchedulerService
    from mlbox.store import Home
    from mlbox.tracking import client

    c = client._default or client.default_client()
    t = c.tracking
    scheduler = SchedulerService(t.db, Home(c.settings.home), t, c.settings.scheduler)
    return scheduler.submit(spec_for(what, **options))
