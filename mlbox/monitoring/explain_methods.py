"""The attribution methods themselves, on plain arrays: SHAP (tree and kernel), LIME, integrated
gradients.

Every function takes a numeric matrix ``x`` (rows × features) and a model as a function of such a
matrix, and answers `Attribution`: one value per row and feature plus the baseline the values are
measured from. No I/O, no registry: `mlbox.monitoring.explain` loads the model and decides which
output is explained, so these can be tested on any function. shap, lime, captum and torch are
imported inside the functions: the CLI and the TUI import this package and must start fast.

The contract every method keeps (and the tests check): for SHAP, ``values[i].sum()`` equals
``prediction[i] - expected[i]`` (exactly, up to float error); for integrated gradients it does up to
the integral's approximation; LIME's weights are a local linear model's, so they do not add up and
``expected`` is that model's intercept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Output = Callable[[np.ndarray], np.ndarray]
"""A model seen as a function of a matrix: ``(rows, features) -> (rows, outputs)``."""

BACKGROUND_ROWS = 100
"""The background rows TreeExplainer sees (more cost time, not accuracy)."""
KERNEL_BACKGROUND_ROWS = 50
"""The background rows of Kernel SHAP: each of its samples scores every one of them."""


@dataclass
class Attribution:
    """Per-row attributions of one output: ``values`` (rows × features), ``expected`` and
    ``prediction`` (one per row), the name of the explainer, and for LIME the conditions."""

    values: np.ndarray
    expected: np.ndarray
    prediction: np.ndarray
    explainer: str
    space: str
    """What the values are in: ``probability``, ``log-odds``, ``prediction`` or ``raw output``."""
    conditions: list[dict[int, str]] = field(default_factory=list)


def subsample(background: np.ndarray, n: int = BACKGROUND_ROWS, seed: int = 0) -> np.ndarray:
    """At most ``n`` rows of ``background``, drawn without replacement (the same ones every time)."""
    if len(background) <= n:
        return background
    rng = np.random.default_rng(seed)
    return background[np.sort(rng.choice(len(background), size=n, replace=False))]


# -- SHAP, trees ---------------------------------------------------------------------


def tree_explainer(estimator: Any, background: np.ndarray | None, classifier: bool) -> Any | None:
    """shap's TreeExplainer for ``estimator``, or None when shap does not read it as trees.

    With a background the values are interventional and measured from the mean output over the
    background (in probability for a classifier, so they explain `predict_proba`); without one
    they follow the trees' own training cover (``tree_path_dependent``), in the trees' raw
    output: probability for forests, log-odds for gradient boosting.
    """
    import shap

    kwargs: dict[str, Any] = (
        {"data": subsample(background), "feature_perturbation": "interventional"}
        if background is not None
        else {"feature_perturbation": "tree_path_dependent"}
    )
    try:
        explainer = shap.TreeExplainer(estimator, model_output="raw", **kwargs)
    except Exception:  # shap raises several types for a model it cannot read as trees
        return None
    tree_output = getattr(explainer.model, "tree_output", None)
    if classifier and background is not None and tree_output == "log_odds":
        try:
            explainer = shap.TreeExplainer(estimator, model_output="probability", **kwargs)
        except Exception:  # not every tree model has shap's probability transform
            return None
    return explainer


def tree_space(explainer: Any, classifier: bool) -> str:
    """The space a TreeExplainer's values are in (see `tree_explainer`)."""
    if getattr(explainer, "model_output", "raw") == "probability":
        return "probability"
    tree_output = getattr(explainer.model, "tree_output", None)
    if tree_output == "log_odds":
        return "log-odds"
    return "probability" if classifier else "prediction"


def shap_tree(explainer: Any, x: np.ndarray, targets: np.ndarray, classifier: bool) -> Attribution:
    """TreeExplainer's values for output ``targets[i]`` of row ``i``.

    A binary gradient-boosting classifier explains only its positive class: the values of class 0
    are those negated, measured from the complement (1 − p, or −log-odds).
    """
    raw = np.asarray(explainer.shap_values(x, check_additivity=False), dtype=np.float64)
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    rows = np.arange(len(x))
    space = tree_space(explainer, classifier)
    if raw.ndim == 3:  # (rows, features, outputs)
        values = raw[rows, :, targets]
        expected = base[targets]
    else:
        sign = np.where(targets == 0, -1.0, 1.0) if classifier else np.ones(len(x))
        values = raw * sign[:, None]
        b = base[-1]
        if classifier and space == "probability":
            expected = np.where(sign < 0, 1.0 - b, b)
        else:
            expected = b * sign
    prediction = expected + values.sum(axis=1)
    return Attribution(values, expected, prediction, "shap.TreeExplainer", space)


# -- SHAP, any model -------------------------------------------------------------------


