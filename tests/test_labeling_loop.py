"""Models in the loop: pre-labels and uncertainty order from a registered model (NAME@ALIAS),
and the retraining job submitted through the scheduler every N labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlbox.labeling.loop import RETRAIN_ALIAS, retrain
from mlbox.services import Services
from mlbox.store.errors import InvalidInput


@pytest.fixture
def digits(services: Services) -> Services:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    model = LogisticRegression(max_iter=300).fit(X[:60], y[:60])
    mv = services.registry.register(
        "digits", model=model, example_input=X[:2], options={"method": "predict_proba"}
    )
    services.registry.set_alias("digits", "champion", mv.version)
    lab = services.labeling
    lab.create_project("dig", {"choices": [str(i) for i in range(10)]})
    lab.add_tasks("dig", [{"pixels": X[i].tolist(), "width": 8, "truth": int(y[i])} for i in range(300, 400)])
    return services


def test_prelabels_and_uncertainty_order(digits: Services) -> None:
    lab = digits.labeling
    assert lab.prelabel("dig", "digits@champion", strategy="margin") == 100
    tasks = lab.tasks("dig", limit=100)
    assert all(t.prelabel is not None and t.prelabel.model == "digits/1" for t in tasks)
    right = sum(t.prelabel.value["label"] == str(t.data["truth"]) for t in tasks if t.prelabel)
    assert right > 60  # a model trained on 60 digits pre-labels most of them right
    first = lab.next_tasks("dig", "ann", 10)
    conf_first = np.mean([t.prelabel.confidence for t in first if t.prelabel])
    conf_all = np.mean([t.prelabel.confidence for t in tasks if t.prelabel])
    assert conf_first < conf_all  # the least sure come first
    assert first[0].priority >= first[-1].priority
    with pytest.raises(InvalidInput):
        lab.prelabel("dig", "digits@champion", strategy="vibes")


def test_a_classifier_registered_to_answer_labels_prelabels_from_its_probabilities(digits: Services) -> None:
    """The demo's champion is a scikit-learn classifier registered with its default ``predict``
    (labels, one per row): pre-labels come from its ``predict_proba`` (was: 'the model answers
    shape (100,)')."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    mv = digits.registry.register(
        "labels", model=LogisticRegression(max_iter=300).fit(X[:60], y[:60]), example_input=X[:2]
    )
    digits.registry.set_alias("labels", "champion", mv.version)
    assert digits.labeling.prelabel("dig", "labels@champion", strategy="margin") == 100
    confidences = [
        c
        for t in digits.labeling.tasks("dig", limit=100)
        if t.prelabel and (c := t.prelabel.confidence) is not None
    ]
    assert len(confidences) == 100 and min(confidences) > 0 and max(confidences) <= 1
    assert len(set(confidences)) > 10  # probabilities, not one-hot labels


def test_every_n_labels_a_retraining_job_registers_a_version_and_rescores(digits: Services) -> None:
    lab = digits.labeling
    lab.set_loop("dig", "digits-labeled", 10)
    before = {j.id for j in digits.scheduler.list_jobs()}
    for t in lab.next_tasks("dig", "ann", 10):
        lab.annotate(t.id, "ann", {"label": str(t.data["truth"])})
    jobs = [j for j in digits.scheduler.list_jobs() if j.id not in before]
    assert [j.spec.name for j in jobs] == ["retrain dig at 10 labels"]
    assert jobs[0].spec.function == "mlbox.labeling.loop:retrain"
    # what the job runs, here in-process: fit, register, alias, re-score
    retrain("dig", "digits-labeled")
    mv = digits.registry.resolve(f"digits-labeled@{RETRAIN_ALIAS}")
    assert mv.version == 1
    pre = [t.prelabel for t in lab.tasks("dig", limit=100) if t.prelabel is not None]
    assert len(pre) == 90 and all(p.model == "digits-labeled/1" for p in pre)
    # and it recorded the model's accuracy on labels it did not see: 10 labels, at most 2 of a
    # class, so 2 folds
    (point,) = lab.accuracy_history("dig")
    assert (point.labels, point.version, point.model, point.method) == (10, 1, "digits-labeled", "2-fold CV")
    assert point.accuracy is not None and 0.0 <= point.accuracy <= 1.0


