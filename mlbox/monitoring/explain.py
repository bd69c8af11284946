"""Explanations of registered models: per-prediction attributions and global importance.

`Explanations` loads a version through the registry (so its files are verified), turns the rows
to explain into a numeric matrix, picks the output to explain and hands both to a method of
`mlbox.monitoring.explain_methods`:

* ``shap`` (the default for everything but torch): shap's TreeExplainer for tree models
  (scikit-learn trees, forests, gradient boosting; a compiled-trees version is explained through
  its pickled estimator), otherwise shap's KernelExplainer over the model's output;
* ``lime``: LIME's local linear weights, model-agnostic, for tabular models;
* ``ig`` (the default for torch): integrated gradients (Captum) from an all-zero baseline.

What is explained: a classifier's probability of a class (the predicted one unless ``target``
names another), a regressor's prediction, a torch model's raw output unit (a logit for a
classifier). For SHAP the values of a row add up to ``prediction − expected_value``, where
``expected_value`` is the mean output over the background; a tree model with no background is
explained in its trees' raw output (log-odds for gradient boosting) from its training cover. For
integrated gradients ``expected_value`` is the output at the baseline and the sum holds up to the
integral's error.

The background comes from the monitoring reference of the version (``reference_sample``), else
from the caller; a method that needs one and has none is a `Conflict` naming ``reference``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import numpy as np

from mlbox.monitoring import explain_methods as methods
from mlbox.registry.loaded import LoadedModel
from mlbox.registry.refs import check_alias, check_version, parse_ref
from mlbox.registry.schemas import ModelVersion
from mlbox.serving.errors import InvalidContent
from mlbox.store.errors import Conflict, InvalidInput, MlboxError

if TYPE_CHECKING:
    import pandas as pd

    from mlbox.registry.service import RegistryService

Method = Literal["shap", "lime", "ig"]
METHODS: tuple[str, ...] = ("shap", "lime", "ig")
ReferenceSample = Callable[[str, int, int], "pd.DataFrame | None"]
"""``reference_sample(name, version, n)``: up to ``n`` rows of the version's reference, or None."""

MAX_ROWS = 100
"""Rows one explanation request may hold: SHAP costs hundreds of model calls per row."""
MAX_SAMPLE = 2000
"""The largest sample `Explanations.global_importance` explains."""
BACKGROUND_ROWS = methods.BACKGROUND_ROWS
MAX_VERSION = 9_999_999_999
"""The largest version a reference can name (`mlbox.registry.refs` reads ten digits)."""
KERNEL_IMPORTANCE_ROWS = 100
"""Rows global importance explains with kernel SHAP (the answer's ``rows`` says how many)."""
LOADED_KEPT = 4
"""Versions kept loaded between requests (loading verifies every file's hash)."""


