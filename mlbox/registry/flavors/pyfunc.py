"""MLflow ``python_function`` models: the loader the model directory names, run as MLflow runs it.

An MLflow directory whose only flavor is ``python_function`` says how to load
it in its ``MLmodel``: a ``loader_module`` (found on the directory's ``code``
paths or installed) whose ``_load_pyfunc(data path)`` returns an object with
``predict``, or a cloudpickled ``python_model`` (a ``mlflow.pyfunc.PythonModel``,
which only loads where ``mlflow`` is installed). Either way loading runs code
from the directory, so `mlbox models import` registers these only with
``--trust``. The manifest keeps what the ``MLmodel`` said; the files are the
registry's verified copy of the directory.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbox.registry.flavors.base import Flavor, Predictor
from mlbox.store.errors import InvalidInput


class PyfuncPredictor:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, inputs: Any) -> Any:
        return self.model.predict(inputs)


def _mlflow_load(folder: Path) -> Any:
    try:
        import mlflow.pyfunc
    except ImportError:
        raise InvalidInput(
            "this python_function model is loaded by MLflow itself (a cloudpickled PythonModel or an"
            " mlflow loader): install mlflow beside mlbox to serve it",
            field="flavor",
        ) from None
    return mlflow.pyfunc.load_model(str(folder))


class PyfuncFlavor(Flavor):
    name = "pyfunc"

    def detect(self, model: object) -> bool:
        return False  # files only: an object with predict is the python flavor

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        raise InvalidInput("the pyfunc flavor registers MLflow directories, not objects", field="flavor")

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        import yaml

        path = folder / "MLmodel"
        if not path.is_file():
            raise InvalidInput("the pyfunc flavor needs an MLflow MLmodel file", field="artifact_path")
        mlmodel = yaml.safe_load(path.read_text())
        conf = (mlmodel.get("flavors") or {}).get("python_function") if isinstance(mlmodel, dict) else None
        if not isinstance(conf, dict):
            raise InvalidInput("the MLmodel file has no python_function flavor", field="artifact_path")
        code = conf.get("code")
        return {
            "loader_module": conf.get("loader_module"),
            "python_model": conf.get("python_model"),
            "data": conf.get("data"),
            "code": [code] if isinstance(code, str) else None,
        }

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        loader = manifest.get("loader_module")
        if manifest.get("python_model") or not isinstance(loader, str) or loader.startswith("mlflow."):
            return PyfuncPredictor(_mlflow_load(folder))
        for code in manifest.get("code") or []:
            path = str(folder / code)
            if path not in sys.path:
                sys.path.insert(0, path)
        try:
            module = importlib.import_module(loader)
        except ImportError as exc:
            raise InvalidInput(
                f"cannot import the model's loader {loader!r}: {exc}", field="flavor"
            ) from None
        data = manifest.get("data")
        return PyfuncPredictor(module._load_pyfunc(str(folder / data) if data else str(folder)))


FLAVOR = PyfuncFlavor()
