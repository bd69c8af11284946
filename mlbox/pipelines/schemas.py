"""What the pipelines service returns (the API encodes these as they are)."""

from __future__ import annotations

from typing import Any

import msgspec


class StepRun(msgspec.Struct, frozen=True):
    id: int
    run_id: int
    node: str
    step: str
    deps: list[str]
    state: str
    attempt: int
    as_job: bool
    job_id: int | None
    cache_key: str | None
    cached_from: int | None
    """The step run whose result this one reused (state ``cached``)."""
    out_kind: str | None
    out_hash: str | None
    started_at: float | None
    finished_at: float | None
    message: str | None
    code_hash: str

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


class PipelineRun(msgspec.Struct, frozen=True):
    id: int
    pipeline: str
    ref: str
    params: dict[str, Any]
    state: str
    no_cache: bool
    trigger: str
    partition: str | None
    created_at: float
    finished_at: float | None
    message: str | None
    steps: list[StepRun] = []


class Schedule(msgspec.Struct, frozen=True):
    id: int
    ref: str
    kind: str
    spec: str
    params: dict[str, Any]
    catchup: str
    last_tick: float | None
    enabled: bool
    created_at: float
