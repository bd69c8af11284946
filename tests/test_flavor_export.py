"""Every flavor out to an MLflow directory and back: register → ``mlbox models export`` →
``mlbox models import`` → served over the Open Inference Protocol → the same predictions.

Each case also checks what MLflow's loader for that framework reads (the flavor's keys in
``MLmodel``, the files where its loader looks, pinned requirements) and that a flavor whose
loading unpickles is only imported with ``--trust``. That real MLflow and MLServer score these
directories the same is `tests.test_mlflow_roundtrip` (opt-in: it installs them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from mlbox.services import Services
from tests.helpers import ok, run_main
from tests.models import MLP, Doubler
from tests.serving.server import http_client, oip, start_serving

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 without TensorFlow


@dataclass(frozen=True)
class Case:
    """A model to register, the MLflow flavor its export must carry and the files MLflow reads."""

    build: Callable[[np.ndarray, np.ndarray], Any]
    flavor: str
    mlflow_flavor: str
    files: tuple[str, ...]
    pickled: bool
    options: dict[str, Any] | None = None


def _xy() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=120, n_features=8, n_informative=5, n_classes=3, random_state=0)
    return x.astype(np.float32), y


def _sklearn(x: np.ndarray, y: np.ndarray) -> Any:
    return LogisticRegression(max_iter=500).fit(x, y)


def _mlp(x: np.ndarray, y: np.ndarray) -> Any:
    import torch

    torch.manual_seed(0)
    return MLP().eval()


def _onnx(x: np.ndarray, y: np.ndarray) -> Any:
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    model = LogisticRegression(max_iter=500).fit(x, y)
    return skl2onnx.convert_sklearn(
        model,
        initial_types=[("x", FloatTensorType([None, x.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )


def _lightgbm(x: np.ndarray, y: np.ndarray) -> Any:
    lgb = pytest.importorskip("lightgbm")
    params = {"objective": "binary", "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, y > 0), 8)


def _xgboost(x: np.ndarray, y: np.ndarray) -> Any:
    xgb = pytest.importorskip("xgboost")
    return xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=y > 0), 8)


def _keras(x: np.ndarray, y: np.ndarray) -> Any:
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()} in this process, not torch")
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((x.shape[1],)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)]
    )


def _python(x: np.ndarray, y: np.ndarray) -> Any:
    return Doubler(3.0)


CASES = {
    "sklearn": Case(_sklearn, "sklearn", "sklearn", ("model.pkl",), pickled=True),
    "pytorch-export": Case(_mlp, "pytorch", "pytorch", ("data/model.pt2",), pickled=False),
    "pytorch-torchscript": Case(
        _mlp,
        "pytorch",
        "pytorch",
        ("data/model.pth", "data/pickle_module_info.txt"),
        pickled=True,
        options={"form": "torchscript"},
    ),
    "onnx": Case(_onnx, "onnx", "onnx", ("model.onnx",), pickled=False),
    "lightgbm": Case(_lightgbm, "lightgbm", "lightgbm", ("model.txt",), pickled=False),
    "xgboost": Case(_xgboost, "xgboost", "xgboost", ("model.ubj",), pickled=False),
    "keras": Case(_keras, "keras", "keras", ("data/model.keras", "data/keras_module.txt"), pickled=False),
    "python": Case(_python, "python", "python_function", ("model.pkl", "code/mlbox_pyfunc.py"), pickled=True),
}


def outputs(body: dict[str, Any]) -> list[np.ndarray]:
    """An OIP response's outputs as arrays of their shapes, in order."""
    return [np.asarray(o["data"]).reshape(o["shape"]) for o in body["outputs"]]


def as_list(prediction: Any) -> list[np.ndarray]:
    if isinstance(prediction, dict):
        return [np.asarray(v) for v in prediction.values()]
    return [np.asarray(prediction)]


