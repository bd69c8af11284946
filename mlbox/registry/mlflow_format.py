"""MLflow model directories in and out of the registry (``mlbox models export`` / ``import``).

Export writes what MLflow's loaders read: the version's files laid out for
the framework's MLflow flavor (`mlbox.registry.mlflow_flavors`: sklearn,
pytorch, onnx, lightgbm, xgboost, keras, and python objects as a
``python_function`` with its own loader), an ``MLmodel`` listing that flavor
and ``python_function`` beside it, the signature in MLflow's JSON form, an
input example built from the signature, and the environment files
(``requirements.txt``, ``python_env.yaml``, ``conda.yaml``) with the versions
installed here pinned. A version with no MLflow form (a PyTorch state dict, a
composition) is refused with a message saying so, never written half right.

Import registers an MLflow directory through the same path as any local
folder (`RegistryService.register` with ``files_from``), so loading still goes
through the verified cache and its hash check. The example input is cast to
the ``MLmodel``'s signature (or built from it when the directory has none), so
the version keeps the signature MLflow declared. A flavor whose loading
unpickles (sklearn, a PyTorch ``model.pth``, ``python_function``) executes
code from the files, so it is imported only when the caller says it trusts
the directory (``trust=True``, the CLI's ``--trust``).
"""

from __future__ import annotations

import json
import platform
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlbox.registry import flavors
from mlbox.registry.cache import cache_key
from mlbox.registry.mlflow_flavors import TO_MLFLOW, choose, refuse_untrusted, to_mlflow
from mlbox.registry.schemas import ModelVersion
from mlbox.registry.service import RegistryService
from mlbox.registry.signature import ColumnSpec, Schema, Signature, TensorSpec
from mlbox.store.errors import InvalidInput

EXPORTABLE = tuple(sorted(TO_MLFLOW))
"""mlbox flavors written as MLflow flavors."""

MLFLOW_VERSION = "2.20.0"
"""The MLflow release whose MLmodel layout the export writes (MLflow 2.20 and 3.x read it)."""

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
    arrays = {t.name or "input": _zeros(t).tolist() for t in schema.tensors}
    if schema.kind == "tensors":
        return {"inputs": arrays}
    return {"inputs": next(iter(arrays.values()))}


def _zeros(spec: TensorSpec) -> np.ndarray:
    shape = [1 if d < 0 else d for d in spec.shape] or [1]
    return np.zeros(shape, dtype=np.dtype(spec.dtype) if spec.dtype != "object" else np.float64)


def export(registry: RegistryService, ref: str, target: Path) -> tuple[ModelVersion, list[str]]:
    """Write version ``ref`` as an MLflow model directory at ``target`` (new or empty).

    Returns the version and notes for whoever serves it (an environment variable
    MLflow needs, a class that must be importable there)."""
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
        notes = _write_mlflow_files(staging, mv)
        if target.exists():
            target.rmdir()
        staging.rename(target)  # the directory appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return mv, notes


def _write_mlflow_files(folder: Path, mv: ModelVersion) -> list[str]:
    written = to_mlflow(folder, mv.manifest)
    flavors.write_manifest(folder, written.manifest)
    python = platform.python_version()
    env = {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    mlmodel: dict[str, Any] = {"flavors": {}}
    if written.pyfunc is not None:
        mlmodel["flavors"]["python_function"] = {"env": env, **written.pyfunc, "python_version": python}
    mlmodel["flavors"].update(written.flavors)
    mlmodel.update(
        {
            "mlflow_version": MLFLOW_VERSION,
            "model_uuid": uuid.uuid4().hex,
            "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime()),
            "metadata": {"mlbox_model": mv.name, "mlbox_version": mv.version, "mlbox_flavor": mv.flavor},
        }
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
    requirements = ["mlflow", *written.requirements]
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (folder / "python_env.yaml").write_text(
        yaml.safe_dump(
            {"python": python, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
        )
    )
    conda = {"name": "mlflow-env", "channels": ["conda-forge"],
             "dependencies": [f"python={python}", "pip", {"pip": requirements}]}  # fmt: skip
    (folder / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False))
    return written.notes


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


def example_input(folder: Path, mlmodel: dict[str, Any]) -> Any:
    """The directory's input example cast to the ``MLmodel``'s input signature, or one built from
    that signature when there is no example: run once at registration, it gives the version the
    signature MLflow declared (a JSON example alone would turn float32 into float64)."""
    signature = signature_from_mlmodel(mlmodel)
    info = mlmodel.get("saved_input_example_info") or {}
    path = folder / str(info.get("artifact_path", "input_example.json"))
    raw: Any = json.loads(path.read_bytes()) if path.is_file() else None
    schema = signature.inputs if signature is not None else None
    if schema is not None and schema.kind == "columns":
        import pandas as pd

        if isinstance(raw, dict) and "columns" in raw and "data" in raw:
            frame = pd.DataFrame(raw["data"], columns=raw["columns"])
        else:
            frame = pd.DataFrame({c.name: [0 if c.dtype != "object" else ""] for c in schema.columns})
        return frame.astype({c.name: c.dtype for c in schema.columns if c.name in frame})
    inputs = raw.get("inputs", raw) if isinstance(raw, dict) and "columns" not in raw else raw
    if isinstance(raw, dict) and "columns" in raw and "data" in raw:  # columns without a signature
        rows = raw["data"]
        return {c: np.asarray([r[i] for r in rows]) for i, c in enumerate(raw["columns"])}
    specs = {t.name or "input": t for t in schema.tensors} if schema is not None else {}
    if isinstance(inputs, dict):
        return {k: np.asarray(v, dtype=_dtype(specs.get(k))) for k, v in inputs.items()}
    if inputs is not None:
        spec = next(iter(specs.values()), None) if len(specs) == 1 else None
        return np.asarray(inputs, dtype=_dtype(spec))
    if schema is None:
        return None
    if schema.kind == "tensors":
        return {name: _zeros(t) for name, t in specs.items()}
    return _zeros(schema.tensors[0])


def _dtype(spec: TensorSpec | None) -> Any:
    return None if spec is None or spec.dtype == "object" else np.dtype(spec.dtype)


def import_dir(
    registry: RegistryService, folder: Path, name: str, *, trust: bool = False, description: str = ""
) -> ModelVersion:
    """Register the MLflow model directory ``folder`` as a new version of ``name``."""
    mlmodel = read_mlmodel(folder)
    sk = mlmodel["flavors"].get("sklearn") or {}
    if sk.get("serialization_format") == "skops":  # loads no pickle: no --trust needed
        model = load_skops((folder / str(sk.get("pickled_model") or "model.skops")).read_bytes())
        return registry.register(
            name, model=model, example_input=example_input(folder, mlmodel), description=description
        )
    own = flavors.read_manifest(folder)  # an mlbox export keeps its manifest (compiled trees, method …)
    chosen = choose(folder, mlmodel, own)
    refuse_untrusted(
        chosen, trust, "Import it only if you trust where it came from, with --trust", field="trust"
    )
    example = example_input(folder, mlmodel)
    if own is not None:
        return registry.register(name, files_from=folder, example_input=example, description=description)
    return registry.register(
        name,
        files_from=folder,
        flavor=chosen.flavor,
        options=chosen.options,
        example_input=example,
        description=description,
    )
