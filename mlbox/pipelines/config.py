"""Settings of the pipelines service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput


@dataclass(frozen=True)
class PipelineSettings:
    workers: int = 4
    """``MLBOX_PIPELINES_WORKERS``: threads that run light (in-process) steps."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        env = os.environ if environ is None else environ
        s = cls()
        raw = env.get("MLBOX_PIPELINES_WORKERS")
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise InvalidInput(
                    f"MLBOX_PIPELINES_WORKERS={raw!r} is not a number", field="MLBOX_PIPELINES_WORKERS"
                ) from None
            if not value > 0:
                raise InvalidInput(
                    f"MLBOX_PIPELINES_WORKERS must be positive, got {raw!r}", field="MLBOX_PIPELINES_WORKERS"
                )
            s = replace(s, workers=value)
        return s
