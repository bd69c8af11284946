"""Each mlbox flavor as the MLflow flavor that loads the same files, and back.

`to_mlflow` lays a version's files out as MLflow's loader for that framework
expects them (``data/model.pt2`` for PyTorch, ``data/model.keras`` for Keras,
…) and returns the ``MLmodel`` flavor entries, the requirements to pin and
the mlbox manifest rewritten for the moved files (kept in the directory, so
an exported directory imports back exactly). `from_mlflow` reads an
``MLmodel`` and says which mlbox flavor loads it, with the options that flavor
needs and whether loading it runs pickled code (imported only with trust).

The mapping follows MLflow 3's own savers (``mlflow.pytorch.save_model`` …):
the keys written here are the ones their loaders read.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sysconfig
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlbox.store.errors import InvalidInput

PYTORCH_PICKLE_MODULE = "mlflow.pytorch.pickle_module"
"""The module MLflow's pytorch loader imports to unpickle ``data/model.pth``."""

PICKLE_NOTE = (
    "a pickled model: MLflow refuses it where MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false"
    " (3.18: MLFLOW_ALLOW_MODEL_CODE_EXECUTION=false)"
)

PYFUNC_LOADER = "mlbox_pyfunc"
"""The loader module written beside an exported python-flavor model (``code/mlbox_pyfunc.py``)."""

_PYFUNC_LOADER_SOURCE = '''\
"""Loads an mlbox python-flavor model (a pickled object with a method to call) in MLflow's pyfunc.

Written by ``mlbox models export``; MLflow imports it from the model's ``code`` folder.
"""

import json
import os
import pickle


class _Model:
    def __init__(self, model, method):
        self.model = model
        self.method = method

    def predict(self, model_input, params=None):
        return getattr(self.model, self.method)(model_input)


def _load_pyfunc(path):
    manifest = os.path.join(os.path.dirname(path), "mlbox-model.json")
    method = "predict"
    if os.path.isfile(manifest):
        with open(manifest) as f:
            method = json.load(f).get("method", "predict")
    with open(path, "rb") as f:
        return _Model(pickle.load(f), method)
'''


@dataclass
class Exported:
    """What `to_mlflow` wrote: the ``MLmodel`` flavors besides ``python_function``, the
    ``python_function`` entry's own keys (None: MLflow cannot serve it generically), the
    distributions to pin, and the manifest for the moved files."""

    flavors: dict[str, Any]
    pyfunc: dict[str, Any] | None
    requirements: list[str]
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Imported:
    """How an MLflow directory registers: the mlbox flavor, its adopt options, whether it unpickles."""

    flavor: str
    options: dict[str, Any]
    pickled: bool


def version_of(distribution: str) -> str | None:
    """The installed version without a local label (``2.13.0``, not ``2.13.0+cpu``: PyPI has no ``+cpu``)."""
    try:
        return importlib.metadata.version(distribution).split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return None


def pin(*distributions: str) -> list[str]:
    """``name==version`` for each installed distribution (the first installed of ``a|b`` alternatives)."""
    pinned = []
    for spec in distributions:
        for name in spec.split("|"):
            version = version_of(name)
            if version is not None:
                pinned.append(f"{name}=={version}")
                break
    return pinned


def _move(folder: Path, file: str, to: str) -> str:
    target = folder / to
    target.parent.mkdir(parents=True, exist_ok=True)
    (folder / file).rename(target)
    return to


def _sklearn(folder: Path, manifest: dict[str, Any]) -> Exported:
    if manifest.get("serialization") == "joblib":
        raise InvalidInput(
            "a joblib-serialized model cannot be written as MLflow's sklearn flavor", field="ref"
        )
    file = str(manifest["file"])
    return Exported(
        flavors={
            "sklearn": {
                "code": None,
                "pickled_model": file,
                "serialization_format": "pickle",
                "sklearn_version": version_of("scikit-learn"),
            }
        },
        pyfunc={
            "loader_module": "mlflow.sklearn",
            "model_path": file,
            "predict_fn": str(manifest.get("method", "predict")),
        },
        requirements=pin("scikit-learn", "numpy", "scipy", "cloudpickle"),
        manifest=manifest,
        notes=[PICKLE_NOTE],
    )


