"""Settings of the labeling service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlbox.envnumbers import positive


@dataclass(frozen=True)
class LabelingSettings:
    prefetch: int = 8
    """``MLBOX_LABELING_PREFETCH``: how many next tasks the labeling screen keeps ready."""
    annotator: str | None = None
    """``MLBOX_LABELING_ANNOTATOR``: the name on this session's labels (default: the login name)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LabelingSettings:
        env = os.environ if environ is None else environ
        return cls(
            prefetch=int(positive(env, "MLBOX_LABELING_PREFETCH", int, cls.prefetch)),
            annotator=env.get("MLBOX_LABELING_ANNOTATOR") or None,
        )