def test_cli_prelabel(digits: Services, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import ok, run_main

    out = ok(
        capsys,
        "label",
        "prelabel",
        "dig",
        "digits@champion",
        "--strategy",
        "entropy",
        "--retrain-every",
        "25",
    )
    assert "pre-labeled 100 tasks" in out and "retrains dig-model" in out
    assert digits.labeling.project("dig").retrain_every == 25
    code, _, err = run_main(capsys, "label", "prelabel", "dig", "nope@champion")
    assert code == 2 and "no model named 'nope'" in err


def test_the_retraining_job_runs_as_a_real_scheduler_job(digits: Services) -> None:
    # The scheduler runs the submitted job in its own process (the appliance's Python), which
    # opens the same home, fits on the labels, registers a version and re-scores the queue.
    import time

    lab = digits.labeling
    lab.set_loop("dig", "digits-labeled", 10)
    for t in lab.next_tasks("dig", "ann", 10):
        lab.annotate(t.id, "ann", {"label": str(t.data["truth"])})
    (job,) = [j for j in digits.scheduler.list_jobs() if j.spec.name == "retrain dig at 10 labels"]
    deadline = time.monotonic() + 80
    while not digits.scheduler.get(job.id).terminal:
        assert time.monotonic() < deadline, digits.scheduler.read_log(job.id)[0][-2000:]
        digits.scheduler.reconcile_once()
        time.sleep(0.1)
    done = digits.scheduler.get(job.id)
    log = digits.scheduler.read_log(job.id)[0].decode(errors="replace")
    assert done.state == "succeeded", log[-2000:]
    assert '"rescored": 90' in log
    mv = digits.registry.resolve(f"digits-labeled@{RETRAIN_ALIAS}")
    assert mv.version == 1 and mv.run_id is not None  # the job's tracking run
    pre = [t.prelabel for t in lab.tasks("dig", limit=100) if t.prelabel is not None]
    assert len(pre) == 90 and all(p.model == "digits-labeled/1" for p in pre)


def test_cv_accuracy_against_hand_computed_cases() -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    from mlbox.labeling.loop import cv_accuracy

    y = np.array([0] * 10 + [1] * 10)
    X = np.array([[10.0 * c + 0.01 * i] for i, c in enumerate(y)])  # two far-apart clusters
    # separable: every held-out label is right, over the full five folds
    assert cv_accuracy(X, y, lambda: LogisticRegression()) == (1.0, 5)
    # a model that answers the most frequent class (ties: the smaller, 0) gets each fold's two 0s
    # of four right: 10 of 20
    assert cv_accuracy(X, y, lambda: DummyClassifier(strategy="most_frequent")) == (0.5, 5)
    # three labels: as many folds as the largest class has labels (2); the fold that trains on
    # one class predicts it
    acc, k = cv_accuracy(X[:3], np.array([0, 0, 1]), lambda: LogisticRegression()) or (None, 0)
    assert k == 2 and acc is not None and 0.0 <= acc <= 1.0
    assert cv_accuracy(X[:2], np.array([0, 1]), lambda: LogisticRegression()) is None  # nothing to hold out
    assert cv_accuracy(X[:1], np.array([0]), lambda: LogisticRegression()) is None


def test_the_accuracy_history_through_service_api_and_cli(
    digits: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    from litestar.testing import TestClient

    from mlbox.api.app import create_app
    from tests.helpers import ok

    lab = digits.labeling
    assert lab.accuracy_history("dig") == []
    first = lab.record_accuracy("dig", 40, 0.85, method="5-fold CV", model="digits-labeled", version=1)
    lab.record_accuracy("dig", 80, 0.9, method="5-fold CV", model="digits-labeled", version=2)
    assert [(h.labels, h.accuracy) for h in lab.accuracy_history("dig")] == [(40, 0.85), (80, 0.9)]
    with pytest.raises(InvalidInput) as exc:
        lab.record_accuracy("dig", 10, 1.5, method="5-fold CV", model="m")
    assert exc.value.field == "accuracy"
    with TestClient(create_app(digits, token="t"), base_url="http://127.0.0.1:5151") as client:
        r = client.get("/api/v1/labeling/projects/dig/accuracy", headers={"Authorization": "Bearer t"})
        assert r.status_code == 200, r.text
        assert [(p["labels"], p["version"]) for p in r.json()] == [(40, 1), (80, 2)]
        r = client.get("/api/v1/labeling/projects/nope/accuracy", headers={"Authorization": "Bearer t"})
        assert r.status_code == 404 and r.json()["field"] == "project"
    out = ok(capsys, "label", "stats", "dig")
    assert "MEASURED BY" in out and f"{first.accuracy:.6g}" in out and "digits-labeled/2" in out
    data = json.loads(ok(capsys, "label", "stats", "dig", "--json"))
    assert [p["labels"] for p in data["accuracy"]] == [40, 80]
