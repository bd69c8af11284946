"""Flavors: each model saved into the registry loads back and predicts what the original did."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlbox.registry.flavors import MANIFEST_FILE, detect_flavor, load_model, save_model
from mlbox.registry.service import RegistryService
from mlbox.registry.signature import SchemaMismatch, TensorSpec
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from tests.models import MLP, Doubler, TwoInputs


@pytest.fixture
def registry(services: Services) -> RegistryService:
    t = services.tracking
    return RegistryService(t.db, t.artifacts, t)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=200, n_features=8, n_informative=5, n_classes=3, random_state=0)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def mlp() -> MLP:
    torch.manual_seed(0)
    return MLP().eval()


def test_sklearn_estimator(registry: RegistryService, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    clf = LogisticRegression(max_iter=500).fit(x, y)
    mv = registry.register("clf", model=clf, example_input=x[:4])
    assert mv.flavor == "sklearn" and mv.manifest["method"] == "predict"
    assert mv.signature is not None
    assert mv.signature.inputs.tensors == [TensorSpec("float32", [-1, 8])]
    assert mv.signature.outputs is not None and mv.signature.outputs.tensors == [TensorSpec("int64", [-1])]
    loaded = registry.load("clf")
    np.testing.assert_array_equal(loaded.predict(x), clf.predict(x))
    with pytest.raises(SchemaMismatch) as err:
        loaded.predict(x[:, :5])
    assert err.value.field == "input"


def test_sklearn_pipeline_on_frames_with_predict_proba(
    registry: RegistryService, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, y)
    mv = registry.register(
        "pipe", model=pipe, example_input=frame.head(3), options={"method": "predict_proba"}
    )
    assert mv.signature is not None and mv.signature.inputs.kind == "columns"
    assert mv.signature.outputs is not None and mv.signature.outputs.tensors[0].shape == [-1, 3]
    loaded = registry.load("pipe/1")
    expected = pipe.predict_proba(frame)
    np.testing.assert_allclose(loaded.predict(frame), expected)
    np.testing.assert_allclose(loaded.predict(pl.from_pandas(frame)), expected)  # polars works too
    shuffled = {c: frame[c].to_numpy() for c in reversed(frame.columns)}
    np.testing.assert_allclose(loaded.predict(shuffled), expected)  # a dict of columns, any order
    with pytest.raises(SchemaMismatch) as err:
        loaded.predict(frame.rename(columns={"f3": "f33"}))
    assert err.value.field == "f3"


@pytest.mark.parametrize("form", ["torchscript", "export", "state_dict"])
def test_torch_forms(
    registry: RegistryService, mlp: MLP, data: tuple[np.ndarray, np.ndarray], form: str
) -> None:
    x, _ = data
    options = (
        {"form": form, "init": {"n_in": 8, "hidden": 16, "n_out": 3}}
        if form == "state_dict"
        else {"form": form}
    )
    mv = registry.register("mlp", model=mlp, example_input=x[:1], options=options)
    assert mv.flavor == "pytorch" and mv.manifest["form"] == form
    if form == "state_dict":
        assert mv.manifest["class"] == "tests.models:MLP"
    loaded = registry.load(f"mlp/{mv.version}")
    with torch.no_grad():
        expected = mlp(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(x.astype(np.float64)[:7]), expected[:7], rtol=1e-5, atol=1e-6)


def test_torch_export_is_the_default_with_an_example(
    registry: RegistryService, mlp: MLP, data: tuple[np.ndarray, np.ndarray]
) -> None:
    mv = registry.register("mlp", model=mlp, example_input=data[0][:2])
    assert mv.manifest["form"] == "export" and "export_error" not in mv.manifest
    without_example = registry.register("mlp", model=mlp)
    assert without_example.manifest["form"] == "torchscript" and without_example.signature is None
    assert mlp.training is False


def test_torch_named_inputs_and_several_outputs(registry: RegistryService) -> None:
    torch.manual_seed(0)
    net = TwoInputs().eval()
    example = {"left": np.ones((2, 4), np.float32), "right": np.ones((2, 3), np.float32)}
    mv = registry.register("two", model=net, example_input=example)
    assert mv.signature is not None and mv.signature.inputs.names() == ["left", "right"]
    assert mv.signature.outputs is not None and mv.signature.outputs.names() == ["output_0", "output_1"]
    rng = np.random.default_rng(0)
    batch = {
        "right": rng.normal(size=(5, 3)).astype(np.float32),
        "left": rng.normal(size=(5, 4)).astype(np.float32),
    }
    out = registry.load("two").predict(batch)
    with torch.no_grad():
        total, summed = net(torch.from_numpy(batch["left"]), torch.from_numpy(batch["right"]))
    np.testing.assert_allclose(out["output_0"], total.numpy(), rtol=1e-5)
    np.testing.assert_allclose(out["output_1"], summed.numpy(), rtol=1e-5)


def test_torch_state_dict_needs_an_importable_class(registry: RegistryService, mlp: MLP) -> None:
    with pytest.raises(InvalidInput) as err:
        registry.register("m", model=mlp, options={"form": "state_dict", "class": "tests.models:Nope"})
    assert err.value.field == "options.class"
    with pytest.raises(InvalidInput) as err:
        registry.register("m", model=mlp, options={"form": "state_dict", "init": {"x": object()}})
    assert err.value.field == "options.init"
    with pytest.raises(InvalidInput) as err:
        registry.register("m", model=mlp, options={"form": "onnx"})
    assert err.value.field == "options.form"


def test_python_class(registry: RegistryService) -> None:
    mv = registry.register("double", model=Doubler(3.0), example_input=np.arange(4))
    assert mv.flavor == "python" and mv.manifest["class"] == "tests.models.Doubler"
    assert registry.load("double").predict(np.array([1, 2])).tolist() == [3, 6]


def test_a_class_defined_in_main_is_refused(registry: RegistryService) -> None:
    class Local:
        def predict(self, x: np.ndarray) -> np.ndarray:
            return x

    Local.__module__ = "__main__"
    with pytest.raises(InvalidInput) as err:
        registry.register("local", model=Local())
    assert err.value.field == "model" and "__main__" in err.value.message


def test_detect_flavor(mlp: MLP) -> None:
    assert detect_flavor(LogisticRegression()).name == "sklearn"
    assert detect_flavor(mlp).name == "pytorch"
    assert detect_flavor(Doubler()).name == "python"
    with pytest.raises(InvalidInput) as err:
        detect_flavor(object())
    assert err.value.field == "model"


def test_saved_folder_loads_without_the_registry(tmp_path: Path, mlp: MLP) -> None:
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    manifest = save_model(mlp, tmp_path / "m", example_input=x)
    assert (tmp_path / "m" / MANIFEST_FILE).is_file() and manifest["flavor"] == "pytorch"
    with torch.no_grad():
        np.testing.assert_allclose(
            load_model(tmp_path / "m").predict(x), mlp(torch.from_numpy(x)).numpy(), rtol=1e-5
        )


def test_adopting_files_saved_without_mlbox(
    registry: RegistryService, tmp_path: Path, mlp: MLP, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    clf = LogisticRegression(max_iter=300).fit(x, y)
    (tmp_path / "clf.pkl").write_bytes(pickle.dumps(clf))
    mv = registry.register("adopted", files_from=tmp_path / "clf.pkl", flavor="sklearn", example_input=x[:2])
    assert [f.path for f in mv.files] == ["clf.pkl", MANIFEST_FILE]
    np.testing.assert_array_equal(registry.load("adopted").predict(x), clf.predict(x))

    scripted = tmp_path / "ts"
    scripted.mkdir()
    with pytest.warns(DeprecationWarning):
        torch.jit.save(torch.jit.script(mlp), str(scripted / "net.pt"))
    mv = registry.register("adopted-ts", files_from=scripted, flavor="pytorch")
    assert mv.manifest["form"] == "torchscript"

    weights = tmp_path / "sd"
    weights.mkdir()
    torch.save(mlp.state_dict(), weights / "weights.pth")
    with pytest.raises(InvalidInput) as err:
        registry.register("adopted-sd", files_from=weights, flavor="pytorch")
    assert err.value.field == "options.class"
    mv = registry.register(
        "adopted-sd",
        files_from=weights,
        flavor="pytorch",
        options={"class": "tests.models:MLP"},
        example_input=x[:2],
    )
    assert mv.manifest["form"] == "state_dict"
    with torch.no_grad():
        np.testing.assert_allclose(
            registry.load("adopted-sd").predict(x), mlp(torch.from_numpy(x)).numpy(), rtol=1e-5
        )


# -- optional frameworks (skipped where they are not installed) --------------------


def test_onnx(registry: RegistryService) -> None:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    b = np.array([1, 2, 3], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    x = np.random.default_rng(0).normal(size=(5, 4))
    mv = registry.register("affine", model=proto, example_input=x.astype(np.float32))
    assert mv.flavor == "onnx"
    np.testing.assert_allclose(registry.load("affine").predict(x), x @ w + b, rtol=1e-5)


def test_lightgbm_booster(registry: RegistryService, data: tuple[np.ndarray, np.ndarray]) -> None:
    lgb = pytest.importorskip("lightgbm")
    x, y = data
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y > 0), 5)
    mv = registry.register("lgb", model=booster, example_input=x[:3])
    assert mv.flavor == "lightgbm"
    np.testing.assert_allclose(registry.load("lgb").predict(x), booster.predict(x))


def test_xgboost_booster(registry: RegistryService, data: tuple[np.ndarray, np.ndarray]) -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = data
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(x, label=y > 0), 5)
    mv = registry.register("xgb", model=booster, example_input=x[:3])
    assert mv.flavor == "xgboost"
    np.testing.assert_allclose(registry.load("xgb").predict(x), booster.inplace_predict(x), rtol=1e-6)
