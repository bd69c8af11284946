"""``MlflowClient``: MLflow's lower-level client, over mlbox's stores, with MLflow's meanings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlbox.mlflow as mlflow
from mlbox.mlflow import protocol as p
from mlbox.mlflow.entities import Experiment, FileInfo, Metric, ModelVersion, RegisteredModel, Run
from mlbox.store.errors import InvalidInput, NotFound


class MlflowClient:
    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)

    # -- experiments and runs ----------------------------------------------------------

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        return mlflow.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return mlflow.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return mlflow.get_experiment_by_name(name)

    def search_experiments(
        self, view_type: int | str = 1, max_results: int | None = None, filter_string: str | None = None,
        **_: Any,
    ) -> list[Experiment]:  # fmt: skip
        return mlflow.search_experiments(view_type, max_results, filter_string)

    def delete_experiment(self, experiment_id: str) -> None:
        """With its runs; refused while something needs one of them (every service is asked)."""
        import mlbox

        mlbox._services().tracking.delete_experiment(mlflow._experiment_of(experiment_id).id)

    def restore_experiment(self, experiment_id: str) -> None:
        mlflow._tracking().restore_experiment(mlflow._experiment_of(experiment_id).id)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """MLflow's rename: runs follow (they record the experiment's id); a taken name is refused."""
        mlflow._tracking().rename_experiment(mlflow._experiment_of(experiment_id).id, new_name)

    def create_run(self, experiment_id: str, start_time: int | None = None, tags: dict[str, Any] | None = None,
                   run_name: str | None = None) -> Run:  # fmt: skip
        exp = mlflow._experiment_of(experiment_id)
        now = None if start_time is None else start_time / 1000.0
        run = mlflow._tracking().create_run(
            exp.name, run_name, tags={k: str(v) for k, v in (tags or {}).items()}, now=now
        )
        return mlflow._run_entity(run)

    def get_run(self, run_id: str) -> Run:
        return mlflow.get_run(run_id)

    def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None:
        rid = p.int_id(run_id, "run_id")
        mlbox_status = p.status_from_mlflow(status or "FINISHED")
        mlflow._tracking().end_run(rid, mlbox_status, now=None if end_time is None else end_time / 1000.0)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        if status and status != "RUNNING":
            self.set_terminated(run_id, status)

    def delete_run(self, run_id: str) -> None:
        """Refused as ``mlbox runs delete`` refuses (`mlbox.delete_run`): what needs the run is named."""
        import mlbox

        mlbox.delete_run(p.int_id(run_id, "run_id"))

    def restore_run(self, run_id: str) -> None:
        import mlbox

        mlbox.restore_run(p.int_id(run_id, "run_id"))

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", run_view_type: int = 1,
                    max_results: int = 1000, order_by: list[str] | None = None, page_token: str | None = None) -> list[Run]:  # fmt: skip
        runs: list[Run] = mlflow.search_runs(
            experiment_ids,
            filter_string,
            run_view_type,
            max_results=max_results,
            order_by=order_by,
            output_format="list",
        )
        return runs

    # -- logging ---------------------------------------------------------------------------

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None, step: int | None = None,
                   **_: Any) -> None:  # fmt: skip
        mlflow.log_metric(key, value, step=step, timestamp=timestamp, run_id=run_id, synchronous=True)

    def log_param(self, run_id: str, key: str, value: Any, **_: Any) -> Any:
        mlflow._tracking().log_params(p.int_id(run_id, "run_id"), {key: value})
        return value

    def set_tag(self, run_id: str, key: str, value: Any, **_: Any) -> None:
        mlflow._tracking().set_tags(p.int_id(run_id, "run_id"), {key: str(value)})

    def delete_tag(self, run_id: str, key: str) -> None:
        """MLflow's ``delete_tag``: `NotFound` when the run has no such tag; refused on a deleted run."""
        mlflow._tracking().delete_tag(p.int_id(run_id, "run_id"), key)

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = (), **_: Any) -> None:
        rid = p.int_id(run_id, "run_id")
        tracking = mlflow._tracking()
        if params:
            tracking.log_params(rid, {x.key: x.value for x in params})
        if tags:
            tracking.set_tags(rid, {x.key: str(x.value) for x in tags})
        if metrics:
            tracking.log_points(rid, [(m.key, m.step or 0, m.timestamp / 1000.0, m.value) for m in metrics])

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        rid = p.int_id(run_id, "run_id")
        try:
            points = mlflow._tracking().metric_history(rid, key)
        except NotFound:
            mlflow._tracking().get_run(rid)
            return []
        return [Metric.of(key, pt) for pt in points]

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(local_path, artifact_path, run_id=run_id)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        mlflow.log_text(text, artifact_file, run_id=run_id)

    def log_dict(self, run_id: str, dictionary: dict[str, Any], artifact_file: str) -> None:
        mlflow.log_dict(dictionary, artifact_file, run_id=run_id)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        from mlbox.api.mlflow_artifacts import children

        rid = p.int_id(run_id, "run_id")
        files = [(a.path, a.size) for a in mlflow._tracking().list_artifacts(rid)]
        prefix = (path or "").strip("/")
        out = []
        for item in children(files, prefix):
            full = f"{prefix}/{item['path']}" if prefix else item["path"]
            out.append(FileInfo(full, bool(item["is_dir"]), item.get("file_size")))
        return out

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        import tempfile

        rid = p.int_id(run_id, "run_id")
        tracking = mlflow._tracking()
        dst = Path(dst_path or tempfile.mkdtemp(prefix="mlbox-mlflow-"))
        rel = path.strip("/")
        chosen = [a for a in tracking.list_artifacts(rid) if a.path == rel or a.path.startswith(f"{rel}/")]
        if not chosen:
            raise NotFound(f"run {run_id} has no artifact {path!r}", field="path")
        for a in chosen:
            target = dst / a.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                for chunk in tracking.read_artifact(rid, a.path):
                    f.write(chunk)
        return str(dst / rel)

    # -- registry ------------------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        state = mlflow._state()
        if not state.announce_model(name, description or ""):
            raise InvalidInput(f"Registered Model (name={name}) already exists.", field="name")
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        registry = mlflow._registry()
        try:
            model = registry.get_model(name)
        except NotFound:
            announced = mlflow._state().announced(name)
            if not announced:
                raise
            description, created = announced[name]
            return RegisteredModel(name, description, p.ms(created), {}, [])
        latest = (
            []
            if model.latest_version is None
            else [ModelVersion.of(registry.get_version(name, model.latest_version))]
        )
        return RegisteredModel(
            name,
            model.description,
            p.ms(model.created_at),
            {a: str(v) for a, v in model.aliases.items()},
            latest,
        )

    def create_model_version(
        self, name: str, source: str, run_id: str | None = None, **_: Any
    ) -> ModelVersion:
        return mlflow.register_model(source, name)

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return ModelVersion.of(mlflow._registry().get_version(name, int(version)))

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        return self.get_registered_model(name).latest_versions

    def search_model_versions(
        self, filter_string: str | None = None, max_results: int = 10_000, **_: Any
    ) -> list[ModelVersion]:
        registry = mlflow._registry()
        names = [m.name for m in registry.list_models()]
        if filter_string:
            names = [n for n in names if p.name_matches(n, filter_string)]
        return [ModelVersion.of(v) for n in names for v in registry.list_versions(n)][:max_results]

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        mlflow._registry().set_alias(name, alias, int(version), note="mlflow")

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        mlflow._registry().delete_alias(name, alias, note="mlflow")

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return ModelVersion.of(mlflow._registry().resolve(f"{name}@{alias}"))

    def set_model_version_tag(self, name: str, version: str | int, key: str, value: Any) -> None:
        mlflow._state().set_tags("version", f"{name}/{int(version)}", {key: str(value)})

    def delete_model_version(self, name: str, version: str | int) -> None:
        """Deleted for good, as in MLflow; refused while an alias or a composed model needs it."""
        mlflow._registry().delete_version(name, int(version))
        mlflow._state().drop_tags("version", f"{name}/{int(version)}")

    def delete_registered_model(self, name: str) -> None:
        """The model with all its versions; refused while an alias or a composed model needs it."""
        registry = mlflow._registry()
        state = mlflow._state()
        if any(m.name == name for m in registry.list_models()):
            registry.delete_model(name)
        elif not state.announced(name):
            raise NotFound(f"Registered Model with name={name} not found", field="name")
        state.forget_model(name)

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self.get_registered_model(name)
        mlflow._state().set_tags("model", name, {key: str(value)})

    def search_registered_models(
        self, filter_string: str | None = None, max_results: int = 100, **_: Any
    ) -> list[RegisteredModel]:
        names = sorted({m.name for m in mlflow._registry().list_models()} | set(mlflow._state().announced()))
        if filter_string:
            names = [n for n in names if p.name_matches(n, filter_string)]
        return [self.get_registered_model(n) for n in names[:max_results]]

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """The registry's rename; refused while an alias is left (serving follows aliases by name)."""
        registry = mlflow._registry()
        if any(m.name == name for m in registry.list_models()):
            registry.rename_model(name, new_name)
        elif not mlflow._state().announced(name):
            raise NotFound(f"Registered Model with name={name} not found", field="name")
        mlflow._state().rename_model(name, new_name)
        return self.get_registered_model(new_name)
