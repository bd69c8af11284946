"""Saving, logging and loading models for `mlbox.mlflow`'s flavor modules (``sklearn``, ``pytorch``).

A logged model is an mlbox model folder (the flavor's files and the manifest,
plus the signature when an input example is given) under the run's
``<name>/`` artifact, which ``register_model("runs:/ID/<name>", ...)``
registers and ``pyfunc.load_model`` loads back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlbox.mlflow.entities import ModelInfo
from mlbox.store.errors import InvalidInput


def log_model(
    model: Any,
    flavor: str,
    *,
    name: str | None,
    artifact_path: str | None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    options: dict[str, Any] | None = None,
) -> ModelInfo:
    import mlbox.mlflow as mlflow
    from mlbox.registry.flavors import save_model
    from mlbox.registry.staging import logged_signature

    where = name or artifact_path or "model"
    example = _example(input_example)
    with tempfile.TemporaryDirectory(prefix="mlbox-mlflow-model-") as tmp:
        folder = Path(tmp) / where.rsplit("/", 1)[-1]
        manifest = save_model(model, folder, flavor=flavor, example_input=example, options=options or {})
        if example is not None:
            logged_signature(folder, manifest, example)
        run_id = mlflow._log_model_folder(folder, where)
    uri = f"runs:/{run_id}/{where}"
    version = None
    if registered_model_name:
        version = int(mlflow.register_model(uri, registered_model_name).version)
    return ModelInfo(
        artifact_path=where,
        run_id=run_id,
        model_uri=uri,
        flavors={flavor: {}},
        registered_model_version=version,
    )


def _example(value: Any) -> Any:
    """A pandas frame as named columns (what mlbox's signature inference reads), else as given."""
    if value is None:
        return None
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        import numpy as np

        return {str(c): np.asarray(value[c]) for c in value.columns}
    return value


class PyFuncModel:
    """A loaded model with MLflow's ``predict``; ``unwrap_python_model()`` gives the framework's."""

    def __init__(self, predictor: Any, keep: Any = None, metadata: Any = None) -> None:
        self._predictor = predictor
        self._keep = keep  # the temporary folder a runs:/ model was copied into
        self.metadata = metadata

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._predictor.predict(_example(data))

    def unwrap_python_model(self) -> Any:
        return getattr(self._predictor, "model", self._predictor)


def load(model_uri: str) -> PyFuncModel:
    """``models:/name@alias``, ``models:/name/3`` (registry, verified cache) or ``runs:/ID/path``."""
    import mlbox.mlflow as mlflow
    from mlbox.mlflow import protocol as p
    from mlbox.registry import flavors

    uri = str(model_uri)
    if uri.startswith("models:/"):
        ref = uri.removeprefix("models:/")
        loaded = mlflow._registry().load(ref)
        return PyFuncModel(loaded.predictor, metadata=loaded.version)
    if uri.startswith("runs:/"):
        run_id, path = p.parse_source(uri, None)
        tracking = mlflow._tracking()
        keep = tempfile.TemporaryDirectory(prefix="mlbox-mlflow-load-")
        folder = Path(keep.name) / "model"
        found = [a for a in tracking.list_artifacts(run_id) if a.path.startswith(f"{path}/")]
        if not found:
            raise InvalidInput(f"run {run_id} has no model at {path!r}", field="model_uri")
        for a in found:
            target = folder / a.path[len(path) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                for chunk in tracking.read_artifact(run_id, a.path):  # verified against its sha256
                    f.write(chunk)
        manifest = flavors.read_manifest(folder)
        if manifest is None:
            raise InvalidInput(f"{uri}: not a model logged by mlbox (no manifest)", field="model_uri")
        return PyFuncModel(flavors.load_model(folder, manifest), keep=keep)
    raise InvalidInput(
        f"{uri!r}: give models:/NAME@ALIAS, models:/NAME/VERSION or runs:/ID/PATH", field="model_uri"
    )
