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


class ModelSignature:
    """MLflow's ``infer_signature(model_input, model_output)``: what the model takes and gives.

    mlbox infers a version's signature from the saved model run on an example
    input (`mlbox.registry.staging.logged_signature`), so this keeps a few rows
    of ``model_input`` for `log_model` to use when no ``input_example`` is
    given; ``inputs`` and ``outputs`` describe them as MLflow prints them."""

    def __init__(self, model_input: Any, model_output: Any = None) -> None:
        self.example = _rows(model_input, 5)
        self.inputs = _describe(model_input)
        self.outputs = None if model_output is None else _describe(model_output)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs}

    def __repr__(self) -> str:
        return f"inputs: {self.inputs}\noutputs: {self.outputs}"


def infer_signature(model_input: Any, model_output: Any = None, params: Any = None) -> ModelSignature:
    return ModelSignature(model_input, model_output)


def _rows(value: Any, n: int) -> Any:
    if hasattr(value, "iloc"):
        return value.iloc[:n]
    if hasattr(value, "shape") and getattr(value, "ndim", 0) >= 1:
        return value[:n]
    if isinstance(value, dict):
        return {k: _rows(v, n) for k, v in value.items()}
    return value


def _describe(value: Any) -> Any:
    """Columns and their types (a frame, a dict of arrays) or the dtype and shape (an array)."""
    if hasattr(value, "dtypes") and hasattr(value, "columns"):
        return [{"name": str(c), "type": str(t)} for c, t in value.dtypes.items()]
    if isinstance(value, dict):
        return [{"name": str(k), **_describe(v)} for k, v in value.items()]
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return {"type": "tensor", "dtype": str(value.dtype), "shape": [-1, *value.shape[1:]]}
    return {"type": type(value).__name__}


def log_model(
    model: Any,
    flavor: str,
    *,
    name: str | None,
    artifact_path: str | None,
    input_example: Any = None,
    signature: Any = None,
    registered_model_name: str | None = None,
    options: dict[str, Any] | None = None,
) -> ModelInfo:
    """Save ``model`` in mlbox's ``flavor`` under the active run's ``<name>/``; the signature is
    inferred from ``input_example``, else from the rows an `infer_signature` result kept."""
    import mlbox.mlflow as mlflow
    from mlbox.registry.flavors import save_model
    from mlbox.registry.staging import logged_signature

    where = name or artifact_path or "model"
    if input_example is None and isinstance(signature, ModelSignature):
        input_example = signature.example
    example = _example(input_example)
    with tempfile.TemporaryDirectory(prefix="mlbox-mlflow-model-") as tmp:
        folder = Path(tmp) / where.rsplit("/", 1)[-1]
        manifest = save_model(model, folder, flavor=flavor, example_input=example, options=options or {})
        if example is not None:
            logged_signature(folder, manifest, example)
        run_id = mlflow._log_model_folder(folder, where)
    run = mlflow._tracking().get_run(int(run_id))
    logged = mlflow._state().create_logged_model(
        experiment_id=str(run.experiment_id),
        run_id=run.id,
        name=where.rsplit("/", 1)[-1],
        model_type=flavor,
        params={},
        tags={},
        artifact_path=where,
        status="LOGGED_MODEL_READY",
    )
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
        model_id=logged.model_id,
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
