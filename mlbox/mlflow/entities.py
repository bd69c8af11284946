"""MLflow's entities (``Run``, ``RunInfo``, ``Experiment``, ``Metric``, ``ModelVersion``…) built from
mlbox's, with MLflow's field names and units: string ids, milliseconds, upper-case statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlbox.mlflow import protocol as p
from mlbox.registry.schemas import ModelVersion as MlboxVersion
from mlbox.tracking.schemas import Experiment as MlboxExperiment
from mlbox.tracking.schemas import MetricPoint
from mlbox.tracking.schemas import Run as MlboxRun


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str = "active"

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData

    @classmethod
    def of(cls, run: MlboxRun, *, default_id: int | None) -> Run:
        """``default_id``: the row id of mlbox's ``Default`` experiment, MLflow's ``"0"``."""
        return cls(
            info=RunInfo(
                run_id=str(run.id),
                run_name=run.name,
                experiment_id=p.experiment_id_out(run.experiment_id, default_id),
                user_id=run.tags.get("mlflow.user", ""),
                status=p.status_to_mlflow(run.status),
                start_time=p.ms(run.start_time),
                end_time=p.ms(run.end_time),
                artifact_uri=p.artifact_uri(run.id),
                lifecycle_stage="deleted" if run.deleted_at is not None else "active",
            ),
            data=RunData(
                metrics={k: float("nan") if v is None else v for k, v in run.metrics.items()},
                params=dict(run.params),
                tags={"mlflow.runName": run.name, **run.tags},
            ),
        )


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int

    @classmethod
    def of(cls, key: str, point: MetricPoint) -> Metric:
        value = float("nan") if point.value is None else point.value
        return cls(key=key, value=value, timestamp=p.ms(point.ts) or 0, step=point.step)


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str]
    creation_time: int | None
    last_update_time: int | None

    @classmethod
    def of(cls, exp: MlboxExperiment, *, tags: dict[str, str], default_id: int | None) -> Experiment:
        created = p.ms(exp.created_at)
        exp_id = p.experiment_id_out(exp.id, default_id)
        return cls(
            experiment_id=exp_id,
            name=exp.name,
            artifact_location=f"mlflow-artifacts:/experiments/{exp_id}",
            lifecycle_stage="deleted" if exp.deleted_at is not None else "active",
            tags=tags,
            creation_time=created,
            last_update_time=created,
        )


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    creation_timestamp: int | None
    run_id: str | None
    source: str
    aliases: list[str]
    description: str
    status: str = "READY"
    current_stage: str = "None"
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, mv: MlboxVersion) -> ModelVersion:
        return cls(
            name=mv.name,
            version=str(mv.version),
            creation_timestamp=p.ms(mv.created_at),
            run_id=None if mv.run_id is None else str(mv.run_id),
            source=mv.lineage.source,
            aliases=list(mv.aliases),
            description=mv.description,
        )


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    creation_timestamp: int | None
    aliases: dict[str, str]
    latest_versions: list[ModelVersion]


@dataclass(frozen=True)
class ModelInfo:
    """What ``log_model`` returns: where the model went."""

    artifact_path: str
    run_id: str
    model_uri: str
    flavors: dict[str, Any] = field(default_factory=dict)
    registered_model_version: int | None = None
    model_id: str | None = None
    """MLflow 3's logged model id (``m-...``): ``set_logged_model_tags`` takes it."""
