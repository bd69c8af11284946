"""Notebook parameters, papermill-style: parsed from ``key=value`` and injected as a cell.

The injected cell goes right after the cell tagged ``parameters`` (whose
values it overrides), or at the top when no cell is tagged; a notebook
already run with parameters has its old injected cell replaced, not stacked.
Pure functions over notebook nodes and strings, no I/O.
"""

from __future__ import annotations

import json
import keyword
import math
from collections.abc import Iterable, Mapping
from typing import Any

from mlbox.store.errors import InvalidInput

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidInput(f"parameter name {name!r} is not a Python identifier", field="params")
    return name


def parse_value(text: str) -> Any:
    """``-p lr=0.1`` is a float, ``-p epochs=3`` an int, ``-p flag=true`` a bool, ``-p xs=[1,2]`` a
    list (JSON); anything that is not JSON (``-p name=digits``) stays a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise InvalidInput(f"parameter {item!r} is not key=value", field="params")
        params[check_name(name.strip())] = parse_value(text)
    return params


def _literal(name: str, value: Any) -> str:
    """A Python literal for a JSON-like value; repr of JSON types is valid Python."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"parameter {name!r} is not a finite number", field="params")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(name, v) for v in value) + "]"
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"parameter {name!r} has a non-string key {k!r}", field="params")
            items.append(f"{k!r}: {_literal(name, v)}")
        return "{" + ", ".join(items) + "}"
    raise InvalidInput(
        f"parameter {name!r} must be a JSON value (number, string, bool, list, dict), "
        f"got {type(value).__name__}",
        field="params",
    )


def parameters_source(params: Mapping[str, Any]) -> str:
    lines = ["# Parameters"]
    lines += [f"{check_name(k)} = {_literal(k, v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def inject_parameters(nb: Any, params: Mapping[str, Any]) -> Any:
    """The notebook with the parameters cell in place (mutates and returns ``nb``)."""
    import nbformat

    source = parameters_source(params)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in _tags(c)]
    if not params:
        return nb
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    at = next((i + 1 for i, c in enumerate(nb.cells) if PARAMETERS_TAG in _tags(c)), 0)
    nb.cells.insert(at, cell)
    return nb
