"""ONNX models run by onnxruntime (when it is installed).

Saved from an ``onnx.ModelProto`` or the bytes of one (``flavor="onnx"``).
Inputs are fed by name: a single array goes to the model's only input, a dict
by its keys. Arrays are cast to the dtype each input declares (a JSON number
arrives as float64, most models take float32). One output comes back as an
array, several as a dict by output name.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.registry.flavors.base import Flavor, Predictor, as_matrix, chosen_file, frame_library
from mlbox.store.errors import InvalidInput

MODEL_FILE = "model.onnx"
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _providers(device: str) -> list[Any]:
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxPredictor:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = {i.name: _ORT_TYPES.get(i.type) for i in session.get_inputs()}
        self.outputs = [o.name for o in session.get_outputs()]

    def _feed(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping) and frame_library(inputs) is None:
            values = {str(k): np.asarray(v) for k, v in inputs.items()}
        elif len(self.inputs) == 1:
            values = {next(iter(self.inputs)): as_matrix(inputs)}
        else:
            raise InvalidInput(f"this model takes named inputs {list(self.inputs)}", field="inputs")
        feed = {}
        for name, dtype in self.inputs.items():
            if name not in values:
                raise InvalidInput(f"{name}: missing input", field=name)
            arr = values[name]
            feed[name] = arr.astype(dtype) if dtype is not None and arr.dtype != dtype else arr
        return feed

    def predict(self, inputs: Any) -> Any:
        results = self.session.run(None, self._feed(inputs))
        if len(results) == 1:
            return np.asarray(results[0])
        return {name: np.asarray(value) for name, value in zip(self.outputs, results, strict=True)}


class OnnxFlavor(Flavor):
    name = "onnx"

    def detect(self, model: object) -> bool:
        if "onnx" not in sys.modules:
            return False
        import onnx

        return isinstance(model, onnx.ModelProto)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        if isinstance(model, (bytes, bytearray)):
            data = bytes(model)
        elif hasattr(model, "SerializeToString"):
            data = model.SerializeToString()
        else:
            raise InvalidInput(f"{type(model).__name__} is not an ONNX model", field="model")
        (folder / MODEL_FILE).write_bytes(data)
        return {"file": MODEL_FILE}

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"file": chosen_file(folder, options, (".onnx",), self.name)}

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        try:
            import onnxruntime
        except ImportError:
            raise InvalidInput(
                "the onnx flavor needs onnxruntime: pip install onnxruntime", field="flavor"
            ) from None
        session = onnxruntime.InferenceSession(str(folder / manifest["file"]), providers=_providers(device))
        return OnnxPredictor(session)


FLAVOR = OnnxFlavor()
