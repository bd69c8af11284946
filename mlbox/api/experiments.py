"""Experiments: named groups of runs."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.api.schemas import ExperimentChange, NewExperiment
from mlbox.tracking.lifecycle import check_lifecycle
from mlbox.tracking.schemas import Experiment
from mlbox.tracking.service import TrackingService

LIFECYCLE = QueryParameter(description="active (default), deleted (restorable until purged) or all")


class ExperimentController(Controller):
    path = "/api/v1/experiments"
    tags = ("experiments",)

    @get(operation_id="listExperiments", sync_to_thread=True, summary="All experiments with run counts")
    def list_experiments(
        self, tracking: NamedDependency[TrackingService], lifecycle: Annotated[str, LIFECYCLE] = "active"
    ) -> list[Experiment]:
        return tracking.list_experiments(check_lifecycle(lifecycle))

    @post(operation_id="createExperiment", sync_to_thread=True, summary="Create an experiment")
    def create_experiment(
        self, tracking: NamedDependency[TrackingService], data: JSONBody[NewExperiment]
    ) -> Experiment:
        return tracking.create_experiment(data.name, data.description)

    @get(
        "/{experiment_id:int}",
        operation_id="getExperiment",
        sync_to_thread=True,
        summary="One experiment by id",
    )
    def get_experiment(
        self, tracking: NamedDependency[TrackingService], experiment_id: FromPath[int]
    ) -> Experiment:
        return tracking.get_experiment(experiment_id)

    @patch(
        "/{experiment_id:int}",
        operation_id="renameExperiment",
        sync_to_thread=True,
        summary="Rename an experiment (409 when the name is taken, the experiment deleted or Default)",
    )
    def rename_experiment(
        self,
        tracking: NamedDependency[TrackingService],
        experiment_id: FromPath[int],
        data: JSONBody[ExperimentChange],
    ) -> Experiment:
        return tracking.rename_experiment(experiment_id, data.name)

    @delete(
        "/{experiment_id:int}",
        operation_id="deleteExperiment",
        status_code=200,
        sync_to_thread=True,
        summary="Delete an experiment and its runs (restorable until purged; 409 naming what needs a run)",
    )
    def delete_experiment(
        self, tracking: NamedDependency[TrackingService], experiment_id: FromPath[int]
    ) -> Experiment:
        return tracking.delete_experiment(experiment_id)

    @post(
        "/{experiment_id:int}/restore",
        operation_id="restoreExperiment",
        status_code=200,
        sync_to_thread=True,
        summary="Restore a deleted experiment with the runs deleted with it",
    )
    def restore_experiment(
        self, tracking: NamedDependency[TrackingService], experiment_id: FromPath[int]
    ) -> Experiment:
        return tracking.restore_experiment(experiment_id)
