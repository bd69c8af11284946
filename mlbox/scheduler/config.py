"""Settings of the job scheduler, read from ``MLBOX_GPUS`` and ``MLBOX_SCHEDULER_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput


@dataclass(frozen=True)
class SchedulerSettings:
    gpus: str | None = None
    """``MLBOX_GPUS``: simulated GPU inventory instead of NVML's. A bare number is a count
    (``4``: GPUs 0-3); a comma list names indices (``0,1,2,3``; ``3,`` is GPU 3 alone),
    each optionally with its memory in MiB (``0:24000,1:24000``); ``0`` or ``none``: no GPUs.
    Unset means NVML's inventory when a driver is present, else none."""
    tick_s: float = 0.2
    """``MLBOX_SCHEDULER_TICK_S``: how often the scheduler's reconciliation loop runs."""
    kill_grace_s: float = 10.0
    """``MLBOX_SCHEDULER_KILL_GRACE_S``: SIGTERM to SIGKILL delay when a job is cancelled."""
    cpus: float | None = None
    """``MLBOX_SCHEDULER_CPUS``: CPU cores jobs may claim in all (default: the machine's count)."""
    starve_after_s: float = 120.0
    """``MLBOX_SCHEDULER_STARVE_AFTER_S``: a job blocked this long gets GPUs reserved for it, so
    smaller jobs no longer backfill onto the GPUs it waits for."""
    executor: str = "local"
    """``MLBOX_EXECUTOR``: ``local`` (processes on this machine, GPU leases) or ``ray://HOST:PORT``
    (attempts become Ray jobs, submitted to that dashboard's Jobs API; placement is Ray's)."""
    api_url: str | None = None
    """``MLBOX_JOB_API_URL``: the appliance's HTTP API as a Ray cluster's nodes reach it (its jobs log
    there with a job token). Default: the address the appliance announced, right for a loopback head;
    a cluster elsewhere needs the appliance bound beyond loopback and its name in MLBOX_ALLOWED_HOSTS."""
    lost_after_s: float = 30.0
    """``MLBOX_SCHEDULER_LOST_AFTER_S``: a claimed attempt whose process never showed up
    (the starting appliance died mid-start) is treated as gone after this long."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SchedulerSettings:
        env = os.environ if environ is None else environ
        s = cls(gpus=env.get("MLBOX_GPUS") or None)
        for name, attr in (
            ("MLBOX_SCHEDULER_TICK_S", "tick_s"),
            ("MLBOX_SCHEDULER_KILL_GRACE_S", "kill_grace_s"),
            ("MLBOX_SCHEDULER_CPUS", "cpus"),
            ("MLBOX_SCHEDULER_STARVE_AFTER_S", "starve_after_s"),
            ("MLBOX_SCHEDULER_LOST_AFTER_S", "lost_after_s"),
        ):
            if env.get(name):
                try:
                    value = float(env[name])
                except ValueError:
                    raise InvalidInput(f"{name}={env[name]!r} is not a number", field=name) from None
                if value < 0 or value != value:
                    raise InvalidInput(f"{name}={env[name]!r} must be a positive number", field=name)
                s = replace(s, **{attr: value})  # type: ignore[arg-type]
        api_url = env.get("MLBOX_JOB_API_URL") or None
        if api_url is not None:
            if not api_url.startswith(("http://", "https://")):
                raise InvalidInput(
                    f"MLBOX_JOB_API_URL={api_url!r}: expected http://HOST:PORT", field="MLBOX_JOB_API_URL"
                )
            s = replace(s, api_url=api_url.rstrip("/"))
        executor = env.get("MLBOX_EXECUTOR") or "local"
        if executor != "local":
            from mlbox.scheduler.ray_executor import dashboard_url

            dashboard_url(executor)  # refuse a malformed address at start-up, naming it
            s = replace(s, executor=executor)
        if s.gpus is not None:
            from mlbox.scheduler.inventory import parse_gpus

            parse_gpus(s.gpus)  # refuse a malformed MLBOX_GPUS at start-up, naming it
        return s
