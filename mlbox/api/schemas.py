"""Request bodies and the few responses that are the API's own.

Everything the services return is already a msgspec Struct
(`mlbox.tracking.schemas`) and goes out as is; these are what callers send.
Unknown fields are refused, so a misspelt field is an error naming it rather
than a silently ignored value.
"""

from __future__ import annotations

import msgspec

from mlbox.tracking.service import DEFAULT_EXPERIMENT

Scalar = str | int | float | bool


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str


class NewExperiment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str = ""


class ExperimentChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    """The new name (runs follow: they record the experiment's id)."""


class NewRun(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    experiment: str = DEFAULT_EXPERIMENT
    name: str | None = None
    tags: dict[str, Scalar] = {}


class SearchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/runs/search``: the same fields as the GET query."""

    filter: str = ""
    order_by: list[str] = []
    experiments: list[str] = []
    limit: int = 100
    offset: int = 0
    lifecycle: str = "active"
    """``active``, ``deleted`` (restorable until purged) or ``all``."""


class PointIn(msgspec.Struct, frozen=True, array_like=True):
    """One metric point as ``[key, step, timestamp, value]``; a null value is NaN."""

    key: str
    step: int
    timestamp: float
    value: float | None


class LogBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    params: dict[str, Scalar] = {}
    tags: dict[str, Scalar] = {}
    metrics: list[PointIn] = []


class BatchResult(msgspec.Struct, frozen=True):
    params: int
    tags: int
    metrics: int


class EndRun(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: str = "finished"