class RowExplanation(msgspec.Struct, frozen=True):
    """One row: the output explained, its value, the baseline and one attribution per feature.

    ``conditions`` (LIME only) are the rules LIME states for its weighted features.
    """

    target: str
    prediction: float
    expected_value: float
    values: dict[str, float]
    conditions: dict[str, str] = {}

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` features with the largest absolute attribution, largest first."""
        ranked = sorted(self.values.items(), key=lambda kv: -abs(kv[1]))
        return [(f, v) for f, v in ranked[:k] if v != 0.0]


class Explanation(msgspec.Struct, frozen=True):
    """Per-prediction explanations of ``rows`` by ``model`` version ``version``."""

    model: str
    version: int
    method: str
    explainer: str
    output: str
    """What ``prediction``, ``expected_value`` and the values are in: ``probability``,
    ``log-odds``, ``prediction`` or ``raw output``."""
    background: str
    """Where the baseline came from: ``reference``, ``given``, ``tree cover`` or ``zeros``."""
    features: list[str]
    rows: list[RowExplanation]


class FeatureImportance(msgspec.Struct, frozen=True):
    feature: str
    mean_abs: float


class Importance(msgspec.Struct, frozen=True):
    """Global importance: the mean absolute attribution per feature over a sample, largest first."""

    model: str
    version: int
    method: str
    explainer: str
    output: str
    rows: int
    features: list[FeatureImportance]


# -- the rows as a matrix -------------------------------------------------------------------


@dataclass(frozen=True)
class Matrix:
    """Rows as numbers: ``x`` (rows × features), the feature names, and the way back to the
    model's input (`rebuild`), which casts each column to the dtype it came in."""

    x: np.ndarray
    features: list[str]
    row_shape: tuple[int, ...]
    columns: list[tuple[str, np.dtype[Any]]] | None
    tensor_dtype: np.dtype[Any] | None

    def rebuild(self, x: np.ndarray) -> Any:
        if self.columns is not None:
            return {name: _cast(x[:, j], dtype) for j, (name, dtype) in enumerate(self.columns)}
        assert self.tensor_dtype is not None
        return _cast(x, self.tensor_dtype).reshape((len(x), *self.row_shape))


def _cast(values: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind == "b":
        return values > 0.5
    if dtype.kind in "iu":
        return np.rint(values).astype(dtype)
    return values.astype(dtype, copy=False)


def _numeric(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(
            f"{name}: explanations need numeric inputs, got {arr.dtype} (encode categories in the model)",
            field=name,
        )
    return arr


def as_matrix(inputs: Any, tensor_name: str = "input") -> Matrix:
    """Validated model inputs (an array, a dict of columns, a frame) as a `Matrix`."""
    module = type(inputs).__module__
    if module.startswith(("pandas", "polars")) and hasattr(inputs, "columns"):
        inputs = {str(c): np.asarray(inputs[c].to_numpy()) for c in inputs.columns}
    if isinstance(inputs, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in inputs.items()}
        if len(arrays) == 1 and next(iter(arrays.values())).ndim != 1:
            ((tensor_name, only),) = arrays.items()
            return as_matrix(only, tensor_name)
        for name, arr in arrays.items():
            if arr.ndim != 1:
                raise InvalidInput(
                    f"{name}: explanations take one input tensor or a table of columns, not several tensors",
                    field=name,
                )
            _numeric(name, arr)
        names = list(arrays)
        x = np.column_stack([arrays[n].astype(np.float64) for n in names]) if names else np.zeros((0, 0))
        return Matrix(x, names, (len(names),), [(n, arrays[n].dtype) for n in names], None)
    arr = _numeric(tensor_name, np.asarray(inputs))
    if arr.ndim == 0:
        raise InvalidInput(f"{tensor_name}: needs one entry per row", field=tensor_name)
    row_shape = tuple(int(d) for d in arr.shape[1:])
    flat = arr.reshape(len(arr), -1).astype(np.float64)
    if arr.ndim <= 2:
        width = flat.shape[1]
        features = [f"{tensor_name}_{j}" for j in range(width)]
    else:
        features = [f"{tensor_name}_{'_'.join(map(str, idx))}" for idx in np.ndindex(*row_shape)]
    return Matrix(flat, features, row_shape, None, arr.dtype)


# -- the model as a function of the matrix -----------------------------------------------------


@dataclass
class Target:
    """A loaded version seen by the explainers: its kind, the objects they read, its outputs."""

    loaded: LoadedModel
    kind: Literal["sklearn", "torch", "generic"]
    native: Any
    """The scikit-learn estimator, or the torch module (None for a generic model)."""
    classes: list[Any] | None
    """A classifier's classes (its output is then ``predict_proba``)."""

    @property
    def version(self) -> ModelVersion:
        return self.loaded.version

    def outputs(self, matrix: Matrix) -> Callable[[np.ndarray], np.ndarray]:
        """``x -> (rows, outputs)``: probabilities, predictions or the torch module's output."""
        if self.kind == "sklearn":
            est = self.native
            call = est.predict_proba if self.classes is not None else est.predict

            def sk(x: np.ndarray) -> np.ndarray:
                return _two_d(call(self._estimator_input(matrix, x)))

            return sk
        if self.kind == "torch":
            module = self.native

            def torch_out(x: np.ndarray) -> np.ndarray:
                import torch

                t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(
                    (len(x), *matrix.row_shape)
                )
                with torch.no_grad():
                    out = module(t)
                if not isinstance(out, torch.Tensor):
                    raise InvalidInput(
                        "explanations need a torch model with one output tensor", field="model"
                    )
                return _two_d(out.detach().double().numpy())

            return torch_out

        def generic(x: np.ndarray) -> np.ndarray:
            return _two_d(self.loaded.predict(matrix.rebuild(x)))

        return generic

    def _estimator_input(self, matrix: Matrix, x: np.ndarray) -> Any:
        names = getattr(self.native, "feature_names_in_", None)
        if names is None:
            return x
        import pandas as pd

        frame = pd.DataFrame(x, columns=matrix.features)
        wanted = [str(n) for n in names]
        if all(n in frame.columns for n in wanted):
            return frame[wanted]
        return pd.DataFrame(x, columns=wanted)


def _two_d(out: Any) -> np.ndarray:
    arr = np.asarray(out)
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(
            f"the model answers {arr.dtype} values; only numbers can be explained", field="model"
        )
    arr = arr.astype(np.float64)
    return arr.reshape(len(arr), -1) if arr.ndim != 2 else arr


def target_of(loaded: LoadedModel) -> Target:
    """What kind of model ``loaded`` is, for the explainers."""
    predictor = loaded.predictor
    module = getattr(predictor, "module", None)
    if module is not None and "torch" in sys.modules:
        import torch

        if isinstance(module, torch.nn.Module):
            return Target(loaded, "torch", module, None)
    if loaded.version.flavor == "sklearn" and hasattr(predictor, "model"):
        est = predictor.model  # a compiled-trees version unpickles its estimator here
        classes = getattr(est, "classes_", None)
        if classes is not None and hasattr(est, "predict_proba"):
            return Target(loaded, "sklearn", est, list(classes))
        return Target(loaded, "sklearn", est, None)
    return Target(loaded, "generic", None, None)


def _targets(target: Target, out: np.ndarray, wanted: str | int | None) -> tuple[np.ndarray, list[str]]:
    """The output index explained for each row, and the names of the outputs."""
    n, width = out.shape
    if target.classes is not None:
        names = [str(c) for c in target.classes]
    elif width == 1:
        names = ["prediction" if target.kind != "torch" else "output"]
    else:
        names = [f"output[{k}]" for k in range(width)]
    if wanted is None:
        chosen = np.argmax(out, axis=1) if width > 1 else np.zeros(n, dtype=np.int64)
        return chosen.astype(np.int64), names
    if target.classes is not None:
        matches = [k for k, c in enumerate(target.classes) if str(c) == str(wanted)]
        if not matches:
            raise InvalidInput(
                f"target {wanted!r} is not a class of this model; its classes are {names}", field="target"
            )
        return np.full(n, matches[0], dtype=np.int64), names
    if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 <= wanted < width:
        raise InvalidInput(
            f"target must be an output index from 0 to {width - 1}, got {wanted!r}", field="target"
        )
    return np.full(n, wanted, dtype=np.int64), names


# -- the service object -------------------------------------------------------------------


class Explanations:
    """Explanations of registered versions (`explain`, `global_importance`); thread-safe."""

    def __init__(self, registry: RegistryService, reference_sample: ReferenceSample | None = None) -> None:
        self.registry = registry
        self.reference_sample = reference_sample
        self._loaded: OrderedDict[tuple[str, int], Target] = OrderedDict()
        self._lock = threading.Lock()
        self._trees: OrderedDict[tuple[str, int, bytes | None], Any] = OrderedDict()

    # -- loading

    def target(self, ref: str | ModelVersion) -> Target:
        """The version ``ref`` names, loaded once (verified) and kept for the next requests."""
        mv = ref if isinstance(ref, ModelVersion) else self.registry.resolve(ref)
        key = (mv.name, mv.version)
        with self._lock:
            found = self._loaded.get(key)
            if found is not None:
                self._loaded.move_to_end(key)
                return found
        loaded = target_of(self.registry.load(mv))
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > LOADED_KEPT:
                self._loaded.popitem(last=False)
        return loaded

    def _prepare(self, target: Target, rows: Any, field: str) -> Matrix:
        """Rows as the signature takes them (an array is read as a table's columns when the
        signature is a table of as many columns), then as a `Matrix`."""
        signature = target.loaded.signature
        if (
            signature is not None
            and signature.inputs.kind == "columns"
            and isinstance(rows, np.ndarray | list)
        ):
            arr = np.asarray(rows)
            names = signature.inputs.names()
            if arr.ndim == 2 and arr.shape[1] == len(names):
                rows = {n: arr[:, j] for j, n in enumerate(names)}
        try:
            inputs = target.loaded.prepare(rows)
        except InvalidInput as exc:
            if field == "inputs":
                raise
            raise InvalidInput(f"{field}: {exc}", field=field) from None
        tensor = "input"
        if signature is not None and signature.inputs.kind == "tensor":
            tensor = signature.inputs.tensors[0].name or "input"
        return as_matrix(inputs, tensor)

    def _background(
        self, target: Target, matrix: Matrix, given: Any | None, n: int = BACKGROUND_ROWS
    ) -> tuple[np.ndarray | None, str]:
        if given is not None:
            bg = self._prepare(target, given, "background")
            return self._fit(bg, matrix, "background"), "given"
        if self.reference_sample is not None:
            mv = target.version
            frame = self.reference_sample(mv.name, mv.version, n)
            if frame is not None and len(frame):
                return self._fit(self._reference_matrix(target, frame), matrix, "reference"), "reference"
        return None, ""

    def _reference_matrix(self, target: Target, frame: Any) -> Matrix:
        """A stored reference's rows: the model's columns picked out of it (it may hold more,
        such as the prediction); a tensor model's features as ``input_0``, ``input_1``, ... (the
        names the monitoring reference and the prediction log give them)"""
        present = [str(c) for c in frame.columns]
        signature = target.loaded.signature
        if signature is not None and signature.inputs.kind == "columns":
            wanted = signature.inputs.names()
            if all(c in present for c in wanted):
                return self._prepare(target, frame[wanted], "reference")
        elif signature is not None and signature.inputs.kind == "tensor":
            spec = signature.inputs.tensors[0]
            name = spec.name or "input"
            if len(spec.shape) == 2 and spec.shape[1] > 0:
                wanted = [f"{name}_{j}" for j in range(spec.shape[1])]
                if all(c in present for c in wanted):
                    return self._prepare(target, np.asarray(frame[wanted].to_numpy()), "reference")
        return self._prepare(target, frame, "reference")

    @staticmethod
    def _fit(bg: Matrix, matrix: Matrix, field: str) -> np.ndarray:
        if bg.x.shape[1:] != matrix.x.shape[1:]:
            raise InvalidInput(
                f"{field}: has {bg.x.shape[1]} features where the rows have {matrix.x.shape[1]}", field=field
            )
        if not len(bg.x):
            raise InvalidInput(f"{field}: holds no rows", field=field)
        return bg.x

    # -- explaining

    def explain(
        self,
        ref: str | ModelVersion,
        rows: Any,
        *,
        method: str | None = None,
        target: str | int | None = None,
        background: Any | None = None,
    ) -> Explanation:
        """Per-row attributions of ``rows`` (an array, a frame, a dict of columns) by ``ref``."""
        model = self.target(ref)
        return self.explain_inputs(model, self._prepare(model, rows, "inputs"), method, target, background)

    def explain_inputs(
        self,
        model: Target,
        matrix: Matrix,
        method: str | None = None,
        target: str | int | None = None,
        background: Any | None = None,
        *,
        limit: int | None = MAX_ROWS,
    ) -> Explanation:
        """`explain` for rows already validated against the signature (as `Matrix`)."""
        chosen = check_method(method, model)
        bg, source = self._background(model, matrix, background) if chosen != "ig" else (None, "zeros")
        return self._explain(model, matrix, chosen, target, bg, source, limit)

    def _explain(
        self,
        model: Target,
        matrix: Matrix,
        chosen: str,
        target: str | int | None,
        bg: np.ndarray | None,
        source: str,
        limit: int | None,
    ) -> Explanation:
        n = len(matrix.x)
        if n == 0:
            raise InvalidInput("no rows to explain", field="inputs")
        if limit is not None and n > limit:
            raise InvalidInput(f"at most {limit} rows per explanation, got {n}", field="inputs")
        bad = ~np.isfinite(matrix.x)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            feature = matrix.features[col]
            raise InvalidContent(
                f"{feature}: row {row} holds {matrix.x[row, col]!r}; explanations need finite values",
                field=feature,
            )
        output = model.outputs(matrix)
        try:
            predicted = output(matrix.x)
        except MlboxError:
            raise
        except Exception as exc:  # the model's own refusal, worded by its framework
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidContent(f"the model refused the rows: {first[:300]}", field="inputs") from None
        targets, names = _targets(model, predicted, target)
        attribution = self._attribute(model, matrix, output, targets, chosen, bg)
        if chosen == "shap" and attribution.explainer == "shap.TreeExplainer" and bg is None:
            source = "tree cover"
        if attribution.space == "log-odds":
            attribution.prediction = _log_odds(model, matrix, targets, attribution.prediction)
        elif chosen != "ig":
            attribution.prediction = predicted[np.arange(n), targets]
        space = attribution.space or ("probability" if model.classes is not None else "prediction")
        features = matrix.features
        rows = []
        for i in range(n):
            conditions = attribution.conditions[i] if attribution.conditions else {}
            values = attribution.values[i]
            keep = range(len(features)) if chosen != "lime" else sorted(conditions) or range(0)
            rows.append(
                RowExplanation(
                    target=names[int(targets[i])],
                    prediction=float(attribution.prediction[i]),
                    expected_value=float(attribution.expected[i]),
                    values={features[j]: float(values[j]) for j in keep},
                    conditions={features[j]: rule for j, rule in conditions.items()},
                )
            )
        mv = model.version
        return Explanation(
            model=mv.name,
            version=mv.version,
            method=chosen,
            explainer=attribution.explainer,
            output=space,
            background=source,
            features=features,
            rows=rows,
        )

    def _attribute(
        self,
        model: Target,
        matrix: Matrix,
        output: Callable[[np.ndarray], np.ndarray],
        targets: np.ndarray,
        method: str,
        bg: np.ndarray | None,
    ) -> methods.Attribution:
        if method == "ig":
            width = output(matrix.x[:1]).shape[1]
            return methods.integrated_gradients(
                model.native, matrix.x, matrix.row_shape, targets if width > 1 else None
            )
        classifier = model.classes is not None
        if method == "shap" and model.kind == "sklearn":
            explainer = self._tree_explainer(model, bg, classifier)
            if explainer is not None:
                return methods.shap_tree(explainer, matrix.x, targets, classifier)
        if bg is None:
            mv = model.version
            raise Conflict(
                f"{method} needs background rows for {mv.ref}: no monitoring reference is stored for it"
                " (store one, or pass background rows)",
                field="reference",
            )
        if method == "lime":
            return methods.lime_weights(output, matrix.x, targets, bg, matrix.features)
        return methods.shap_kernel(output, matrix.x, targets, bg)

    def _tree_explainer(self, model: Target, bg: np.ndarray | None, classifier: bool) -> Any | None:
        """shap's TreeExplainer for this version and background, built once: building it walks
        every tree (and the background through them), a good part of a small request's time."""
        sample = None if bg is None else methods.subsample(bg)
        digest = None if sample is None else hashlib.sha256(np.ascontiguousarray(sample).tobytes()).digest()
        key = (model.version.name, model.version.version, digest)
        with self._lock:
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
        explainer = methods.tree_explainer(model.native, sample, classifier)
        with self._lock:
            self._trees[key] = explainer
            while len(self._trees) > LOADED_KEPT:
                self._trees.popitem(last=False)
        return explainer

    def global_importance(
        self,
        ref: str | ModelVersion,
        n: int = 200,
        *,
        method: str | None = None,
        sample: Any | None = None,
    ) -> Importance:
        """Mean |attribution| per feature over ``n`` rows of the reference (or of ``sample``).

        Each row's attribution is for its predicted class (a classifier) or its output; the
        background is the sample itself.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLE:
            raise InvalidInput(f"n must be an integer from 1 to {MAX_SAMPLE}, got {n!r}", field="n")
        model = self.target(ref)
        chosen = check_method(method, model)
        if chosen == "lime":
            raise InvalidInput("global importance is computed with shap or ig, not lime", field="method")
        mv = model.version
        if sample is None and self.reference_sample is not None:
            sample = self.reference_sample(mv.name, mv.version, n)
        if sample is None or len(sample) == 0:
            raise Conflict(
                f"no monitoring reference is stored for {mv.ref}: global importance needs its rows",
                field="reference",
            )
        if type(sample).__module__.startswith("pandas"):
            matrix = self._reference_matrix(model, sample)
        else:
            matrix = self._prepare(model, sample, "reference")
        rows = min(n, len(matrix.x))
        trees = (
            model.kind == "sklearn"
            and self._tree_explainer(model, None, model.classes is not None) is not None
        )
        if chosen == "shap" and not trees:
            rows = min(rows, KERNEL_IMPORTANCE_ROWS)  # kernel SHAP costs ~0.1-1 s a row
        matrix = Matrix(
            matrix.x[:rows], matrix.features, matrix.row_shape, matrix.columns, matrix.tensor_dtype
        )
        bg, source = (None, "zeros") if chosen == "ig" else (methods.subsample(matrix.x), "reference")
        found = self._explain(model, matrix, chosen, None, bg, source, None)
        values = np.array([[row.values[f] for f in found.features] for row in found.rows])
        means = np.abs(values).mean(axis=0)
        order = np.argsort(-means, kind="stable")
        return Importance(
            model=mv.name,
            version=mv.version,
            method=found.method,
            explainer=found.explainer,
            output=found.output,
            rows=len(values),
            features=[FeatureImportance(found.features[j], float(means[j])) for j in order],
        )

    # -- request bodies (the HTTP route, and a CLI's --row JSON)

    def explain_body(self, name: str, body: bytes) -> Explanation:
        """An explanation for a JSON body of the predict route (``instances``, ``inputs``,
        ``dataframe_split``, ``dataframe_records`` or an OIP V2 request), plus ``method``,
        ``target`` and one of ``version`` / ``alias`` (neither: the latest version)."""
        from mlbox.serving.codecs import decode_json_body, decode_mlflow, decode_oip
        from mlbox.serving.tensors import conform

        doc = decode_json_body(body)
        if not isinstance(doc, dict):
            raise InvalidInput("expected a JSON object", field="body")
        method = doc.pop("method", None)
        if method is not None and not isinstance(method, str):
            raise InvalidInput(f"method must be one of {list(METHODS)}", field="method")
        target = doc.pop("target", None)
        if target is not None and (isinstance(target, bool) or not isinstance(target, str | int)):
            raise InvalidInput("target must be a class label or an output index", field="target")
        ref = model_ref(name, doc.pop("version", None), doc.pop("alias", None))
        model = self.target(ref)
        rest = msgspec.json.encode(doc)
        oip = isinstance(doc.get("inputs"), list) and any(
            isinstance(t, dict) and "datatype" in t for t in doc["inputs"]
        )
        payload = decode_oip(rest).payload if oip else decode_mlflow(rest)
        signature = model.loaded.signature
        inputs, _ = conform(None if signature is None else signature.inputs, payload)
        tensor = "input"
        if signature is not None and signature.inputs.kind == "tensor":
            tensor = signature.inputs.tensors[0].name or "input"
        return self.explain_inputs(model, as_matrix(inputs, tensor), method, target)


def _log_odds(model: Target, matrix: Matrix, targets: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """A boosted classifier's log-odds from the model itself (``decision_function``), so the
    answer shows the model's value and not only the explainer's sum."""
    decide = getattr(model.native, "decision_function", None)
    if decide is None:
        return fallback
    d = _two_d(decide(model._estimator_input(matrix, matrix.x)))
    if d.shape[1] == 1:
        return np.where(targets == 0, -d[:, 0], d[:, 0])
    return d[np.arange(len(d)), targets]


def check_method(method: str | None, model: Target) -> str:
    """``method`` checked against the model (None: ``ig`` for torch, ``shap`` otherwise)."""
    if method is None:
        return "ig" if model.kind == "torch" else "shap"
    if method not in METHODS:
        raise InvalidInput(f"method {method!r} is not one of {list(METHODS)}", field="method")
    if method == "ig" and model.kind != "torch":
        raise InvalidInput(
            f"integrated gradients need a torch model; {model.version.ref} is {model.version.flavor}",
            field="method",
        )
    return method


def model_ref(name: str, version: object = None, alias: object = None) -> str:
    """``name/version``, ``name@alias`` or ``name`` (the latest), refusing both at once."""
    parse_ref(name, "name")
    if "@" in name or "/" in name or ":" in name:
        if version is not None or alias is not None:
            raise InvalidInput(
                "give a version or an alias in the name or the body, not both", field="version"
            )
        return name
    if version is not None and alias is not None:
        raise InvalidInput("give a version or an alias, not both", field="version")
    if version is not None:
        if check_version(version) > MAX_VERSION:
            raise InvalidInput(f"version {version} does not exist (at most {MAX_VERSION})", field="version")
        return f"{name}/{version}"
    if alias is not None:
        return f"{name}@{check_alias(alias)}"
    return name


def explain_json(
    explanations: Explanations,
    ref: str,
    text: str,
    *,
    method: str | None = None,
    target: str | int | None = None,
) -> Explanation:
    """For a command line's ``--row JSON``: one record (``{"age": 41, ...}``), a list of records,
    one row of numbers or a list of rows; ``ref`` as ``name``, ``name@alias`` or ``name/3``."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"row is not JSON: {exc}", field="row") from None
    if isinstance(doc, dict) or (isinstance(doc, list) and doc and not isinstance(doc[0], list | dict)):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        raise InvalidInput("row must be a record, a row of numbers, or a non-empty list of them", field="row")
    body: dict[str, Any] = {"instances": doc}
    if method is not None:
        body["method"] = method
    if target is not None:
        body["target"] = target
    return explanations.explain_body(ref, msgspec.json.encode(body))


def explanation_lines(found: Explanation, top: int = 8) -> list[str]:
    """Plain text for a terminal: per row, the output and the ``top`` attributions with a bar.
    Feature names and targets come from the user: control characters are shown escaped."""
    from mlbox.textsafe import visible

    lines = [
        f"{visible(found.model)}/{found.version}: {found.method} ({found.explainer}), {found.output},"
        f" baseline from {found.background}"
    ]
    for i, row in enumerate(found.rows):
        lines.append(
            f"row {i}: {visible(row.target)} = {row.prediction:.4g} (expected {row.expected_value:.4g})"
        )
        ranked = row.top(top)
        scale = max((abs(v) for _, v in ranked), default=0.0) or 1.0
        width = max((len(visible(f)) for f, _ in ranked), default=0)
        for feature, value in ranked:
            bar = ("+" if value > 0 else "-") * max(1, round(20 * abs(value) / scale))
            rule = row.conditions.get(feature)
            tail = f"  ({visible(rule)})" if rule else ""
            lines.append(f"  {visible(feature):<{width}} {value:+.4f} {bar}{tail}")
    return lines


def explain(
    ref: str,
    rows: Any,
    *,
    method: str | None = None,
    target: str | int | None = None,
    background: Any | None = None,
) -> Explanation:
    """Explain ``rows`` scored by the registered version ``ref`` (``name``, ``name@alias``,
    ``name/3``), from a script or a notebook, over the default home's registry::

        from mlbox.monitoring.explain import explain
        e = explain("churn@champion", frame, background=train_frame)
        e.rows[0].top(5)

    ``background`` (rows in the same form) is needed by ``lime`` and by SHAP for a model that is
    not made of trees; a tree model without one is explained from its training cover.
    """
    import mlbox

    return Explanations(mlbox._registry()).explain(
        ref, rows, method=method, target=target, background=background
    )
