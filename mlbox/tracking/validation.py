"""Validation of what callers log: keys, metric values, steps and params.

Shared by the client (which checks at call time, so an error is raised where
the user logged, not later in the background writer) and the service.
"""

from __future__ import annotations

import json

from mlbox.store.errors import InvalidInput

MAX_KEY_LEN = 250
MAX_PARAM_LEN = 6000


def check_key(key: object, field: str) -> str:
    """Keys name series, params and tags: non-empty text without control characters."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput(f"{field} must be a non-empty string, got {key!r}", field=field)
    if len(key) > MAX_KEY_LEN:
        raise InvalidInput(f"{field} {key[:40]!r}… is longer than {MAX_KEY_LEN}", field=field)
    if any(ord(c) < 32 for c in key):
        raise InvalidInput(f"{field} {key!r} has control characters", field=field)
    return key


def check_value(key: str, value: object) -> float:
    """A metric value as float; numbers (and numpy/torch scalars) only."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise InvalidInput(
            f"metric {key!r}: value must be a number, got {type(value).__name__} {value!r}",
            field=f"metrics.{key}",
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(
            f"metric {key!r}: value must be a number, got {type(value).__name__}",
            field=f"metrics.{key}",
        ) from None


def check_step(key: str, step: object) -> int:
    """An integer step (numpy integers too); a bool is refused, not read as 0 or 1."""
    if isinstance(step, int) and not isinstance(step, bool):
        return step
    index = getattr(step, "__index__", None)
    if index is not None and not isinstance(step, bool):
        return int(index())
    raise InvalidInput(f"metric {key!r}: step must be an integer, got {step!r}", field="step")


def param_text(key: str, value: object) -> str:
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    if len(text) > MAX_PARAM_LEN:
        raise InvalidInput(f"param {key!r} is longer than {MAX_PARAM_LEN} characters", field=key)
    return text
