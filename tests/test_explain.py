"""Explanations of registered models (`mlbox.monitoring.explain`), in process over a real home.

Each method is checked against the model itself, never against the explainer's own numbers:
SHAP values of a row add up to the model's output minus the expected value (a tree model and a
non-tree model, on `predict_proba` and on `predict`), integrated gradients add up to
f(x) − f(baseline) computed with the torch module in hand, LIME weighs the feature the target is
made of first, and global importance ranks the informative features on top.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from mlbox.monitoring.explain import Explanations, explain
from mlbox.registry.signature import SchemaMismatch
from mlbox.services import Services
from mlbox.serving.errors import InvalidContent
from mlbox.store.errors import Conflict, InvalidInput


def _fresh(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame over a writable copy (the compiled trees refuse pandas' read-only views)."""
    return pd.DataFrame(np.array(frame.to_numpy(), copy=True), columns=frame.columns)


def _sums(row: Any) -> float:
    return float(sum(row.values.values()) + row.expected_value)


@pytest.fixture
def explanations(services: Services) -> Explanations:
    return Explanations(services.registry)


@pytest.fixture
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return _fresh(x), np.asarray(y)


def test_tree_shap_adds_up_to_the_predicted_probability(
    services: Services, explanations: Explanations
) -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(400, 5)), columns=[f"f{j}" for j in range(5)])
    y = (x["f0"] + 0.5 * x["f1"] > 0).astype(np.int64)
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(x, y)
    services.registry.register("churn", model=model, example_input=x.iloc[:3])

    rows = x.iloc[:6]
    background = x.iloc[:80]  # at most 100 rows: all of them are the background
    found = explanations.explain("churn", rows, background=background)
    assert found.explainer == "shap.TreeExplainer" and found.output == "probability"
    assert found.background == "given" and found.features == list(x.columns)
    proba = model.predict_proba(rows)
    for i, row in enumerate(found.rows):
        k = int(np.argmax(proba[i]))  # the predicted class is explained by default
        assert row.target == str(k)
        assert row.prediction == pytest.approx(proba[i, k], abs=1e-9)
        assert _sums(row) == pytest.approx(proba[i, k], abs=1e-6)
    # the expected value is the mean probability over the background
    assert found.rows[0].expected_value == pytest.approx(
        model.predict_proba(background)[:, int(found.rows[0].target)].mean(), abs=1e-6
    )
    # the other class on request: the complement
    other = explanations.explain("churn", rows.iloc[:1], background=x, target=1 - int(found.rows[0].target))
    assert _sums(other.rows[0]) == pytest.approx(1 - proba[0].max(), abs=1e-6)
    top, _ = found.rows[0].top(1)[0]
    assert top in ("f0", "f1")


def test_tree_regressor_without_background_adds_up_from_its_training_cover(
    services: Services, explanations: Explanations
) -> None:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    x = _fresh(x)
    model = RandomForestRegressor(n_estimators=20, max_depth=5, random_state=0).fit(x, y)
    services.registry.register("diabetes", model=model, example_input=x.iloc[:3])
    found = explanations.explain("diabetes", x.iloc[:5])
    assert found.explainer == "shap.TreeExplainer" and found.background == "tree cover"
    assert found.output == "prediction"
    for i, row in enumerate(found.rows):
        assert row.prediction == pytest.approx(model.predict(x.iloc[i : i + 1])[0])
        assert _sums(row) == pytest.approx(row.prediction, abs=1e-6)


def test_kernel_shap_adds_up_for_a_non_tree_classifier(
    services: Services, explanations: Explanations, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = iris
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x.to_numpy(), y)
    services.registry.register("iris-lr", model=model, example_input=x.to_numpy()[:3])
    rows = x.to_numpy()[[0, 60, 120]]
    found = explanations.explain("iris-lr", rows, background=x.to_numpy())
    assert found.explainer == "shap.KernelExplainer" and found.output == "probability"
    assert found.features == [f"input_{j}" for j in range(4)]
    proba = model.predict_proba(rows)
    assert [r.target for r in found.rows] == [str(int(k)) for k in proba.argmax(axis=1)]
    for i, row in enumerate(found.rows):
        assert _sums(row) == pytest.approx(proba[i].max(), abs=1e-6)
    fixed = explanations.explain("iris-lr", rows, background=x.to_numpy(), target=2)
    for i, row in enumerate(fixed.rows):
        assert row.target == "2" and _sums(row) == pytest.approx(proba[i, 2], abs=1e-6)


