"""Notebook servers and headless notebook runs over HTTP.

Every route needs the management token (the app-wide guard): a notebook's
URL carries the server's own token, and a Jupyter server runs code as the
appliance's user, so only a token holder may start one or read its URL.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.api.ranges import Int64
from mlbox.notebooks.schemas import Notebook
from mlbox.notebooks.service import NotebookService
from mlbox.scheduler.schemas import Job


class StartNotebook(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/notebooks``; ``idle_timeout_s`` None: the appliance's default."""

    gpus: Int64 = 0
    idle_timeout_s: float | None = None
    root_dir: str | None = None


class RunNotebook(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/notebooks/runs``: a notebook file on the appliance's machine."""

    path: str
    params: dict[str, Any] = {}
    gpus: Int64 = 0
    timeout_s: float | None = None


class NotebookController(Controller):
    path = "/api/v1/notebooks"
    tags = ("notebooks",)

    @get(operation_id="listNotebooks", sync_to_thread=True, summary="Notebook servers, newest first")
    def list_notebooks(
        self,
        notebooks: NamedDependency[NotebookService],
        states: Annotated[
            list[str] | None, QueryParameter(name="state", description="only servers in these states")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
    ) -> list[Notebook]:
        return notebooks.list(states=states, limit=limit)

    @post(operation_id="startNotebook", sync_to_thread=True, summary="Start a JupyterLab server as a job")
    def start(self, notebooks: NamedDependency[NotebookService], data: JSONBody[StartNotebook]) -> Notebook:
        return notebooks.start(gpus=data.gpus, idle_timeout_s=data.idle_timeout_s, root_dir=data.root_dir)

    @get("/{notebook_id:int}", operation_id="getNotebook", sync_to_thread=True, summary="One server")
    def get_notebook(
        self, notebooks: NamedDependency[NotebookService], notebook_id: FromPath[int]
    ) -> Notebook:
        return notebooks.get(notebook_id)

    @post(
        "/{notebook_id:int}/stop",
        operation_id="stopNotebook",
        status_code=200,
        sync_to_thread=True,
        summary="Stop a server (its job is cancelled, its GPUs freed)",
    )
    def stop(self, notebooks: NamedDependency[NotebookService], notebook_id: FromPath[int]) -> Notebook:
        return notebooks.stop(notebook_id)

    @post(
        "/runs",
        operation_id="runNotebook",
        sync_to_thread=True,
        summary="Execute a notebook headless as a job (executed notebook and HTML kept as run artifacts)",
    )
    def run(self, notebooks: NamedDependency[NotebookService], data: JSONBody[RunNotebook]) -> Job:
        return notebooks.run(data.path, data.params, gpus=data.gpus, timeout_s=data.timeout_s)
