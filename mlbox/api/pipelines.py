"""The pipelines service over HTTP (every route needs the token).

Starting a run imports the pipeline by reference (``package.module:name``) in the appliance's
process, as a function job does: only a token holder may do it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.api.ranges import Int64
from mlbox.pipelines.lineage import LineageGraph, MadeBy
from mlbox.pipelines.schemas import PipelineRun, Schedule
from mlbox.pipelines.service import PipelineService
from mlbox.store.errors import InvalidInput


class StartRun(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/pipelines/runs``."""

    pipeline: str
    params: dict[str, Any] = {}
    no_cache: bool = False
    no_cache_steps: list[str] = []
    partition: str | None = None


class RetryRun(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``node`` None: every failed or cancelled step (and what they stopped)."""

    node: str | None = None


class Backfill(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pipeline: str
    start: str
    end: str
    parallel: Int64 = 2
    params: dict[str, Any] = {}


class AddSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pipeline: str
    kind: str
    """``cron`` (``spec`` is the expression) or ``folder`` (``spec`` is the watched folder)."""
    spec: str
    params: dict[str, Any] = {}
    catchup: str = "latest"


class StepLog(msgspec.Struct, frozen=True):
    text: str


class PipelineController(Controller):
    path = "/api/v1/pipelines"
    tags = ("pipelines",)

    @get(operation_id="listPipelines", sync_to_thread=True, summary="Names of the pipelines that ran here")
    def list_all(self, pipelines: NamedDependency[PipelineService]) -> list[str]:
        return pipelines.names()

    @get("/runs", operation_id="listPipelineRuns", sync_to_thread=True, summary="Pipeline runs, newest first")
    def runs(
        self,
        pipelines: NamedDependency[PipelineService],
        pipeline: Annotated[str | None, QueryParameter(description="only this pipeline's runs")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[PipelineRun]:
        return pipelines.list_runs(pipeline=pipeline, limit=limit)

    @post(
        "/runs", operation_id="startPipelineRun", sync_to_thread=True, summary="Start a run (checked first)"
    )
    def start(self, pipelines: NamedDependency[PipelineService], data: JSONBody[StartRun]) -> PipelineRun:
        return pipelines.submit(
            data.pipeline,
            data.params,
            no_cache=data.no_cache,
            no_cache_steps=data.no_cache_steps,
            partition=data.partition,
            trigger="api",
        )

    @get(
        "/runs/{run_id:int}",
        operation_id="getPipelineRun",
        sync_to_thread=True,
        summary="A run and its steps",
    )
    def get_run(self, pipelines: NamedDependency[PipelineService], run_id: FromPath[int]) -> PipelineRun:
        return pipelines.get_run(run_id)

    @get(
        "/runs/{run_id:int}/steps/{node:str}/log",
        operation_id="getPipelineStepLog",
        sync_to_thread=True,
        summary="What a step wrote (its job's log for a job step)",
    )
    def step_log(
        self, pipelines: NamedDependency[PipelineService], run_id: FromPath[int], node: FromPath[str]
    ) -> StepLog:
        return StepLog(pipelines.step_log(run_id, node))

    @post(
        "/runs/{run_id:int}/retry",
        operation_id="retryPipelineRun",
        status_code=200,
        sync_to_thread=True,
        summary="Retry one step or the failed part of a run",
    )
    def retry(
        self, pipelines: NamedDependency[PipelineService], run_id: FromPath[int], data: JSONBody[RetryRun]
    ) -> PipelineRun:
        return pipelines.retry(run_id, data.node)

    @post(
        "/runs/{run_id:int}/cancel",
        operation_id="cancelPipelineRun",
        status_code=200,
        sync_to_thread=True,
        summary="Cancel a run (its jobs are stopped)",
    )
    def cancel(self, pipelines: NamedDependency[PipelineService], run_id: FromPath[int]) -> PipelineRun:
        return pipelines.cancel(run_id)

    @post(
        "/backfills",
        operation_id="backfillPipeline",
        sync_to_thread=True,
        summary="One run per day of a range",
    )
    def backfill(
        self, pipelines: NamedDependency[PipelineService], data: JSONBody[Backfill]
    ) -> list[PipelineRun]:
        return pipelines.backfill(
            data.pipeline, data.start, data.end, parallel=data.parallel, params=data.params
        )

    @get(
        "/schedules",
        operation_id="listPipelineSchedules",
        sync_to_thread=True,
        summary="Cron and folder triggers",
    )
    def schedules(self, pipelines: NamedDependency[PipelineService]) -> list[Schedule]:
        return pipelines.schedules()

    @post("/schedules", operation_id="addPipelineSchedule", sync_to_thread=True, summary="Add a trigger")
    def add_schedule(
        self, pipelines: NamedDependency[PipelineService], data: JSONBody[AddSchedule]
    ) -> Schedule:
        return pipelines.add_schedule(data.pipeline, data.kind, data.spec, data.params, catchup=data.catchup)

    @delete(
        "/schedules/{schedule_id:int}",
        operation_id="removePipelineSchedule",
        sync_to_thread=True,
        summary="Remove a trigger",
    )
    def remove_schedule(
        self, pipelines: NamedDependency[PipelineService], schedule_id: FromPath[int]
    ) -> None:
        pipelines.remove_schedule(schedule_id)

    @get(
        "/lineage",
        operation_id="getLineage",
        sync_to_thread=True,
        summary="A prediction back to the raw files (request_id), or a raw file forward (path)",
    )
    def lineage(
        self,
        pipelines: NamedDependency[PipelineService],
        request_id: Annotated[str | None, QueryParameter(description="a served request's id")] = None,
        path: Annotated[str | None, QueryParameter(description="a raw file's absolute path")] = None,
    ) -> LineageGraph:
        if (request_id is None) == (path is None):
            raise InvalidInput("give exactly one of request_id and path", field="request_id")
        if request_id is not None:
            return pipelines.lineage_back(request_id)
        return pipelines.lineage_forward(path or "")

    @get(
        "/lineage/made-by",
        operation_id="getMadeBy",
        sync_to_thread=True,
        summary="The step runs that made an artifact, dataset, training set, model version or prediction segment",
    )
    def made_by(
        self,
        pipelines: NamedDependency[PipelineService],
        kind: Annotated[str, QueryParameter(description="frame, array, dataset, model, training_set, ...")],
        ref: Annotated[str, QueryParameter(description="its hash, name/version, id or segment")],
    ) -> list[MadeBy]:
        return pipelines.made_by(kind, ref)