def shap_kernel(output: Output, x: np.ndarray, targets: np.ndarray, background: np.ndarray) -> Attribution:
    """shap's KernelExplainer over ``output``, one output at a time.

    Kernel SHAP fits its weighted regression under the efficiency constraint, so the values of a
    row add up exactly to its output minus the mean output over the (sub-sampled) background.
    Chosen over shap's permutation explainer, which compiles numba code on first use (seconds
    of a request's time in every new process); this one is numpy only.
    """
    import shap

    bg = subsample(background, KERNEL_BACKGROUND_ROWS)
    values = np.zeros(x.shape, dtype=np.float64)
    expected = np.zeros(len(x), dtype=np.float64)
    prediction = np.zeros(len(x), dtype=np.float64)
    for k in np.unique(targets):
        chosen = np.flatnonzero(targets == k)

        def f(z: np.ndarray, k: int = int(k)) -> np.ndarray:
            return np.asarray(output(np.asarray(z, dtype=np.float64))[:, k], dtype=np.float64)

        explainer = shap.KernelExplainer(f, bg)
        found = explainer.shap_values(x[chosen], silent=True)
        values[chosen] = np.asarray(found, dtype=np.float64).reshape(len(chosen), x.shape[1])
        expected[chosen] = float(np.asarray(explainer.expected_value).reshape(-1)[0])
        prediction[chosen] = f(x[chosen])
    return Attribution(values, expected, prediction, "shap.KernelExplainer", "")


# -- LIME ----------------------------------------------------------------------------


def lime_weights(
    output: Output,
    x: np.ndarray,
    targets: np.ndarray,
    background: np.ndarray,
    names: list[str],
    top: int = 10,
    samples: int = 1000,
) -> Attribution:
    """LIME's local linear weights for the ``top`` features of each row (others 0).

    The output is explained as a regression (one output at a time, as `shap_kernel`), so a
    classifier's weights read in probability. ``expected`` is the local model's intercept;
    ``conditions`` the discretized rule LIME states for each weighted feature (``age > 40``).
    """
    from lime.lime_tabular import LimeTabularExplainer

    explainer = LimeTabularExplainer(
        subsample(background, 1000), feature_names=names, mode="regression", random_state=0
    )
    values = np.zeros(x.shape, dtype=np.float64)
    expected = np.zeros(len(x), dtype=np.float64)
    prediction = np.zeros(len(x), dtype=np.float64)
    conditions: list[dict[int, str]] = []
    for i, row in enumerate(x):
        k = int(targets[i])

        def f(z: np.ndarray, k: int = k) -> np.ndarray:
            return np.asarray(output(np.asarray(z, dtype=np.float64))[:, k], dtype=np.float64)

        found = explainer.explain_instance(row, f, num_features=min(top, x.shape[1]), num_samples=samples)
        label = 1 if 1 in found.local_exp else next(iter(found.local_exp))
        pairs = found.local_exp[label]
        for j, w in pairs:
            values[i, int(j)] = float(w)
        rules = found.as_list(label=label)  # the same order as local_exp's pairs
        conditions.append({int(j): str(rule) for (j, _), (rule, _) in zip(pairs, rules, strict=False)})
        intercept = found.intercept
        expected[i] = float(intercept[label] if isinstance(intercept, dict) else intercept)
        prediction[i] = float(f(row[None, :])[0])
    return Attribution(values, expected, prediction, "lime.LimeTabularExplainer", "", conditions)


# -- integrated gradients ----------------------------------------------------------------


def integrated_gradients(
    module: Any, x: np.ndarray, shape: tuple[int, ...], targets: np.ndarray | None, steps: int = 64
) -> Attribution:
    """Captum's integrated gradients of ``module`` from an all-zero baseline.

    ``x`` holds flattened rows; ``shape`` is one row's shape as the module takes it. ``targets``
    picks an output unit per row (None: a module with one output per row). ``expected`` is the
    output at the baseline, so the values of a row add up to ``prediction − expected`` within
    the integral's error (Gauss–Legendre, ``steps`` points).
    """
    import torch
    from captum.attr import IntegratedGradients

    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape((len(x), *shape))
    baseline = torch.zeros_like(inputs)
    target = None if targets is None else torch.from_numpy(targets.astype(np.int64))
    ig = IntegratedGradients(module)
    with torch.enable_grad():
        found = ig.attribute(inputs, baselines=baseline, target=target, n_steps=steps)
    with torch.no_grad():
        at_x = _unit(module(inputs), target)
        at_zero = _unit(module(baseline), target)
    values = found.detach().reshape(len(x), -1).double().numpy()
    return Attribution(values, at_zero, at_x, "captum.IntegratedGradients", "raw output")


def _unit(out: Any, target: Any) -> np.ndarray:
    """One output value per row: column ``target[i]`` of row ``i`` (or the only one)."""
    import torch

    if out.ndim == 1:
        return out.double().numpy()
    flat = out.reshape(out.shape[0], -1)
    if target is None:
        return flat[:, 0].double().numpy()
    return flat.gather(1, target.reshape(-1, 1)).reshape(-1).to(torch.float64).numpy()
