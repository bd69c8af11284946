"""Hyper-parameter sweeps over HTTP: start, follow, stop, and register the best trial's model.

Every route needs the management token (the app-wide guard). A sweep started
here takes a declared search space (JSON, `mlbox.sweeps.space`); a Python
space (define-by-run) runs its code in the appliance's own process, so it is
accepted from the CLI and the Python client only, never over the wire.

Trials' environment: as for jobs (`mlbox.api.jobs`), the body's ``env`` is
laid over what ``env_policy`` names (default ``appliance``: the appliance's
environment; ``clean``; ``inherit``: ``env`` is the whole environment).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.registry.schemas import ModelVersion
from mlbox.store.errors import InvalidInput
from mlbox.sweeps.schemas import Sweep, SweepDetail, SweepSpec, Trial
from mlbox.sweeps.service import SweepService


class RegisterBest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/sweeps/{id}/register``: the model name to register under."""

    name: str
    artifact_path: str = "model"


class Curve(msgspec.Struct, frozen=True):
    number: int
    points: list[tuple[int, float | None]]


class SweepController(Controller):
    path = "/api/v1/sweeps"
    tags = ("sweeps",)

    @get(operation_id="listSweeps", sync_to_thread=True, summary="Sweeps, newest first")
    def list_sweeps(
        self,
        sweeps: NamedDependency[SweepService],
        states: Annotated[
            list[str] | None, QueryParameter(name="state", description="only sweeps in these states")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[Sweep]:
        return sweeps.list_sweeps(states=states, limit=limit)

    @post(operation_id="createSweep", sync_to_thread=True, summary="Start a sweep (a declared space)")
    def create(self, sweeps: NamedDependency[SweepService], data: JSONBody[SweepSpec]) -> Sweep:
        if data.space_source is not None:
            raise InvalidInput(
                "a Python search space is accepted from the CLI and the Python client only;"
                " send 'space' as a mapping",
                field="space_source",
            )
        return sweeps.create(data)

    @get("/{sweep_id:int}", operation_id="getSweep", sync_to_thread=True, summary="A sweep with its trials")
    def get_sweep(self, sweeps: NamedDependency[SweepService], sweep_id: FromPath[int]) -> SweepDetail:
        return sweeps.detail(sweep_id)

    @get(
        "/{sweep_id:int}/curves",
        operation_id="getSweepCurves",
        sync_to_thread=True,
        summary="Each trial's reported intermediate values (step, value)",
    )
    def curves(self, sweeps: NamedDependency[SweepService], sweep_id: FromPath[int]) -> list[Curve]:
        return [Curve(n, pts) for n, pts in sweeps.curves(sweep_id).items()]

    @post(
        "/{sweep_id:int}/stop",
        operation_id="stopSweep",
        status_code=200,
        sync_to_thread=True,
        summary="Ask no more trials and cancel the running ones",
    )
    def stop(self, sweeps: NamedDependency[SweepService], sweep_id: FromPath[int]) -> Sweep:
        return sweeps.stop(sweep_id)

    @get(
        "/{sweep_id:int}/best",
        operation_id="getSweepBest",
        sync_to_thread=True,
        summary="The best complete trial",
    )
    def best(self, sweeps: NamedDependency[SweepService], sweep_id: FromPath[int]) -> Trial:
        return sweeps.best(sweep_id)

    @post(
        "/{sweep_id:int}/register",
        operation_id="registerSweepBest",
        sync_to_thread=True,
        summary="Register the best trial's logged model as a new model version",
    )
    def register(
        self, sweeps: NamedDependency[SweepService], sweep_id: FromPath[int], data: JSONBody[RegisterBest]
    ) -> ModelVersion:
        return sweeps.register_best(sweep_id, data.name, artifact_path=data.artifact_path)