class Smooth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_integrated_gradients_add_up_to_the_output_minus_the_baseline(
    services: Services, explanations: Explanations
) -> None:
    torch.manual_seed(0)
    net = Smooth().eval()
    x = np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32)
    services.registry.register("net", model=net, example_input=x[:2])
    found = explanations.explain("net", x)
    assert found.method == "ig" and found.explainer == "captum.IntegratedGradients"
    assert found.background == "zeros" and found.output == "raw output"
    with torch.no_grad():
        at_x = net(torch.from_numpy(x)).numpy()
        at_zero = net(torch.zeros(1, 6)).numpy()[0]
    for i, row in enumerate(found.rows):
        k = int(np.argmax(at_x[i]))
        assert row.target == f"output[{k}]"
        assert row.prediction == pytest.approx(at_x[i, k], abs=1e-5)
        assert row.expected_value == pytest.approx(at_zero[k], abs=1e-5)
        assert sum(row.values.values()) == pytest.approx(at_x[i, k] - at_zero[k], abs=1e-3)


def test_lime_weighs_the_features_the_target_is_made_of(
    services: Services, explanations: Explanations
) -> None:
    rng = np.random.default_rng(2)
    x = pd.DataFrame(rng.normal(size=(300, 12)), columns=[f"c{j}" for j in range(12)])
    y = 5 * x["c3"] - x["c7"] + 0.01 * rng.normal(size=300)
    model = LinearRegression().fit(x, y)
    services.registry.register("lime", model=model, example_input=x.iloc[:3])
    found = explanations.explain("lime", x.iloc[:2], method="lime", background=x)
    assert found.method == "lime" and found.explainer == "lime.LimeTabularExplainer"
    for row in found.rows:
        assert 0 < len(row.values) <= 10  # the top features only
        assert set(row.values) == set(row.conditions)
        assert row.top(1)[0][0] == "c3"
        assert "c3" in row.conditions["c3"]


def test_global_importance_ranks_the_informative_features_first(services: Services) -> None:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(500, 6)), columns=list("abcdef"))
    y = 3 * x["d"] + x["b"]
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(x, y)
    services.registry.register("imp", model=model, example_input=x.iloc[:3])
    asked: list[tuple[str, int, int]] = []

    def reference_sample(name: str, version: int, n: int) -> pd.DataFrame:
        asked.append((name, version, n))
        return x.assign(prediction=model.predict(x)).iloc[:n]  # a reference holds more columns

    found = Explanations(services.registry, reference_sample).global_importance("imp", 150)
    assert asked == [("imp", 1, 150)]
    assert found.rows == 150 and found.explainer == "shap.TreeExplainer"
    assert [f.feature for f in found.features[:2]] == ["d", "b"]
    means = [f.mean_abs for f in found.features]
    assert means == sorted(means, reverse=True)
    # per-row explanations use the reference as background too
    row = Explanations(services.registry, reference_sample).explain("imp", x.iloc[:1])
    assert row.background == "reference"
    assert _sums(row.rows[0]) == pytest.approx(model.predict(x.iloc[:1])[0], abs=1e-6)


def test_the_python_function_explains_a_ref(
    services: Services, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = iris
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y == 2)
    services.registry.register("flower", model=model, example_input=x.iloc[:3])
    services.registry.set_alias("flower", "champion", 1)
    found = explain("flower@champion", x.iloc[[0, 120]])  # no background: the trees' log-odds
    assert found.output == "log-odds" and found.background == "tree cover"
    d = model.decision_function(x.iloc[[0, 120]])
    for i, row in enumerate(found.rows):
        sign = 1 if row.target == "True" else -1
        assert row.prediction == pytest.approx(sign * d[i])
        assert _sums(row) == pytest.approx(row.prediction, abs=1e-6)


