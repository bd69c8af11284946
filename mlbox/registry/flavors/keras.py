"""Keras 3 models in Keras's own ``.keras`` format, on the backend they were saved with.

Keras picks its backend (TensorFlow, JAX, PyTorch) once, from
``KERAS_BACKEND``, when it is first imported. The manifest keeps the backend
the model was saved on; loading sets ``KERAS_BACKEND`` to it when neither the
variable is set nor Keras imported yet, so a model saved on PyTorch loads in
a process that has no TensorFlow. A ``.keras`` file holds the architecture as
JSON and the weights as HDF5: it is loaded with ``safe_mode`` on, which
refuses the Python lambdas a file could carry, so no code from the file runs.

Under the torch backend a Keras model is also a ``torch.nn.Module``: this
flavor is detected before ``pytorch`` so it keeps its Keras form.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.registry.flavors.base import Flavor, Predictor, as_matrix, chosen_file, frame_library
from mlbox.store.errors import InvalidInput

MODEL_FILE = "model.keras"


def import_keras(backend: str | None = None) -> Any:
    """``keras``, imported on ``backend`` unless the process already chose one."""
    if backend and "keras" not in sys.modules and "KERAS_BACKEND" not in os.environ:
        os.environ["KERAS_BACKEND"] = backend
    try:
        import keras
    except ImportError as exc:
        raise InvalidInput(
            f"the keras flavor needs Keras 3 and its backend ({backend or 'KERAS_BACKEND'}): {exc}",
            field="flavor",
        ) from None
    return keras


class KerasPredictor:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, inputs: Any) -> Any:
        if isinstance(inputs, Mapping) and frame_library(inputs) is None:
            x: Any = {str(k): np.asarray(v) for k, v in inputs.items()}
        else:
            x = as_matrix(inputs)
        out = self.model.predict_on_batch(x)
        if isinstance(out, Mapping):
            return {str(k): np.asarray(v) for k, v in out.items()}
        if isinstance(out, (list, tuple)):
            return {f"output_{i}": np.asarray(v) for i, v in enumerate(out)}
        return np.asarray(out)


class KerasFlavor(Flavor):
    name = "keras"

    def detect(self, model: object) -> bool:
        keras = sys.modules.get("keras")  # a Keras model means Keras is imported already
        return keras is not None and isinstance(model, keras.Model)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        keras = import_keras()
        if not isinstance(model, keras.Model):
            raise InvalidInput(f"{type(model).__name__} is not a Keras model", field="model")
        model.save(folder / MODEL_FILE)
        return {"file": MODEL_FILE, "keras_version": keras.__version__, "backend": keras.backend.backend()}

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        backend = options.get("backend")
        if backend is not None and backend not in ("tensorflow", "jax", "torch", "numpy"):
            raise InvalidInput(f"backend {backend!r} is not a Keras backend", field="options.backend")
        return {"file": chosen_file(folder, options, (".keras",), self.name), "backend": backend}

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        keras = import_keras(manifest.get("backend"))
        model = keras.saving.load_model(folder / manifest["file"], compile=False, safe_mode=True)
        return KerasPredictor(model)


FLAVOR = KerasFlavor()
