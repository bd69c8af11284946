"""LightGBM boosters in LightGBM's own text format (when lightgbm is installed).

A ``lightgbm.Booster`` is saved with ``save_model``; the scikit-learn
wrappers (``LGBMClassifier`` …) are estimators and go to the sklearn flavor,
which keeps their ``predict`` returning classes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.registry.flavors.base import Flavor, Predictor, as_matrix, as_pandas, chosen_file, frame_library

MODEL_FILE = "model.txt"


class LightgbmPredictor:
    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, inputs: Any) -> Any:
        if frame_library(inputs) is not None or isinstance(inputs, Mapping):
            x = as_pandas(inputs)
        else:
            x = as_matrix(inputs)
        return np.asarray(self.booster.predict(x))


class LightgbmFlavor(Flavor):
    name = "lightgbm"

    def detect(self, model: object) -> bool:
        if "lightgbm" not in sys.modules:
            return False
        import lightgbm

        return isinstance(model, lightgbm.Booster)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        import lightgbm

        model.save_model(str(folder / MODEL_FILE))
        return {"file": MODEL_FILE, "lightgbm_version": lightgbm.__version__}

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"file": chosen_file(folder, options, (".txt", ".lgb"), self.name)}

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        import lightgbm

        return LightgbmPredictor(lightgbm.Booster(model_file=str(folder / manifest["file"])))


FLAVOR = LightgbmFlavor()
