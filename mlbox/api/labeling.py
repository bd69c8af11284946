"""The labeling service over HTTP (every route needs the token)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from mlbox.labeling.service import LabelingService


class LabelingController(Controller):
    path = "/api/v1/labeling/projects"
    tags = ("labeling",)

    @get(operation_id="listLabelingProjects", sync_to_thread=True, summary="All of them")
    def list_all(self, labeling: NamedDependency[LabelingService]) -> list[str]:
        return labeling.list()
