"""``mlflow.pyfunc``: load any logged or registered model with a ``predict``."""

from __future__ import annotations

from typing import Any

from mlbox.mlflow.models import PyFuncModel, load

__all__ = ["PyFuncModel", "load_model"]


def load_model(
    model_uri: str, suppress_warnings: bool = False, dst_path: str | None = None, **_: Any
) -> PyFuncModel:
    return load(model_uri)
