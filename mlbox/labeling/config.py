"""Settings of the labeling service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput


@dataclass(frozen=True)
class LabelingSettings:
    prefetch: int = 8
    """``MLBOX_LABELING_PREFETCH``: how many next tasks the labeling screen keeps ready."""
    annotator: str | None = None
    """``MLBOX_LABELING_ANNOTATOR``: the name on this session's labels (default: the login name)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LabelingSettings:
        env = os.environ if environ is None else environ
        s = cls()
        raw = env.get("MLBOX_LABELING_PREFETCH")
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise InvalidInput(
                    f"MLBOX_LABELING_PREFETCH={raw!r} is not a number", field="MLBOX_LABELING_PREFETCH"
                ) from None
            if not value > 0:
                raise InvalidInput(
                    f"MLBOX_LABELING_PREFETCH must be positive, got {raw!r}", field="MLBOX_LABELING_PREFETCH"
                )
            s = replace(s, prefetch=value)
        who = env.get("MLBOX_LABELING_ANNOTATOR")
        if who:
            s = replace(s, annotator=who)
        return s
