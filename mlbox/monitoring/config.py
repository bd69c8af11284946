"""Settings of the monitoring service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput


@dataclass(frozen=True)
class MonitoringSettings:
    every_s: float = 60.0
    """``MLBOX_MONITOR_EVERY_S``: how often the appliance runs the monitors that are due."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MonitoringSettings:
        env = os.environ if environ is None else environ
        s = cls()
        raw = env.get("MLBOX_MONITOR_EVERY_S")
        if raw:
            try:
                value = float(raw)
            except ValueError:
                raise InvalidInput(
                    f"MLBOX_MONITOR_EVERY_S={raw!r} is not a number", field="MLBOX_MONITOR_EVERY_S"
                ) from None
            if not value > 0:
                raise InvalidInput(
                    f"MLBOX_MONITOR_EVERY_S must be positive, got {raw!r}", field="MLBOX_MONITOR_EVERY_S"
                )
            s = replace(s, every_s=value)
        return s
