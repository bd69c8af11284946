"""Settings of the job scheduler, read from ``MLBOX_GPUS`` and ``MLBOX_SCHEDULER_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput


@dataclass(frozen=True)
class SchedulerSettings:
    gpus: str | None = None
    """``MLBOX_GPUS``: simulated GPU inventory (``4``, ``0,1,2,3``, optionally with memory per GPU);
    unset means NVML's inventory when a driver is present, else none."""
    tick_s: float = 0.2
    """``MLBOX_SCHEDULER_TICK_S``: how often the scheduler's reconciliation loop runs."""
    kill_grace_s: float = 10.0
    """``MLBOX_SCHEDULER_KILL_GRACE_S``: SIGTERM to SIGKILL delay when a job is cancelled."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SchedulerSettings:
        env = os.environ if environ is None else environ
        s = cls(gpus=env.get("MLBOX_GPUS") or None)
        for name, attr in (
            ("MLBOX_SCHEDULER_TICK_S", "tick_s"),
            ("MLBOX_SCHEDULER_KILL_GRACE_S", "kill_grace_s"),
        ):
            if env.get(name):
                try:
                    value = float(env[name])
                except ValueError:
                    raise InvalidInput(f"{name}={env[name]!r} is not a number", field=name) from None
                s = replace(s, **{attr: value})  # type: ignore[arg-type]
        return s
