"""``mlflow.pytorch``: log and load torch modules (mlbox's pytorch flavor)."""

from __future__ import annotations

from typing import Any

from mlbox.mlflow.entities import ModelInfo
from mlbox.mlflow.models import load
from mlbox.mlflow.models import log_model as _log_model


def log_model(
    pytorch_model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    **_ignored: Any,
) -> ModelInfo:
    return _log_model(
        pytorch_model,
        "pytorch",
        name=name,
        artifact_path=artifact_path,
        input_example=input_example,
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, **_: Any) -> Any:
    return load(model_uri).unwrap_python_model()
