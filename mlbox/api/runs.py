"""Runs: search, detail, compare, and the calls a remote client logs through.

Search takes the filter language of `mlbox.tracking.search` either as GET
query parameters (``filter``, repeatable ``order_by`` and ``experiment``,
``limit``, ``offset``) or as a JSON body on ``POST /api/v1/runs/search`` for
filters too long or awkward for a URL. Range checks live in the service, so
the API and the CLI refuse the same values with the same messages.
"""

from __future__ import annotations

import math
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.api.experiments import LIFECYCLE
from mlbox.api.ranges import INT64_MAX, Int64
from mlbox.api.schemas import BatchResult, EndRun, LogBatch, NewRun, SearchRequest
from mlbox.tracking.lifecycle import check_lifecycle
from mlbox.tracking.schemas import Comparison, Run, RunDetail, RunPage
from mlbox.tracking.service import TrackingService


class RunController(Controller):
    path = "/api/v1/runs"
    tags = ("runs",)

    @get(operation_id="searchRuns", sync_to_thread=True, summary="Search runs (filter, order, page)")
    def search_runs(
        self,
        tracking: NamedDependency[TrackingService],
        filter_: Annotated[str, QueryParameter(name="filter", description="e.g. metrics.acc > 0.9")] = "",
        order_by: Annotated[list[str] | None, QueryParameter(description="e.g. 'metrics.acc DESC'")] = None,
        experiment: Annotated[list[str] | None, QueryParameter(description="only these experiments")] = None,
        limit: Annotated[int, QueryParameter(le=INT64_MAX, description="runs per page")] = 100,
        offset: Annotated[int, QueryParameter(le=INT64_MAX, description="runs to skip")] = 0,
        lifecycle: Annotated[str, LIFECYCLE] = "active",
    ) -> RunPage:
        return tracking.search_runs(
            filter_,
            order_by=order_by,
            experiments=experiment,
            limit=limit,
            offset=offset,
            lifecycle=check_lifecycle(lifecycle),
        )

    @post(
        "/search",
        operation_id="searchRunsByBody",
        status_code=200,
        sync_to_thread=True,
        summary="Search runs with a JSON body",
    )
    def search_runs_by_body(
        self, tracking: NamedDependency[TrackingService], data: JSONBody[SearchRequest]
    ) -> RunPage:
        return tracking.search_runs(
            data.filter,
            order_by=data.order_by,
            experiments=data.experiments,
            limit=data.limit,
            offset=data.offset,
            lifecycle=check_lifecycle(data.lifecycle),
        )

    @post(operation_id="createRun", sync_to_thread=True, summary="Start a run (for remote clients)")
    def create_run(self, tracking: NamedDependency[TrackingService], data: JSONBody[NewRun]) -> Run:
        return tracking.create_run(data.experiment, data.name, tags=dict(data.tags))

    @get("/compare", operation_id="compareRuns", sync_to_thread=True, summary="Runs side by side")
    def compare_runs(
        self,
        tracking: NamedDependency[TrackingService],
        ids: Annotated[list[Int64], QueryParameter(description="two or more run ids")],
    ) -> Comparison:
        return tracking.compare(ids)

    @get("/{run_id:int}", operation_id="getRun", sync_to_thread=True, summary="A run in full")
    def get_run(self, tracking: NamedDependency[TrackingService], run_id: FromPath[int]) -> RunDetail:
        return tracking.run_detail(run_id)

    @delete(
        "/{run_id:int}",
        operation_id="deleteRun",
        status_code=200,
        sync_to_thread=True,
        summary="Delete a run (restorable until purged; 409 naming what still needs it)",
    )
    def delete_run(self, tracking: NamedDependency[TrackingService], run_id: FromPath[int]) -> Run:
        return tracking.delete_run(run_id)

    @post(
        "/{run_id:int}/restore",
        operation_id="restoreRun",
        status_code=200,
        sync_to_thread=True,
        summary="Restore a deleted run",
    )
    def restore_run(self, tracking: NamedDependency[TrackingService], run_id: FromPath[int]) -> Run:
        return tracking.restore_run(run_id)

    @post(
        "/{run_id:int}/log-batch",
        operation_id="logBatch",
        status_code=200,
        sync_to_thread=True,
        summary="Log params, tags and metric points",
    )
    def log_batch(
        self, tracking: NamedDependency[TrackingService], run_id: FromPath[int], data: JSONBody[LogBatch]
    ) -> BatchResult:
        """Each part is its own transaction: params, then tags, then metrics."""
        if data.params:
            tracking.log_params(run_id, dict(data.params))
        if data.tags:
            tracking.set_tags(run_id, dict(data.tags))
        if data.metrics:
            tracking.log_points(
                run_id,
                [
                    (p.key, p.step, p.timestamp, math.nan if p.value is None else p.value)
                    for p in data.metrics
                ],
            )
        return BatchResult(params=len(data.params), tags=len(data.tags), metrics=len(data.metrics))

    @post(
        "/{run_id:int}/end",
        operation_id="endRun",
        status_code=200,
        sync_to_thread=True,
        summary="End a run (status finished, failed, killed, crashed or pruned; default finished)",
    )
    def end_run(
        self,
        tracking: NamedDependency[TrackingService],
        run_id: FromPath[int],
        data: JSONBody[EndRun | None] = None,
    ) -> Run:
        return tracking.end_run(run_id, data.status if data else "finished")
