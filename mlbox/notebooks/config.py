"""Settings of the notebook service, read from ``MLBOX_NOTEBOOK_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlbox.store.errors import InvalidInput

DEFAULT_IDLE_S = 3600.0


@dataclass(frozen=True)
class NotebookSettings:
    idle_s: float = DEFAULT_IDLE_S
    """``MLBOX_NOTEBOOK_IDLE_S``: a notebook server idle this long (no browser activity, no busy
    kernel, no GPU work) is culled and its GPUs freed; a notebook may set its own limit."""
    poll_s: float = 10.0
    """``MLBOX_NOTEBOOK_POLL_S``: how often each running server is asked for its activity
    (the scheduler ticks far more often; the servers need not be asked that often)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotebookSettings:
        env = os.environ if environ is None else environ
        s = cls()
        for name, attr in (("MLBOX_NOTEBOOK_IDLE_S", "idle_s"), ("MLBOX_NOTEBOOK_POLL_S", "poll_s")):
            if env.get(name):
                try:
                    value = float(env[name])
                except ValueError:
                    raise InvalidInput(f"{name}={env[name]!r} is not a number", field=name) from None
                if not value > 0:
                    raise InvalidInput(f"{name} must be positive, got {env[name]!r}", field=name)
                s = replace(s, **{attr: value})
        return s
