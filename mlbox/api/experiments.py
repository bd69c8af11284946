"""Experiments: named groups of runs."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from mlbox.api.schemas import NewExperiment
from mlbox.tracking.schemas import Experiment
from mlbox.tracking.service import TrackingService


class ExperimentController(Controller):
    path = "/api/v1/experiments"
    tags = ("experiments",)

    @get(operation_id="listExperiments", sync_to_thread=True, summary="All experiments with run counts")
    def list_experiments(self, tracking: NamedDependency[TrackingService]) -> list[Experiment]:
        return tracking.list_experiments()

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
