"""XGBoost boosters in XGBoost's own UBJSON format (when xgboost is installed).

A ``xgboost.Booster`` is saved with ``save_model``; the scikit-learn wrappers
(``XGBClassifier`` …) are estimators and go to the sklearn flavor. Prediction
uses ``inplace_predict`` (no DMatrix copy); ``device`` is handed to XGBoost.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.registry.flavors.base import Flavor, Predictor, as_matrix, as_pandas, chosen_file, frame_library

MODEL_FILE = "model.ubj"


class XgboostPredictor:
    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, inputs: Any) -> Any:
        if frame_library(inputs) is not None or isinstance(inputs, Mapping):
            x = as_pandas(inputs)
        else:
            x = as_matrix(inputs)
        return np.asarray(self.booster.inplace_predict(x))


class XgboostFlavor(Flavor):
    name = "xgboost"

    def detect(self, model: object) -> bool:
        if "xgboost" not in sys.modules:
            return False
        import xgboost

        return isinstance(model, xgboost.Booster)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        import xgboost

        model.save_model(str(folder / MODEL_FILE))
        return {"file": MODEL_FILE, "xgboost_version": xgboost.__version__}

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"file": chosen_file(folder, options, (".ubj", ".json", ".xgb"), self.name)}

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(folder / manifest["file"]))
        booster.set_param({"device": device})
        return XgboostPredictor(booster)


FLAVOR = XgboostFlavor()
