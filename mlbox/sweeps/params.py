"""How a trial's job receives its parameters, and how its script reads them.

Two ways, both always given: the environment (``MLBOX_TRIAL_PARAMS``, JSON,
read by `params()`) and ``{name}`` placeholders in the command line
(`substitute`). Only the names of the sweep's parameters are replaced, so
other braces in a command (a ``python -c`` snippet, a JSON argument) stay as
they are. Kept free of heavy imports: a training script calls `params()`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from mlbox.store.errors import InvalidInput

PARAMS_ENV = "MLBOX_TRIAL_PARAMS"
SWEEP_ENV = "MLBOX_SWEEP_ID"
TRIAL_ENV = "MLBOX_TRIAL_NUMBER"

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def params(defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """This trial's parameters over ``defaults`` (outside a sweep: ``defaults`` alone).

    So a script runs the same by hand and as a trial::

        p = mlbox.sweeps.params({"lr": 1e-3, "layers": 2})
    """
    out = dict(defaults or {})
    raw = os.environ.get(PARAMS_ENV)
    if raw:
        try:
            given = json.loads(raw)
        except ValueError:
            raise InvalidInput(f"{PARAMS_ENV} is not JSON: {raw[:80]!r}", field=PARAMS_ENV) from None
        if not isinstance(given, dict):
            raise InvalidInput(f"{PARAMS_ENV} must be a JSON object", field=PARAMS_ENV)
        out.update(given)
    return out


trial_params = params


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def substitute(command: list[str], values: Mapping[str, Any]) -> list[str]:
    """``{name}`` in each argument replaced by the parameter's value (pure)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return _text(values[name]) if name in values else match.group(0)

    return [_PLACEHOLDER.sub(one, arg) for arg in command]


def placeholders(command: list[str]) -> set[str]:
    return {m.group(1) for arg in command for m in _PLACEHOLDER.finditer(arg)}


def trial_env(sweep_id: int, number: int, values: Mapping[str, Any]) -> dict[str, str]:
    return {
        PARAMS_ENV: json.dumps(dict(values), sort_keys=True),
        SWEEP_ENV: str(sweep_id),
        TRIAL_ENV: str(number),
    }
