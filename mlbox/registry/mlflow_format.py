"""MLflow model directories in and out of the registry (``mlbox models export`` / ``import``).

Export writes what MLflow's loaders read: the version's files, an ``MLmodel``
with the framework flavor and ``python_function`` beside it, the signature in
MLflow's JSON form, an input example built from the signature, and the
environment files (``requirements.txt``, ``python_env.yaml``,
``conda.yaml``) with the versions installed here pinned. scikit-learn models
(pickled) are exported today; other flavors are refused with a message saying
so, never written half right.

Import registers an MLflow directory through the same path as any local
folder (`RegistryService.register` with ``files_from``), so loading still goes
through the verified cache and its hash check. A pickled flavor executes code
when it loads, so it is imported only when the caller says it trusts the
directory (``trust=True``, the CLI's ``--trust``).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from mlbox.registry import flavors
from mlbox.registry.cache import cache_key
from mlbox.registry.schemas import ModelVersion
from mlbox.registry.service import RegistryService
from mlbox.registry.signature import ColumnSpec, Schema, Signature, TensorSpec
from mlbox.store.errors import InvalidInput

EXPORTABLE = ("sklearn",)
"""mlbox flavors written as MLflow flavors."""

PICKLED = {"sklearn", "python_function", "pytorch"}
"""MLflow flavors whose loading runs pickled code: imported only with ``trust``."""

_TO_MLFLOW_TYPE = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
    "object": "string",
    "str": "string",
}
_FROM_MLFLOW_TYPE = {v: k for k, v in _TO_MLFLOW_TYPE.items() if k != "str"}


def _pin(package: str) -> str | None:
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return None


def schema_json(schema: Schema) -> str:
    """An mlbox schema as MLflow writes it in ``MLmodel`` (a JSON string)."""
    if schema.kind == "columns":
        cols = [
            {"type": _TO_MLFLOW_TYPE.get(c.dtype, "string"), "name": c.name, "required": True}
            for c in schema.columns
        ]
        return json.dumps(cols)
    specs = []
    for t in schema.tensors:
        spec: dict[str, Any] = {"type": "tensor", "tensor-spec": {"dtype": t.dtype, "shape": list(t.shape)}}
        if t.name and schema.kind == "tensors":
            spec["name"] = t.name
        specs.append(spec)
    return json.dumps(specs)


def schema_from_json(text: str) -> Schema:
    items = json.loads(text)
    if items and all(i.get("type") == "tensor" for i in items):
        tensors = [
            TensorSpec(i["tensor-spec"]["dtype"], list(i["tensor-spec"]["shape"]), i.get("name"))
            for i in items
        ]
        return Schema("tensors" if len(tensors) > 1 else "tensor", tensors=tensors)
    columns = [
        ColumnSpec(str(i.get("name")), _FROM_MLFLOW_TYPE.get(i.get("type", ""), "object")) for i in items
    ]
    return Schema("columns", columns=columns)


def signature_from_mlmodel(mlmodel: dict[str, Any]) -> Signature | None:
    sig = mlmodel.get("signature")
    if not isinstance(sig, dict) or not sig.get("inputs"):
        return None
    outputs = sig.get("outputs")
    return Signature(schema_from_json(sig["inputs"]), schema_from_json(outputs) if outputs else None)


def example_for(schema: Schema) -> dict[str, Any]:
    """One row of zeros shaped by the signature, in MLflow's ``input_example.json`` form."""
    if schema.kind == "columns":
        row = [0 if c.dtype.startswith(("int", "float")) else "" for c in schema.columns]
        return {"columns": [c.name for c in schema.columns], "data": [row]}
    t = schema.tensors[0]
    shape = [1 if d < 0 else d for d in t.shape] or [1]

    def zeros(dims: list[int]) -> Any:
        return [0.0] * dims[0] if len(dims) == 1 else [zeros(dims[1:]) for _ in range(dims[0])]

    return {"inputs": zeros(shape)}


def export(registry: RegistryService, ref: str, target: Path) -> ModelVersion:
    """Write version ``ref`` as an MLflow model directory at ``target`` (new or empty)."""
    mv = registry.resolve(ref)
    if mv.flavor not in EXPORTABLE:
        raise InvalidInput(
            f"{mv.name}/{mv.version} is a {mv.flavor!r} model; export writes {list(EXPORTABLE)} models",
            field="ref",
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"{target} exists and is not an empty folder", field="dir")
    folder = registry.cache.materialize(
        cache_key(mv.manifest, mv.files), mv.files, f"model {mv.name!r} version {mv.version}"
    )
    staging = target.with_name(f".{target.name}.export-{uuid.uuid4().hex[:8]}")
    shutil.copytree(folder, staging)
    try:
        _write_mlflow_files(staging, mv)
        if target.exists():
            target.rmdir()
        staging.rename(target)  # the directory appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return mv


