"""Settings of the pipelines service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlbox.envnumbers import positive


@dataclass(frozen=True)
class PipelineSettings:
    workers: int = 4
    """``MLBOX_PIPELINES_WORKERS``: threads that run light (in-process) steps."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        env = os.environ if environ is None else environ
        return cls(workers=int(positive(env, "MLBOX_PIPELINES_WORKERS", int, cls.workers)))
