"""Tree models served from compiled arrays give scikit-learn's own answers, without importing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import ensemble, tree
from sklearn.datasets import make_classification, make_regression

from mlbox.registry.flavors import load_model, save_model
from mlbox.registry.flavors.sklearn import CompiledTreesPredictor
from mlbox.registry.flavors.trees import compile_trees, predict_forest

Xc, yc = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3, random_state=0)
Xb, yb = make_classification(n_samples=400, n_features=8, random_state=1)
Xr, yr = make_regression(n_samples=400, n_features=8, random_state=2)

CASES: list[tuple[Any, np.ndarray, np.ndarray]] = [
    (ensemble.GradientBoostingClassifier(n_estimators=40, random_state=0), Xb, yb),
    (ensemble.GradientBoostingClassifier(n_estimators=20, max_depth=4, random_state=0), Xc, yc),
    (ensemble.GradientBoostingRegressor(n_estimators=30, random_state=0), Xr, yr),
    (ensemble.RandomForestClassifier(n_estimators=15, random_state=0), Xc, np.array(["a", "b", "c"])[yc]),
    (ensemble.RandomForestRegressor(n_estimators=10, random_state=0), Xr, yr),
    (ensemble.ExtraTreesClassifier(n_estimators=10, random_state=0), Xb, yb),
    (tree.DecisionTreeClassifier(random_state=0), Xc, yc),
    (tree.DecisionTreeRegressor(max_depth=5, random_state=0), Xr, yr),
]


def _same(got: np.ndarray, expected: np.ndarray) -> bool:
    if np.issubdtype(np.asarray(expected).dtype, np.floating):
        return bool(np.allclose(got, expected, rtol=1e-12, atol=1e-12))
    return bool(np.array_equal(got, expected))


PAIRS = [(case, method) for case in range(len(CASES)) for method in ("predict", "predict_proba")]


@pytest.mark.parametrize("native", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize(("case", "method"), [p for p in PAIRS if hasattr(CASES[p[0]][0], p[1])])
def test_compiled_equals_sklearn(case: int, method: str, native: bool) -> None:
    """Both walks (numba's machine code, and numpy's kept where numba is missing) on the probes."""
    model, x, y = CASES[case]
    model.fit(x, y)
    forest = compile_trees(model, method)
    assert forest is not None
    rng = np.random.default_rng(case)
    # random rows, training rows, and rows sitting exactly on thresholds
    on_thresholds = np.tile(x[:50], 1)
    feats = forest.feature[forest.feature >= 0]
    thr = forest.threshold[forest.feature >= 0]
    picks = rng.integers(0, feats.size, size=50)
    on_thresholds[np.arange(50), feats[picks]] = np.float32(thr[picks])
    for rows in (rng.normal(size=(200, x.shape[1])) * 3, x, on_thresholds, x[:1]):
        assert _same(predict_forest(forest, rows, native=native), getattr(model, method)(rows))


def test_unsupported_models_are_not_compiled() -> None:
    hist = ensemble.HistGradientBoostingClassifier(max_iter=5).fit(Xb, yb)
    assert compile_trees(hist, "predict") is None
    exp = ensemble.GradientBoostingClassifier(loss="exponential", n_estimators=5).fit(Xb, yb)
    assert compile_trees(exp, "predict") is None
    reg = ensemble.GradientBoostingRegressor(n_estimators=5).fit(Xr, yr)
    assert compile_trees(reg, "predict_proba") is None
    assert compile_trees(reg, "apply") is None


def test_saved_tree_model_loads_compiled_and_falls_back_on_nan(tmp_path: Path) -> None:
    holes = Xb.copy()
    holes[::7, 0] = np.nan  # forests learn where missing values go; the compiled walk leaves them to it
    model = ensemble.RandomForestClassifier(n_estimators=10, random_state=0).fit(holes, yb)
    manifest = save_model(model, tmp_path / "m", example_input=Xb[:5])
    assert manifest["compiled"] == "trees.npz"
    predictor = load_model(tmp_path / "m")
    assert isinstance(predictor, CompiledTreesPredictor)
    assert np.array_equal(predictor.predict(Xb[:50]), model.predict(Xb[:50]))
    assert np.array_equal(predictor.predict(holes[:50]), model.predict(holes[:50]))
    assert type(predictor.model).__name__ == "RandomForestClassifier"


def test_frame_fitted_model_takes_columns_by_name(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(Xr, columns=[f"f{i}" for i in range(Xr.shape[1])])
    model = ensemble.RandomForestRegressor(n_estimators=5, random_state=0).fit(frame, yr)
    save_model(model, tmp_path / "m", example_input=frame.head())
    predictor = load_model(tmp_path / "m")
    assert isinstance(predictor, CompiledTreesPredictor)
    shuffled = {c: frame[c].to_numpy() for c in reversed(frame.columns)}
    assert np.allclose(predictor.predict(shuffled), model.predict(frame), rtol=1e-12)


def test_compiled_model_scores_without_importing_sklearn(tmp_path: Path) -> None:
    model = ensemble.RandomForestClassifier(n_estimators=5, random_state=0).fit(Xc, yc)
    save_model(model, tmp_path / "m", example_input=Xc[:5])
    np.save(tmp_path / "x.npy", Xc[:20])
    code = (
        "import sys, numpy as np\n"
        "from mlbox.registry.flavors import load_model\n"
        f"p = load_model({str(tmp_path / 'm')!r})\n"
        f"print(p.predict(np.load({str(tmp_path / 'x.npy')!r})).tolist())\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    predictions, imported = out.strip().splitlines()
    assert predictions == str(model.predict(Xc[:20]).tolist())
    assert imported == "False"


def test_large_inputs_walk_on_several_threads_with_the_same_answers() -> None:
    """Above `PARALLEL_ROWS` rows per thread the walk is split across threads (`mlbox predict`'s
    chunks): each row's sum is still its own, in tree order, so the answers are the estimator's."""
    from mlbox.registry.flavors import trees

    model = ensemble.GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(Xc, yc)
    forest = compile_trees(model, "predict_proba")
    assert forest is not None
    rows = np.random.default_rng(5).normal(size=(2 * trees.PARALLEL_ROWS + 17, Xc.shape[1])) * 2
    got = predict_forest(forest, rows)
    assert np.array_equal(got, predict_forest(forest, rows, native=False))
    assert np.allclose(got, model.predict_proba(rows), rtol=1e-12, atol=1e-12)


def test_importing_the_trees_does_not_import_numba() -> None:
    code = (
        "import sys\n"
        "import mlbox.registry.flavors.sklearn, mlbox.registry.flavors.trees\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("depth", "bits"), [(3, 32), (6, 64)])
def test_shallow_trees_take_the_masked_walk_with_the_estimators_answers(depth: int, bits: int) -> None:
    """Trees of up to 32 or 64 leaves are walked by `accumulate_masked` (every node tested for a
    block of rows at once) from two rows on, a lone row by the row walk; both give the estimator's
    answers, also on rows sitting on the thresholds, and deeper trees keep the row walk."""
    model = ensemble.GradientBoostingClassifier(n_estimators=25, max_depth=depth, random_state=0).fit(Xc, yc)
    forest = compile_trees(model, "predict_proba")
    assert forest is not None and forest.masked is not None
    assert forest.masked.keep.dtype == np.dtype(f"uint{bits}")
    feats = forest.feature[forest.feature >= 0]
    thr = forest.threshold[forest.feature >= 0]
    rows = np.tile(Xc[:600], 1)
    picks = np.random.default_rng(depth).integers(0, feats.size, size=rows.shape[0])
    rows[np.arange(rows.shape[0]), feats[picks]] = np.float32(thr[picks])
    for x in (rows, rows[:2], rows[:1]):
        got = predict_forest(forest, x)
        assert np.array_equal(got, predict_forest(forest, x, native=False))
        assert np.allclose(got, model.predict_proba(x), rtol=1e-12, atol=1e-12)
    deep = tree.DecisionTreeClassifier(random_state=0).fit(Xc, yc)
    assert compile_trees(deep, "predict").masked is None  # type: ignore[union-attr]