def _pytorch(folder: Path, manifest: dict[str, Any]) -> Exported:
    form = manifest.get("form")
    if form == "export":
        file = _move(folder, str(manifest["file"]), "data/model.pt2")
    elif form in ("torchscript", "pickle"):
        file = _move(folder, str(manifest["file"]), "data/model.pth")
        (folder / "data" / "pickle_module_info.txt").write_text(PYTORCH_PICKLE_MODULE)
    else:
        raise InvalidInput(
            f"a PyTorch {form!r} version has no MLflow form: register it with form 'export' (or"
            " 'torchscript') to export it",
            field="ref",
        )
    inputs = manifest.get("inputs")
    several = isinstance(inputs, list) and len(inputs) > 1
    return Exported(
        flavors={"pytorch": {"code": None, "model_data": "data", "pytorch_version": version_of("torch")}},
        # MLflow's pyfunc feeds one tensor: a model of several named inputs is only mlflow.pytorch's
        pyfunc=None
        if several
        else {
            "loader_module": "mlflow.pytorch",
            "data": "data",
            "pickle_module_name": PYTORCH_PICKLE_MODULE,
            "model_config": {"device": None},
        },
        requirements=pin("torch", "numpy", "cloudpickle"),
        manifest={**manifest, "file": file},
        notes=[] if form == "export" else [PICKLE_NOTE],
    )


def _onnx(folder: Path, manifest: dict[str, Any]) -> Exported:
    file = str(manifest["file"])
    return Exported(
        flavors={
            "onnx": {
                "code": None,
                "data": file,
                "onnx_version": version_of("onnx"),
                "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
            }
        },
        pyfunc={"loader_module": "mlflow.onnx", "data": file},
        requirements=pin("onnx", "onnxruntime|onnxruntime-gpu", "numpy"),
        manifest=manifest,
    )


def _lightgbm(folder: Path, manifest: dict[str, Any]) -> Exported:
    file = str(manifest["file"])
    return Exported(
        flavors={
            "lightgbm": {
                "code": None,
                "data": file,
                "lgb_version": version_of("lightgbm"),
                "model_class": "lightgbm.basic.Booster",
            }
        },
        pyfunc={"loader_module": "mlflow.lightgbm", "data": file},
        requirements=pin("lightgbm", "numpy", "scipy"),
        manifest=manifest,
    )


def _xgboost(folder: Path, manifest: dict[str, Any]) -> Exported:
    file = str(manifest["file"])
    return Exported(
        flavors={
            "xgboost": {
                "code": None,
                "data": file,
                "model_class": "xgboost.core.Booster",
                "model_format": Path(file).suffix.lstrip(".") or "ubj",
                "xgb_version": version_of("xgboost") or version_of("xgboost-cpu"),
            }
        },
        pyfunc={"loader_module": "mlflow.xgboost", "data": file},
        requirements=pin("xgboost|xgboost-cpu", "numpy", "scipy"),
        manifest=manifest,
    )


def _keras(folder: Path, manifest: dict[str, Any]) -> Exported:
    file = _move(folder, str(manifest["file"]), "data/model.keras")
    (folder / "data" / "keras_module.txt").write_text("keras")
    backend = str(manifest.get("backend") or "tensorflow")
    framework = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow|tensorflow-cpu"}.get(backend)
    return Exported(
        flavors={
            "keras": {
                "data": "data",
                "keras_backend": backend,
                "keras_version": version_of("keras"),
                "save_exported_model": False,
            }
        },
        pyfunc={"loader_module": "mlflow.keras"},
        requirements=pin("keras", *([framework] if framework else []), "numpy"),
        manifest={**manifest, "file": file},
        notes=[f"set KERAS_BACKEND={backend} where it is served (Keras picks its backend from it)"],
    )


