"""Settings of the monitoring service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlbox.envnumbers import positive


@dataclass(frozen=True)
class MonitoringSettings:
    every_s: float = 60.0
    """``MLBOX_MONITOR_EVERY_S``: how often the appliance runs the monitors that are due."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MonitoringSettings:
        env = os.environ if environ is None else environ
        return cls(every_s=positive(env, "MLBOX_MONITOR_EVERY_S", float, cls.every_s))
