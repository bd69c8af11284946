"""The pipelines service over HTTP (every route needs the token)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from mlbox.pipelines.service import PipelineService


class PipelineController(Controller):
    path = "/api/v1/pipelines"
    tags = ("pipelines",)

    @get(operation_id="listPipelines", sync_to_thread=True, summary="All of them")
    def list_all(self, pipelines: NamedDependency[PipelineService]) -> list[str]:
        return pipelines.names()