# -- bad input ------------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_field(
    services: Services, explanations: Explanations, iris: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = iris
    tree = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, y == 1)
    services.registry.register("t", model=tree, example_input=x.iloc[:3])
    linear = LogisticRegression(max_iter=300).fit(x.to_numpy(), y)
    services.registry.register("l", model=linear, example_input=x.to_numpy()[:3])

    def refused(exc: type[Exception], field: str, *args: Any, **kwargs: Any) -> None:
        with pytest.raises(exc) as info:
            explanations.explain(*args, **kwargs)
        assert getattr(info.value, "field", None) == field, info.value

    refused(InvalidInput, "method", "t", x.iloc[:1], method="ig")  # not a torch model
    refused(InvalidInput, "method", "t", x.iloc[:1], method="anchors")
    refused(InvalidInput, "target", "t", x.iloc[:1], target="purple")
    refused(Conflict, "reference", "l", x.to_numpy()[:1])  # kernel SHAP needs a background
    refused(Conflict, "reference", "t", x.iloc[:1], method="lime")
    refused(SchemaMismatch, "petal width (cm)", "t", x.iloc[:1].drop(columns="petal width (cm)"))
    refused(InvalidInput, "inputs", "t", pd.concat([x, x]).iloc[:101])
    refused(InvalidInput, "background", "l", x.to_numpy()[:1], background=np.zeros((5, 3)))
    refused(InvalidContent, "petal length (cm)", "t", x.iloc[:2].assign(**{"petal length (cm)": np.inf}))
    refused(
        InvalidContent, "inputs", "t", x.iloc[:1].assign(**{"sepal width (cm)": 1e308})
    )  # float32 overflow
    with pytest.raises(InvalidInput) as info:
        explanations.global_importance("t", 0)
    assert info.value.field == "n"
    with pytest.raises(Conflict) as conflict:
        explanations.global_importance("t", 10)  # no reference stored
    assert conflict.value.field == "reference"


def test_a_plain_python_model_and_the_command_line_helpers(
    services: Services, explanations: Explanations
) -> None:
    from mlbox.monitoring.explain import explain_json, explanation_lines
    from tests.models import Doubler

    x = np.random.default_rng(5).normal(size=(40, 3))
    services.registry.register("double", model=Doubler(3.0), example_input=x[:2])
    found = explanations.explain("double", x[:2], background=x, target=1)
    assert found.explainer == "shap.KernelExplainer" and found.output == "prediction"
    for i, row in enumerate(found.rows):
        assert row.target == "output[1]" and row.prediction == pytest.approx(3 * x[i, 1])
        assert _sums(row) == pytest.approx(3 * x[i, 1], abs=1e-6)
        assert row.values["input_1"] == pytest.approx(3 * (x[i, 1] - x[:, 1].mean()), abs=1e-6)

    x4 = np.random.default_rng(6).normal(size=(100, 2))
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(x4, x4[:, 0])
    services.registry.register("rf", model=model, example_input=x4[:2])
    one = explain_json(explanations, "rf/1", "[0.5, -1.0]")
    assert len(one.rows) == 1 and one.features == ["input_0", "input_1"]
    text = explanation_lines(one)
    assert text[0].startswith("rf/1: shap (shap.TreeExplainer)") and "input_0" in text[2]
    with pytest.raises(InvalidInput) as info:
        explain_json(explanations, "rf", "{oops")
    assert info.value.field == "row"


def test_a_tensor_model_reads_its_background_from_the_monitoring_reference(services: Services) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 4))
    model = LogisticRegression().fit(x, (x[:, 2] > 0).astype(int))
    services.registry.register("tensor", model=model, example_input=x[:3])
    reference = pd.DataFrame(x, columns=[f"input_{j}" for j in range(4)])  # as the log names them
    services.monitoring.set_reference("tensor", frame=reference)
    found = services.monitoring.explanations.explain("tensor", x[:2])
    assert found.background == "reference" and found.explainer == "shap.KernelExplainer"
    proba = model.predict_proba(x[:2])
    for i, row in enumerate(found.rows):
        assert _sums(row) == pytest.approx(proba[i].max(), abs=1e-6)
    assert services.monitoring.explanations.global_importance("tensor", 30).features[0].feature == "input_2"


def test_kernel_importance_explains_at_most_its_cap_and_trees_are_built_once(services: Services) -> None:
    from mlbox.monitoring.explain import KERNEL_IMPORTANCE_ROWS

    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 3))
    linear = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    services.registry.register("cap", model=linear, example_input=x[:2])
    explanations = Explanations(services.registry)
    found = explanations.global_importance("cap", 300, sample=x)
    assert found.rows == KERNEL_IMPORTANCE_ROWS and found.features[0].feature == "input_0"

    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, x[:, 1])
    services.registry.register("trees", model=forest, example_input=x[:2])
    first = explanations.explain("trees", x[:2], background=x)
    again = explanations.explain("trees", x[2:4], background=x)
    assert first.explainer == again.explainer == "shap.TreeExplainer"
    built = [key for key in explanations._trees if key[0] == "trees"]
    assert len(built) == 1  # one explainer for one version and background
    assert explanations.global_importance("trees", 300, sample=x).rows == 300