def _write_mlflow_files(folder: Path, mv: ModelVersion) -> None:
    manifest = mv.manifest
    model_file = str(manifest["file"])
    serialization = "pickle" if manifest.get("serialization", "pickle") == "pickle" else "cloudpickle"
    python = platform.python_version()
    sklearn = importlib.metadata.version("scikit-learn")
    mlmodel: dict[str, Any] = {
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn",
                "model_path": model_file,
                "predict_fn": str(manifest.get("method", "predict")),
                "python_version": python,
            },
            "sklearn": {
                "code": None,
                "pickled_model": model_file,
                "serialization_format": serialization,
                "sklearn_version": sklearn,
            },
        },
        "mlflow_version": "2.20.0",
        "model_uuid": uuid.uuid4().hex,
        "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime()),
        "metadata": {"mlbox_model": mv.name, "mlbox_version": mv.version},
    }
    if manifest.get("serialization") == "joblib":
        raise InvalidInput(
            "a joblib-serialized model cannot be written as MLflow's sklearn flavor", field="ref"
        )
    if mv.signature is not None:
        mlmodel["signature"] = {
            "inputs": schema_json(mv.signature.inputs),
            "outputs": None if mv.signature.outputs is None else schema_json(mv.signature.outputs),
            "params": None,
        }
        example = example_for(mv.signature.inputs)
        (folder / "input_example.json").write_text(json.dumps(example))
        mlmodel["saved_input_example_info"] = {
            "artifact_path": "input_example.json",
            "type": "dataframe" if "columns" in example else "ndarray",
            "format": "tf-serving" if "inputs" in example else "split",
        }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    requirements = [r for r in (_pin("scikit-learn"), _pin("numpy"), _pin("scipy"), _pin("cloudpickle")) if r]
    (folder / "requirements.txt").write_text("\n".join(["mlflow", *requirements]) + "\n")
    (folder / "python_env.yaml").write_text(
        yaml.safe_dump(
            {"python": python, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
        )
    )
    conda = {"name": "mlflow-env", "channels": ["conda-forge"],
             "dependencies": [f"python={python}", "pip", {"pip": ["mlflow", *requirements]}]}  # fmt: skip
    (folder / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False))


def load_skops(raw: bytes) -> Any:
    """An estimator from skops bytes, loading only the types skops trusts (scikit-learn's, numpy's):
    skops exists so a model file need not run code; a file naming any other type is refused."""
    import io

    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=raw)
    if untrusted:
        raise InvalidInput(
            f"the skops model names types skops does not trust: {', '.join(untrusted[:5])}", field="source"
        )
    return sio.load(io.BytesIO(raw))


def read_mlmodel(folder: Path) -> dict[str, Any]:
    path = folder / "MLmodel"
    if not path.is_file():
        raise InvalidInput(f"{folder} is not an MLflow model directory (no MLmodel file)", field="dir")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise InvalidInput(f"{path}: no flavors listed", field="dir")
    return data


def import_dir(
    registry: RegistryService, folder: Path, name: str, *, trust: bool = False, description: str = ""
) -> ModelVersion:
    """Register the MLflow model directory ``folder`` as a new version of ``name``."""
    mlmodel = read_mlmodel(folder)
    names = set(mlmodel["flavors"])
    if "sklearn" not in names:
        raise InvalidInput(f"mlbox imports MLflow sklearn models; this one has {sorted(names)}", field="dir")
    sk = mlmodel["flavors"]["sklearn"]
    skops = sk.get("serialization_format") == "skops"
    if names & PICKLED and not trust and not skops:
        raise InvalidInput(
            "this model is pickled: loading it runs code from the file. Import it only if you trust where"
            " it came from, with --trust",
            field="trust",
        )
    example = None
    info = mlmodel.get("saved_input_example_info") or {}
    example_file = folder / str(info.get("artifact_path", "input_example.json"))
    if example_file.is_file():
        from mlbox.mlflow.protocol import example_from_mlflow

        example = example_from_mlflow(example_file.read_bytes())
    if skops:  # loads no pickle: no --trust needed
        model = load_skops((folder / str(sk.get("pickled_model") or "model.skops")).read_bytes())
        return registry.register(name, model=model, example_input=example, description=description)
    if (folder / flavors.MANIFEST_FILE).exists():
        return registry.register(name, files_from=folder, example_input=example, description=description)
    return registry.register(
        name, files_from=folder, flavor="sklearn", example_input=example, description=description
    )