def _own_module_file(class_path: str) -> Path | None:
    """The one-file module defining ``class_path`` when it is the user's own (not installed, not
    the standard library): copied beside the model so the serving side can unpickle it."""
    module = class_path.rsplit(".", 1)[0]
    if "." in module or module == "__main__":
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    origin = Path(spec.origin).resolve()
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    if any(origin.is_relative_to(Path(p).resolve()) for p in installed):
        return None
    return origin


def _python(folder: Path, manifest: dict[str, Any]) -> Exported:
    code = folder / "code"
    code.mkdir(exist_ok=True)
    (code / f"{PYFUNC_LOADER}.py").write_text(_PYFUNC_LOADER_SOURCE)
    notes = []
    own = _own_module_file(str(manifest.get("class", "")))
    if own is not None:
        shutil.copy2(own, code / own.name)
    else:
        notes.append(f"{manifest.get('class')} must be importable where the model is served")
    return Exported(
        flavors={},
        pyfunc={"loader_module": PYFUNC_LOADER, "code": "code", "data": str(manifest["file"])},
        requirements=pin("numpy"),
        manifest=manifest,
        notes=notes,
    )


TO_MLFLOW: dict[str, Callable[[Path, dict[str, Any]], Exported]] = {
    "sklearn": _sklearn,
    "pytorch": _pytorch,
    "onnx": _onnx,
    "lightgbm": _lightgbm,
    "xgboost": _xgboost,
    "keras": _keras,
    "python": _python,
}
"""mlbox flavor → how its files become an MLflow model directory."""


def to_mlflow(folder: Path, manifest: Mapping[str, Any]) -> Exported:
    """Lay out the version's files in ``folder`` for MLflow (see the module's docstring)."""
    flavor = str(manifest.get("flavor"))
    if flavor not in TO_MLFLOW:
        raise InvalidInput(
            f"a {flavor!r} model has no MLflow flavor; export writes {sorted(TO_MLFLOW)} models", field="ref"
        )
    return TO_MLFLOW[flavor](folder, dict(manifest))


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in n or n.endswith("constants.pkl") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _data_file(folder: Path, conf: Mapping[str, Any], key: str, flavor: str) -> str:
    data = conf.get(key)
    if not isinstance(data, str) or not data or ".." in Path(data).parts or Path(data).is_absolute():
        raise InvalidInput(f"the MLmodel's {flavor} flavor names no data file ({key})", field="dir")
    if not (folder / data).exists():
        raise InvalidInput(f"the MLmodel's {flavor} flavor names {data!r}, which is not there", field="dir")
    return data


