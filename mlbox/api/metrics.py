"""Metric series of a run: the latest values, and one key's whole history.

Keys often hold slashes (``train/loss``), so the key is a path parameter.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from mlbox.api.ranges import INT64_MAX
from mlbox.tracking.schemas import MetricPoint, MetricSummary
from mlbox.tracking.service import TrackingService


class MetricHistory(msgspec.Struct, frozen=True):
    """``points`` are ``[step, timestamp, value]`` in step order; NaN and ±inf are null."""

    run_id: int
    key: str
    points: list[MetricPoint]


class MetricController(Controller):
    path = "/api/v1/runs/{run_id:int}/metrics"
    tags = ("metrics",)

    @get(operation_id="listMetrics", sync_to_thread=True, summary="Latest value of every metric")
    def list_metrics(
        self, tracking: NamedDependency[TrackingService], run_id: FromPath[int]
    ) -> list[MetricSummary]:
        tracking.get_run(run_id)  # an unknown run is a 404, not an empty list
        return tracking.metric_keys(run_id)

    @get("/{key:path}", operation_id="getMetricHistory", sync_to_thread=True, summary="A metric's history")
    def metric_history(
        self,
        tracking: NamedDependency[TrackingService],
        run_id: FromPath[int],
        key: FromPath[str],
        max_points: Annotated[
            int | None, QueryParameter(ge=2, le=INT64_MAX, description="thin evenly for plots")
        ] = None,
    ) -> MetricHistory:
        name = key.removeprefix("/")  # a path parameter arrives with its leading slash
        return MetricHistory(run_id, name, tracking.metric_history(run_id, name, max_points=max_points))
