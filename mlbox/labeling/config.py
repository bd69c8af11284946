"""Settings of the labeling service, read from ``MLBOX_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlbox.envnumbers import positive
from mlbox.store.errors import InvalidInput

IMAGES = ("auto", "halfblock", "kitty", "sixel")


@dataclass(frozen=True)
class LabelingSettings:
    prefetch: int = 8
    """``MLBOX_LABELING_PREFETCH``: how many next tasks the labeling screen keeps ready."""
    annotator: str | None = None
    """``MLBOX_LABELING_ANNOTATOR``: the name on this session's labels (default: the login name)."""
    images: str = "auto"
    """``MLBOX_LABELING_IMAGES``: how the labeling screen draws images: ``auto`` asks the terminal
    for a graphics protocol (Kitty's or Sixel) before the TUI starts and falls back to half-block
    cells; ``halfblock``, ``kitty`` or ``sixel`` choose one."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LabelingSettings:
        env = os.environ if environ is None else environ
        return cls(
            prefetch=int(positive(env, "MLBOX_LABELING_PREFETCH", int, cls.prefetch)),
            annotator=env.get("MLBOX_LABELING_ANNOTATOR") or None,
            images=_images(env),
        )


def _images(env: Mapping[str, str]) -> str:
    raw = env.get("MLBOX_LABELING_IMAGES") or "auto"
    if raw not in IMAGES:
        raise InvalidInput(
            f"MLBOX_LABELING_IMAGES={raw!r} is not one of {', '.join(IMAGES)}", field="MLBOX_LABELING_IMAGES"
        )
    return raw