def from_mlflow(folder: Path, mlmodel: Mapping[str, Any]) -> Imported:
    """Which mlbox flavor registers this MLflow directory (its first flavor mlbox loads)."""
    found: dict[str, Any] = dict(mlmodel.get("flavors") or {})
    pyfunc = found.get("python_function") or {}
    if "sklearn" in found:
        sk = found["sklearn"]
        file = _data_file(folder, sk, "pickled_model", "sklearn")
        method = str(pyfunc.get("predict_fn") or "predict")
        return Imported("sklearn", {"file": file, "method": method}, pickled=True)
    if "pytorch" in found:
        data = _data_file(folder, found["pytorch"], "model_data", "pytorch")
        if (folder / data / "model.pt2").is_file():
            return Imported("pytorch", {"file": f"{data}/model.pt2", "form": "export"}, pickled=False)
        pth = folder / data / "model.pth"
        if not pth.is_file():
            raise InvalidInput(
                f"the pytorch flavor's {data!r} holds neither model.pt2 nor model.pth", field="dir"
            )
        form = "torchscript" if _is_torchscript(pth) else "pickle"
        return Imported("pytorch", {"file": f"{data}/model.pth", "form": form}, pickled=True)
    if "onnx" in found:
        return Imported("onnx", {"file": _data_file(folder, found["onnx"], "data", "onnx")}, pickled=False)
    if "keras" in found:
        conf = found["keras"]
        if conf.get("save_exported_model"):
            raise InvalidInput(
                "this Keras model was saved as a TensorFlow SavedModel (save_exported_model); mlbox loads"
                " .keras files: convert it to ONNX (tf2onnx) and register that",
                field="dir",
            )
        data = _data_file(folder, conf, "data", "keras")
        file = f"{data}/model.keras" if (folder / data).is_dir() else data
        if not (folder / file).is_file():
            raise InvalidInput(f"the keras flavor's {data!r} holds no model.keras", field="dir")
        return Imported("keras", {"file": file, "backend": conf.get("keras_backend")}, pickled=False)
    for name, mlbox_flavor in (("lightgbm", "lightgbm"), ("xgboost", "xgboost")):
        if name in found:
            conf = found[name]
            file = _data_file(folder, conf, "data", name)
            model_class = str(conf.get("model_class", "Booster"))
            if model_class.endswith(".Booster") or model_class == "Booster":
                return Imported(mlbox_flavor, {"file": file}, pickled=False)
            if name == "lightgbm" and conf.get("serialization_format", "cloudpickle") != "skops":
                return Imported("sklearn", {"file": file}, pickled=True)  # LGBMClassifier & co, pickled
            raise InvalidInput(
                f"mlbox imports {name} Boosters; this directory holds a {model_class}", field="dir"
            )
    if pyfunc:
        if pyfunc.get("loader_module") == PYFUNC_LOADER and isinstance(pyfunc.get("data"), str):
            return Imported("python", {"file": _data_file(folder, pyfunc, "data", "python_function")}, True)
        return Imported("pyfunc", {}, pickled=True)
    raise InvalidInput(f"mlbox cannot load MLflow flavors {sorted(found)}", field="dir")


TRUST_TAG = "mlbox.trust"
"""Over MLflow's REST API, the model-version tag that says what ``--trust`` says to ``mlbox models
import``: ``mlflow.register_model(uri, name, tags={"mlbox.trust": "true"})`` (MLflow's
``create_model_version`` has no other field a caller could set)."""


def choose(folder: Path, mlmodel: Mapping[str, Any], own: Mapping[str, Any] | None) -> Imported:
    """How an MLflow directory registers, from ``mlbox models import`` and from MLflow's REST API
    alike: `from_mlflow`, checked against the mlbox manifest an exported directory keeps (``own``),
    whose flavor must agree and which then says whether loading runs code (`needs_trust`)."""
    chosen = from_mlflow(folder, mlmodel)
    if own is None:
        return chosen
    if own.get("flavor") != chosen.flavor:
        raise InvalidInput(
            f"mlbox-model.json says flavor {own.get('flavor')!r} but the MLmodel says {chosen.flavor!r}",
            field="dir",
        )
    return Imported(chosen.flavor, chosen.options, pickled=needs_trust(own))


def refuse_untrusted(chosen: Imported, trusted: bool, how: str, *, field: str) -> None:
    """`InvalidInput` for a pickled flavor the caller did not say it trusts; ``how`` says how to."""
    if chosen.pickled and not trusted:
        raise InvalidInput(
            f"this {chosen.flavor} model is pickled: loading it runs code from the files. {how}", field=field
        )


def needs_trust(manifest: Mapping[str, Any]) -> bool:
    """Whether loading files with this mlbox manifest runs code they name: it unpickles them, or
    (a PyTorch state dict) calls the class the manifest names."""
    flavor = manifest.get("flavor")
    if flavor in ("sklearn", "python", "pyfunc"):
        return True
    return flavor == "pytorch" and manifest.get("form") in ("torchscript", "pickle", "state_dict")
