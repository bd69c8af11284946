"""Value objects of the tracking service, shared by the client, API, CLI and TUI."""

from __future__ import annotations

from typing import Literal

import msgspec

RunStatus = Literal["running", "finished", "failed", "killed", "crashed", "pruned"]
RUN_STATUSES: tuple[str, ...] = ("running", "finished", "failed", "killed", "crashed", "pruned")
TERMINAL_STATUSES: tuple[str, ...] = ("finished", "failed", "killed", "crashed", "pruned")


class Experiment(msgspec.Struct, frozen=True):
    id: int
    name: str
    description: str
    created_at: float
    run_count: int = 0
    deleted_at: float | None = None
    """When it was deleted (restorable until ``mlbox gc`` purges it); None while live."""


class Run(msgspec.Struct, frozen=True):
    """A run as listed: attributes plus its params and latest metric values."""

    id: int
    experiment_id: int
    experiment: str
    name: str
    status: str
    start_time: float
    end_time: float | None
    heartbeat: float
    host: str
    pid: int
    git_sha: str | None
    git_dirty: bool | None
    params: dict[str, str] = {}
    metrics: dict[str, float | None] = {}
    tags: dict[str, str] = {}
    deleted_at: float | None = None
    """When it was deleted (restorable until ``mlbox gc`` purges it); None while live."""


class MetricPoint(msgspec.Struct, frozen=True, array_like=True):
    step: int
    ts: float
    value: float | None


class MetricSummary(msgspec.Struct, frozen=True):
    key: str
    last: float | None
    step: int
    count: int


class ArtifactInfo(msgspec.Struct, frozen=True):
    path: str
    sha256: str
    size: int


class DatasetInfo(msgspec.Struct, frozen=True):
    name: str
    context: str
    digest: str
    source: str
    rows: int | None
    schema: dict[str, str]


class RunDetail(msgspec.Struct, frozen=True):
    run: Run
    notes: str
    environment: dict[str, object]
    metrics: list[MetricSummary]
    artifacts: list[ArtifactInfo]
    datasets: list[DatasetInfo]


class RunPage(msgspec.Struct, frozen=True):
    runs: list[Run]
    total: int
    offset: int
    limit: int


class Comparison(msgspec.Struct, frozen=True):
    """Runs side by side: one row per param or metric, one column per run."""

    run_ids: list[int]
    params: dict[str, list[str | None]]
    metrics: dict[str, list[float | None]]
