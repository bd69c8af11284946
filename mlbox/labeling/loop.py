"""Models in the loop: pre-labels and queue order from a registered model, and the retraining job.

A task's model input is its ``features`` or ``pixels`` list (numbers); the
model's probability columns are the schema's choices in order. `score_project`
loads ``NAME@ALIAS`` through the registry (offline, verified files), writes a
pre-label with its confidence per open task and orders the queue by the
model's uncertainty. `retrain` is the scheduler job that the service submits
every N labels: it fits a model on the consensus labels, registers it as a new
version (alias ``labeling``) from its own run, records the model's cross-validated
accuracy against the number of labels (`cv_accuracy`; the labeling screen draws
it as labels grow) and re-scores the queue.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.labeling.active import uncertainty
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    from mlbox.labeling.service import LabelingService
    from mlbox.registry.loaded import LoadedModel
    from mlbox.registry.service import RegistryService

INPUT_KEYS = ("features", "pixels")
RETRAIN_ALIAS = "labeling"


def inputs_of(data: dict[str, Any]) -> list[float] | None:
    for key in INPUT_KEYS:
        v = data.get(key)
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            return [float(x) for x in v]
    return None


def as_proba(out: Any, k: int) -> np.ndarray:
    """A model's output as class probabilities (softmax over scores that are not probabilities)."""
    arr = np.asarray(out, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != k:
        raise InvalidInput(
            f"the model answers shape {arr.shape}; pre-labels need one score per choice ({k})", field="model"
        )
    if (arr < 0).any() or not np.allclose(arr.sum(axis=1), 1.0, atol=1e-3):
        arr = np.exp(arr - arr.max(axis=1, keepdims=True))
        arr /= arr.sum(axis=1, keepdims=True)
    return np.asarray(arr)


def class_scores(loaded: LoadedModel, x: np.ndarray) -> Any:
    """One score per class for each row: what the version answers, or, for a scikit-learn
    classifier registered to answer labels (``predict``, the default), its ``predict_proba``
    (the demo's champion is one)."""
    from mlbox.registry.flavors.sklearn import SklearnPredictor

    out = loaded.predict(x)
    estimator = getattr(loaded.predictor, "model", None)
    if np.ndim(out) == 1 and callable(getattr(estimator, "predict_proba", None)):
        return SklearnPredictor(estimator, "predict_proba").predict(loaded.prepare(x))
    return out


def score_project(
    lab: LabelingService, registry: RegistryService, project: str, ref: str, strategy: str = "margin"
) -> int:
    """Pre-label every open task of ``project`` with ``ref`` and order the queue by uncertainty."""
    schema = lab.schema(project)
    if not schema.choices:
        raise InvalidInput("model pre-labels need a project with choices", field="model")
    loaded = registry.load(ref)
    ids, rows = [], []
    for task_id, data in lab.open_task_data(project):
        x = inputs_of(data)
        if x is not None:
            ids.append(task_id)
            rows.append(x)
    if not ids:
        return 0
    X = np.asarray(rows, dtype=np.float32)
    proba = as_proba(class_scores(loaded, X), len(schema.choices))
    best = proba.argmax(axis=1)
    model = f"{loaded.version.name}/{loaded.version.version}"
    lab.set_prelabels(
        project,
        [
            (t, {"label": schema.choices[int(b)]}, float(p[b]))
            for t, b, p in zip(ids, best, proba, strict=True)
        ],
        model=model,
    )
    lab.set_priorities(project, list(zip(ids, uncertainty(proba, strategy).tolist(), strict=True)))
    return len(ids)


def training_set(lab: LabelingService, project: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and class indices of the tasks with a consensus label."""
    schema = lab.schema(project)
    chosen = lab.consensus(project)
    X, y = [], []
    for task in lab.tasks_by_id(project, list(chosen)):
        x = inputs_of(task.data)
        label = chosen[task.id][0].get("label")
        if x is not None and label in schema.choices:
            X.append(x)
            y.append(schema.choices.index(label))
    return np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def full_classes(model: Any, k: int) -> Any:
    """A fitted logistic regression widened to all ``k`` classes, so its probability columns are the
    schema's choices even when the labels so far miss some (those get probability ~0)."""
    classes = [int(c) for c in model.classes_]
    if classes == list(range(k)):
        return model
    coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
    if len(classes) == 2:  # binary: class 1 scores x.w + b against class 0's 0
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    wide_coef = np.zeros((k, coef.shape[1]))
    wide_intercept = np.full(k, -1e4)
    for row, c in enumerate(classes):
        wide_coef[c] = coef[row]
        wide_intercept[c] = intercept[row]
    model.classes_ = np.arange(k)
    model.coef_ = wide_coef
    model.intercept_ = wide_intercept
    return model


CV_FOLDS = 5


def cv_accuracy(
    X: np.ndarray, y: np.ndarray, make_model: Callable[[], Any], *, folds: int = CV_FOLDS, seed: int = 0
) -> tuple[float, int] | None:
    """The accuracy of ``make_model()`` on labels it did not see, and the folds it took: stratified
    k-fold over the labels so far, k at most ``folds`` and at most the largest class's count (a
    few labels give fewer folds). A fold whose training part holds one class predicts that class.
    None where no class has two labels yet (nothing to hold out)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    if len(y) < 2:
        return None
    k = min(folds, int(np.bincount(y).max()))
    if k < 2:
        return None
    right = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the least populated class has fewer members than folds"
        for train, test in StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y):
            if len(np.unique(y[train])) < 2:
                pred = np.full(len(test), y[train][0])
            else:
                pred = make_model().fit(X[train], y[train]).predict(X[test])
            right += int((pred == y[test]).sum())
    return right / len(y), k


def retrain(project: str, model_name: str, strategy: str = "margin") -> None:
    """The scheduler job: fit on the labels so far, register a version, re-score the queue."""
    from sklearn.linear_model import LogisticRegression

    import mlbox
    from mlbox.services import Services
    from mlbox.settings import Settings

    services = Services.open(Settings.from_env())
    lab = services.labeling
    X, y = training_set(lab, project)
    if len(set(y.tolist())) < 2:
        print(f"{project}: {len(y)} labels of fewer than two classes; nothing to train yet")
        return
    model = full_classes(LogisticRegression(max_iter=500).fit(X, y), len(lab.schema(project).choices))
    measured = cv_accuracy(X, y, lambda: LogisticRegression(max_iter=500))
    accuracy = None if measured is None else measured[0]
    method = "too few labels" if measured is None else f"{measured[1]}-fold CV"
    run_id = int(os.environ["MLBOX_RUN_ID"]) if os.environ.get("MLBOX_RUN_ID") else None
    if run_id is not None:
        mlbox.start_run()
        mlbox.log_metric("labels", float(len(y)))
        mlbox.log_metric("train_acc", float(model.score(X, y)))
        if accuracy is not None:
            mlbox.log_metric("cv_accuracy", accuracy, step=len(y))
        mlbox.set_tags({"labeling_project": project})
    mv = services.registry.register(
        model_name,
        model=model,
        run_id=run_id,
        example_input=X[:2],
        options={"method": "predict_proba"},
        description=f"labeling {project}: {len(y)} labels",
    )
    services.registry.set_alias(
        model_name, RETRAIN_ALIAS, mv.version, note=f"labeling {project}: {len(y)} labels"
    )
    lab.record_accuracy(
        project, len(y), accuracy, method=method, model=model_name, version=mv.version, run_id=run_id
    )
    n = score_project(lab, services.registry, project, f"{model_name}/{mv.version}", strategy)
    print(
        json.dumps(
            {
                "project": project,
                "version": mv.version,
                "labels": len(y),
                "accuracy": accuracy,
                "method": method,
                "rescored": n,
            }
        )
    )
    if run_id is not None:
        mlbox.end_run()
