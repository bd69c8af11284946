"""scikit-learn estimators and pipelines, pickled (protocol 5).

``predict`` calls the method named in the manifest (``predict`` unless
``options={"method": "predict_proba"}``). An estimator fitted on a frame keeps
its column names, so it is handed a pandas frame; one fitted on arrays gets
an array.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.registry.flavors import pickling
from mlbox.registry.flavors.base import Flavor, Predictor, as_matrix, as_pandas, method_option, single_file

MODEL_FILE = "model.pkl"


class SklearnPredictor:
    def __init__(self, model: Any, method: str) -> None:
        self.model = model
        self._call = getattr(model, method)
        self._by_name = getattr(model, "feature_names_in_", None) is not None

    def predict(self, inputs: Any) -> Any:
        if self._by_name and not isinstance(inputs, np.ndarray):
            x = as_pandas(inputs)
        else:
            x = as_matrix(inputs)
        return np.asarray(self._call(x))


class SklearnFlavor(Flavor):
    name = "sklearn"

    def detect(self, model: object) -> bool:
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        import sklearn

        method = method_option(model, options)
        pickling.dump(model, folder / MODEL_FILE)
        return {
            "file": MODEL_FILE,
            "serialization": "pickle",
            "method": method,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "sklearn_version": sklearn.__version__,
        }

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        file = single_file(folder, (".pkl", ".pickle", ".joblib"), self.name)
        return {
            "file": file,
            "serialization": "joblib" if file.endswith(".joblib") else "pickle",
            "method": method_option(None, options),
        }

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        path = folder / manifest["file"]
        if manifest.get("serialization") == "joblib":
            import joblib

            model = joblib.load(path)
        else:
            model = pickling.load(path)
        return SklearnPredictor(model, method_option(model, manifest))


FLAVOR = SklearnFlavor()