@pytest.mark.parametrize("case", list(CASES))
def test_export_import_serve_round_trip(
    case: str, services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path, home: Path
) -> None:
    spec = CASES[case]
    x, y = _xy()
    rows = x[::9]
    registry = services.registry
    original = registry.register("m", model=spec.build(x, y), example_input=x[:4], options=spec.options)
    assert original.flavor == spec.flavor
    expected = as_list(registry.load("m").predict(rows))

    exported = tmp_path / "exported"
    ok(capsys, "models", "export", "m/1", str(exported))
    mlmodel = yaml.safe_load((exported / "MLmodel").read_text())
    assert spec.mlflow_flavor in mlmodel["flavors"]
    assert "python_function" in mlmodel["flavors"]  # what mlflow models serve and MLServer load
    for file in spec.files:
        assert (exported / file).is_file(), file
    assert original.signature is not None
    assert json.loads(mlmodel["signature"]["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 8]}}
    ]
    assert json.loads((exported / "input_example.json").read_text()) == {"inputs": [[0.0] * 8]}
    requirements = (exported / "requirements.txt").read_text().split()
    assert requirements[0] == "mlflow" and len(requirements) > 1
    assert all("==" in r and "+" not in r for r in requirements[1:]), requirements

    if spec.pickled:
        code, _, err = run_main(capsys, "models", "import", str(exported), "--name", "back")
        assert code == 2 and "--trust" in err and "pickled" in err
    trust = ["--trust"] if spec.pickled else []
    ok(capsys, "models", "import", str(exported), "--name", "back", *trust)
    back = registry.resolve("back")
    assert back.flavor == spec.flavor
    assert back.signature is not None and back.signature.inputs == original.signature.inputs

    serving = start_serving(registry, home)
    try:
        with http_client(services, serving) as client:
            response = client.post("/v2/models/back/versions/1/infer", json=oip(rows))
            assert response.status_code == 200, response.text
            got = outputs(response.json())
    finally:
        serving.close()
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_a_directory_without_its_mlbox_manifest_imports_from_the_mlmodel(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What another tool wrote has no mlbox-model.json: the MLmodel alone says how to load it."""
    x, y = _xy()
    registry = services.registry
    registry.register("net", model=_mlp(x, y), example_input=x[:4], options={"form": "torchscript"})
    registry.register("fn", model=Doubler(3.0), example_input=x[:4])
    for name in ("net", "fn"):
        folder = tmp_path / name
        ok(capsys, "models", "export", f"{name}/1", str(folder))
        (folder / "mlbox-model.json").unlink()
        code, _, err = run_main(capsys, "models", "import", str(folder), "--name", f"{name}-back")
        assert code == 2 and "--trust" in err
        ok(capsys, "models", "import", str(folder), "--name", f"{name}-back", "--trust")
        back = registry.resolve(f"{name}-back")
        np.testing.assert_allclose(
            registry.load(f"{name}-back").predict(x[:5]), registry.load(f"{name}/1").predict(x[:5]), rtol=1e-6
        )
        assert back.signature is not None
    assert registry.resolve("net-back").manifest["form"] == "torchscript"
    assert registry.resolve("fn-back").flavor == "python"  # mlbox's own pyfunc loader, read from code/

    # a python_function directory with a loader of its own is the pyfunc flavor
    folder = tmp_path / "fn"
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    (folder / "code" / "mlbox_pyfunc.py").rename(folder / "code" / "other_loader.py")
    mlmodel["flavors"]["python_function"]["loader_module"] = "other_loader"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    ok(capsys, "models", "import", str(folder), "--name", "generic", "--trust")
    assert registry.resolve("generic").flavor == "pyfunc"
    np.testing.assert_allclose(registry.load("generic").predict(x[:5]), x[:5] * 3.0, rtol=1e-6)


def test_what_cannot_be_exported_or_imported_is_refused(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    x, y = _xy()
    registry = services.registry
    registry.register("sd", model=_mlp(x, y), options={"form": "state_dict", "class": "tests.models:MLP"})
    code, _, err = run_main(capsys, "models", "export", "sd/1", str(tmp_path / "sd"))
    assert code == 2 and "state_dict" in err and not (tmp_path / "sd").exists()

    # an mlbox manifest that contradicts the MLmodel (a pickle passed off as ONNX) is refused
    registry.register("fn", model=Doubler(), example_input=x[:4])
    folder = tmp_path / "fn"
    ok(capsys, "models", "export", "fn/1", str(folder))
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"onnx": {"data": "model.pkl"}}}))
    code, _, err = run_main(capsys, "models", "import", str(folder), "--name", "sneaky")
    assert code == 2 and "mlbox-model.json" in err

    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"h2o": {"data": "model.pkl"}}}))
    (folder / "mlbox-model.json").unlink()
    code, _, err = run_main(capsys, "models", "import", str(folder), "--name", "h2o")
    assert code == 2 and "h2o" in err


def test_a_table_signature_survives_the_round_trip(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Named, typed columns go out as MLflow's column schema and come back as the same columns."""
    import pandas as pd

    x, y = _xy()
    frame = pd.DataFrame({"age": (x[:, 0] * 10).astype(np.int64), "score": x[:, 1].astype(np.float64)})
    model = LogisticRegression(max_iter=500).fit(frame, y)
    registry = services.registry
    original = registry.register("table", model=model, example_input=frame.head(3))
    assert original.signature is not None and original.signature.inputs.kind == "columns"
    ok(capsys, "models", "export", "table/1", str(tmp_path / "table"))
    mlmodel = yaml.safe_load((tmp_path / "table" / "MLmodel").read_text())
    assert json.loads(mlmodel["signature"]["inputs"]) == [
        {"type": "long", "name": "age", "required": True},
        {"type": "double", "name": "score", "required": True},
    ]
    ok(capsys, "models", "import", str(tmp_path / "table"), "--name", "table-back", "--trust")
    back = registry.resolve("table-back")
    assert back.signature is not None and back.signature.inputs == original.signature.inputs
    np.testing.assert_array_equal(registry.load("table-back").predict(frame), model.predict(frame))


def test_a_cloudpickled_python_model_needs_mlflow_beside_mlbox(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """MLflow's PythonModel pickles reference mlflow's classes: without mlflow, a one-line refusal."""
    folder = tmp_path / "pythonmodel"
    folder.mkdir()
    (folder / "python_model.pkl").write_bytes(b"not read: refused first")
    conf = {"loader_module": "mlflow.pyfunc.model", "python_model": "python_model.pkl"}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": conf}}))
    (folder / "input_example.json").write_text(json.dumps({"inputs": [[1.0, 2.0]]}))
    code, _, err = run_main(capsys, "models", "import", str(folder), "--name", "pm")
    assert code == 2 and "--trust" in err
    code, _, err = run_main(capsys, "models", "import", str(folder), "--name", "pm", "--trust")
    assert code == 2 and "install mlflow" in err and "Traceback" not in err
