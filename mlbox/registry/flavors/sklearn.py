"""scikit-learn estimators and pipelines, pickled (protocol 5).

``predict`` calls the method named in the manifest (``predict`` unless
``options={"method": "predict_proba"}``). An estimator fitted on a frame keeps
its column names, so it is handed a pandas frame; one fitted on arrays gets
an array.

Tree models (forests, gradient boosting, single trees) are also saved
compiled (`mlbox.registry.flavors.trees`) once the compiled predictions have
matched the estimator's on the example input and on rows placed at the trees'
thresholds; they then load and predict without importing scikit-learn. The
pickle stays the model of record (``predictor.model`` unpickles it on first
use), and inputs with NaN go to it, as trees route missing values themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.registry.flavors import pickling
from mlbox.registry.flavors.base import (
    Flavor,
    Predictor,
    as_matrix,
    as_pandas,
    chosen_file,
    frame_library,
    method_option,
)
from mlbox.registry.flavors.trees import TREES_FILE, Forest, compile_trees, predict_forest

MODEL_FILE = "model.pkl"


class SklearnPredictor:
    def __init__(self, model: Any, method: str) -> None:
        self.model = model
        self._call = getattr(model, method)
        self._by_name = getattr(model, "feature_names_in_", None) is not None

    def predict(self, inputs: Any) -> Any:
        if self._by_name and not isinstance(inputs, np.ndarray):
            x = as_pandas(inputs)
        else:
            x = as_matrix(inputs)
        return np.asarray(self._call(x))


class CompiledTreesPredictor:
    """Scores with the compiled trees; the pickled estimator is loaded only if asked for."""

    def __init__(self, forest: Forest, columns: list[str] | None, folder: Path, manifest: Mapping[str, Any]):
        self.forest = forest
        self.columns = columns
        self._folder = folder
        self._manifest = manifest
        self._fallback: SklearnPredictor | None = None

    @property
    def model(self) -> Any:
        return self._native().model

    def _native(self) -> SklearnPredictor:
        if self._fallback is None:
            model = pickling.load(self._folder / self._manifest["file"])
            self._fallback = SklearnPredictor(model, method_option(model, self._manifest))
        return self._fallback

    def _matrix(self, inputs: Any) -> np.ndarray:
        if self.columns is not None and not isinstance(inputs, np.ndarray):
            if frame_library(inputs) is not None:
                return np.asarray(
                    inputs.select(self.columns).to_numpy()
                    if frame_library(inputs) == "polars"
                    else inputs[self.columns].to_numpy()
                )
            if isinstance(inputs, Mapping):
                return np.column_stack([np.asarray(inputs[c]) for c in self.columns])
        return as_matrix(inputs)

    def predict(self, inputs: Any) -> Any:
        try:
            x = np.asarray(self._matrix(inputs), dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            return self._native().predict(inputs)  # let the estimator word the error
        if x.ndim != 2 or x.shape[1] != self.forest.n_features or np.isnan(x).any():
            return self._native().predict(inputs)
        return predict_forest(self.forest, x)


def _probe_rows(forest: Forest, example: Any, seed: int = 0) -> np.ndarray:
    """Rows that exercise both sides of every threshold: exactly at it and one float32 step around."""
    rng = np.random.default_rng(seed)
    internal = forest.feature >= 0
    feats, thresholds = forest.feature[internal], forest.threshold[internal]
    rows = np.zeros((96, forest.n_features))
    for f in range(forest.n_features):
        own = thresholds[(feats == f) & np.isfinite(thresholds)]  # +inf: "all present values go left"
        if own.size:
            picked = np.float32(rng.choice(own, size=rows.shape[0]))
            nudge = rng.choice([-1, 0, 1], size=rows.shape[0])
            towards = np.where(nudge < 0, -np.inf, np.inf).astype(np.float32)
            stepped = np.where(nudge == 0, picked, np.nextafter(picked, towards))
            rows[:, f] = stepped.astype(np.float64)
    if example is not None:
        try:
            ex = np.asarray(as_matrix(example), dtype=np.float64).reshape(-1, forest.n_features)
            rows = np.vstack([ex, rows])
        except (ValueError, TypeError):
            pass
    return rows[np.isfinite(rows).all(axis=1)]


def _compiled(model: Any, method: str, example: Any) -> Forest | None:
    """The compiled trees when they give the estimator's own answers, else None."""
    forest = compile_trees(model, method)
    if forest is None:
        return None
    rows = _probe_rows(forest, example)
    columns = getattr(model, "feature_names_in_", None)
    if columns is not None:
        import pandas as pd

        native_in: Any = pd.DataFrame(rows, columns=list(columns))
    else:
        native_in = rows
    expected = np.asarray(getattr(model, method)(native_in))
    got = predict_forest(forest, rows)
    same = (
        np.allclose(got, expected, rtol=1e-12, atol=1e-12)
        if np.issubdtype(expected.dtype, np.floating)
        else np.array_equal(got, expected)
    )
    return forest if same else None


class SklearnFlavor(Flavor):
    name = "sklearn"

    def detect(self, model: object) -> bool:
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        import sklearn

        method = method_option(model, options)
        pickling.dump(model, folder / MODEL_FILE)
        manifest: dict[str, Any] = {
            "file": MODEL_FILE,
            "serialization": "pickle",
            "method": method,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "sklearn_version": sklearn.__version__,
        }
        forest = _compiled(model, method, example_input)
        if forest is not None:
            arrays = forest.to_arrays()
            columns = getattr(model, "feature_names_in_", None)
            if columns is not None:
                arrays["columns"] = np.asarray([str(c) for c in columns])
            with open(folder / TREES_FILE, "wb") as f:
                np.savez(f, allow_pickle=False, **arrays)
            manifest["compiled"] = TREES_FILE
        return manifest

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        file = chosen_file(folder, options, (".pkl", ".pickle", ".joblib"), self.name)
        return {
            "file": file,
            "serialization": "joblib" if file.endswith(".joblib") else "pickle",
            "method": method_option(None, options),
        }

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        if manifest.get("compiled"):
            with np.load(folder / manifest["compiled"], allow_pickle=False) as arrays:
                forest = Forest.from_arrays(arrays)
                columns = [str(c) for c in arrays["columns"]] if "columns" in arrays else None
            return CompiledTreesPredictor(forest, columns, folder, manifest)
        path = folder / manifest["file"]
        if manifest.get("serialization") == "joblib":
            import joblib

            model = joblib.load(path)
        else:
            model = pickling.load(path)
        return SklearnPredictor(model, method_option(model, manifest))


FLAVOR = SklearnFlavor()
