"""Any Python object with a ``predict`` method, pickled.

The object's class must live in an importable module (not ``__main__``):
the appliance unpickles it in another process. Inputs reach ``predict`` as the
signature validated them (an array, a dict of arrays or a frame).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbox.registry.flavors import pickling
from mlbox.registry.flavors.base import Flavor, Predictor, chosen_file, method_option

MODEL_FILE = "model.pkl"


class PythonPredictor:
    def __init__(self, model: Any, method: str) -> None:
        self.model = model
        self._call = getattr(model, method)

    def predict(self, inputs: Any) -> Any:
        return self._call(inputs)


class PythonFlavor(Flavor):
    name = "python"

    def detect(self, model: object) -> bool:
        return callable(getattr(model, "predict", None))

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        method = method_option(model, options)
        pickling.dump(model, folder / MODEL_FILE)
        return {
            "file": MODEL_FILE,
            "method": method,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
        }

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "file": chosen_file(folder, options, (".pkl", ".pickle"), self.name),
            "method": method_option(None, options),
        }

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        model = pickling.load(folder / manifest["file"])
        return PythonPredictor(model, method_option(model, manifest))


FLAVOR = PythonFlavor()
