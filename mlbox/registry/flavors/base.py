"""What every flavor provides, and the input conversions flavors share.

A flavor turns a framework's model into files plus a manifest (`save`),
makes a manifest for files someone else wrote (`adopt`), and turns those
files back into a `Predictor` (`load`). Flavors import their framework
inside these methods only: ``import mlbox`` must stay fast, and a flavor
whose framework is missing must not break the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from mlbox.store.errors import InvalidInput


class Predictor(Protocol):
    """A loaded model: ``predict`` takes arrays, a dict of arrays or a frame, as the signature says."""

    def predict(self, inputs: Any) -> Any: ...


class Flavor(ABC):
    name: ClassVar[str]

    @abstractmethod
    def detect(self, model: object) -> bool:
        """Whether ``model`` is this flavor's kind (without importing the framework)."""

    @abstractmethod
    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Write ``model``'s files into ``folder``; returns the manifest (JSON-safe)."""

    @abstractmethod
    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        """A manifest for files saved without mlbox (a ``.pkl``, a ``.pt``)."""

    @abstractmethod
    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        """A predictor over the files in ``folder`` (already verified against their sha256)."""


def frame_library(obj: object) -> str | None:
    module = type(obj).__module__
    if module.startswith("polars") and hasattr(obj, "schema"):
        return "polars"
    if module.startswith("pandas") and hasattr(obj, "dtypes"):
        return "pandas"
    return None


def as_matrix(inputs: Any) -> np.ndarray:
    """One array from an array, a frame, a dict of columns or nested lists."""
    if isinstance(inputs, np.ndarray):
        return inputs
    if frame_library(inputs) is not None:
        return np.asarray(inputs.to_numpy())
    if isinstance(inputs, Mapping):
        columns = [np.asarray(v) for v in inputs.values()]
        if len(columns) == 1:
            return columns[0]
        return np.column_stack(columns)
    return np.asarray(inputs)


def as_pandas(inputs: Any) -> Any:
    """A pandas frame from a polars frame or a dict of columns (for flavors whose models take pandas)."""
    import pandas as pd

    if frame_library(inputs) == "polars":
        return inputs.to_pandas()
    if isinstance(inputs, Mapping):
        return pd.DataFrame({k: np.asarray(v) for k, v in inputs.items()})
    return inputs


def single_file(folder: Path, suffixes: tuple[str, ...], flavor: str) -> str:
    """The one file in ``folder`` ending with one of ``suffixes`` (for `Flavor.adopt`)."""
    found = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name.endswith(suffixes)
    )
    if len(found) != 1:
        raise InvalidInput(
            f"the {flavor} flavor needs exactly one {'/'.join(suffixes)} file, found {found or 'none'}",
            field="artifact_path",
        )
    return found[0]


def chosen_file(folder: Path, options: Mapping[str, Any], suffixes: tuple[str, ...], flavor: str) -> str:
    """``options["file"]`` when given (a folder holding several files, such as an MLflow model
    directory, names its model file), else the one file ending with one of ``suffixes``."""
    file = options.get("file")
    if file is None:
        return single_file(folder, suffixes, flavor)
    if not isinstance(file, str) or not file or Path(file).is_absolute() or ".." in Path(file).parts:
        raise InvalidInput(f"file {file!r} is not a path inside the model's folder", field="options.file")
    if not (folder / file).is_file():
        raise InvalidInput(f"the {flavor} flavor's file {file!r} is not in the folder", field="options.file")
    return Path(file).as_posix()


def method_option(model: Any, options: Mapping[str, Any], default: str = "predict") -> str:
    """The method ``predict`` calls (``predict``, ``predict_proba``, …), checked on the model."""
    method = options.get("method", default)
    if not isinstance(method, str) or not method.isidentifier() or method.startswith("_"):
        raise InvalidInput(f"method {method!r} is not a method name", field="options.method")
    if model is not None and not callable(getattr(model, method, None)):
        raise InvalidInput(f"{type(model).__name__} has no method {method!r}", field="options.method")
    return method
