"""A positive number from an ``MLBOX_*`` variable, or the one error that names it.

Every settings section reads numbers from the environment; a typo there must stop start-up with
the variable's name, not a traceback or a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlbox.store.errors import InvalidInput


def positive(env: Mapping[str, str], name: str, kind: type[int] | type[float], default: float) -> float:
    """``env[name]`` read as ``kind`` and checked positive; ``default`` when unset or empty."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a number", field=name) from None
    if not value > 0:
        raise InvalidInput(f"{name} must be positive, got {raw!r}", field=name)
    return value
