"""Renaming experiments, deleting run tags, and deleting runs from ``import mlbox`` (issue 17).

MLflow renames experiments and deletes tags; mlbox does both in the tracking service (one
transaction each), and ``mlbox.delete_run`` refuses what ``mlbox runs delete`` refuses. Real
stores in a temporary home; the CLI runs in process (`tests.helpers.run_main`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlbox
from mlbox.mlflow.client import MlflowClient
from mlbox.services import Services
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from tests.helpers import ok, run_main

QUICK: dict[str, Any] = {"log_code": False, "log_environment": False}


def test_rename_moves_every_run_at_once_and_refuses_a_taken_name(services: Services) -> None:
    tracking = services.tracking
    runs = [tracking.create_run("draft").id for _ in range(3)]
    tracking.create_run("other")
    before = tracking.get_experiment("draft")

    renamed = tracking.rename_experiment("draft", "final")
    assert (renamed.id, renamed.name, renamed.run_count) == (before.id, "final", 3)
    assert {r.experiment for r in map(tracking.get_run, runs)} == {"final"}
    assert tracking.search_runs(experiments=["final"]).total == 3
    with pytest.raises(NotFound):
        tracking.get_experiment("draft")
    assert tracking.create_run("draft").experiment == "draft"  # the old name is free again

    with pytest.raises(Conflict, match="already exists") as taken:
        tracking.rename_experiment("final", "other")
    assert taken.value.field == "new_name"
    assert tracking.get_experiment(before.id).name == "final"  # nothing changed
    with pytest.raises(InvalidInput):
        tracking.rename_experiment("final", "")
    tracking.get_or_create_experiment("Default")
    with pytest.raises(Conflict, match="Default"):
        tracking.rename_experiment("Default", "elsewhere")
    tracking.delete_experiment("other")
    with pytest.raises(Conflict, match="restore it"):
        tracking.rename_experiment("other", "again")
    with pytest.raises(Conflict, match=r"already exists.*deleted"):
        tracking.rename_experiment("final", "other")  # a deleted experiment keeps its name until purged
    assert tracking.rename_experiment("final", "final").name == "final"


def test_delete_tag_removes_one_tag_of_a_live_run(services: Services) -> None:
    tracking = services.tracking
    run = tracking.create_run("e", tags={"a": "1", "b": "2"})
    tracking.delete_tag(run.id, "a")
    assert tracking.get_run(run.id).tags == {"b": "2"}
    with pytest.raises(NotFound, match="no tag 'a'") as missing:
        tracking.delete_tag(run.id, "a")
    assert missing.value.field == "key"
    with pytest.raises(NotFound):
        tracking.delete_tag(run.id + 100, "b")
    tracking.delete_run(run.id)
    with pytest.raises(Conflict, match="deleted"):
        tracking.delete_tag(run.id, "b")
    assert tracking.get_run(run.id).tags == {"b": "2"}


def test_cli_experiments_rename(services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    services.tracking.create_run("a")
    services.tracking.create_run("b")
    assert "renamed experiment 'a' to 'c' (1 runs)" in ok(capsys, "experiments", "rename", "a", "c")
    assert [e.name for e in services.tracking.list_experiments()] == ["b", "c"]
    for argv, says in [
        (("c", "b"), "experiment 'b' already exists"),
        (("nope", "z"), "no experiment 'nope'"),
        (("c", ""), "new_name must be a non-empty string"),
    ]:
        code, _, err = run_main(capsys, "experiments", "rename", *argv)
        assert code == 2 and says in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert [e.name for e in services.tracking.list_experiments()] == ["b", "c"]


def test_mlbox_delete_run_refuses_what_the_cli_refuses(services: Services) -> None:
    x = np.arange(20, dtype=float).reshape(10, 2)
    y = (x[:, 0] > 8).astype(int)
    with mlbox.start_run(experiment="deletions", **QUICK) as kept:
        mlbox.log_model(LogisticRegression().fit(x, y))
    mlbox.register_model("kept", run_id=kept.id)
    with (
        mlbox.start_run(experiment="deletions", **QUICK) as plain,
        pytest.raises(Conflict, match="active run"),
    ):
        mlbox.delete_run(plain.id)

    with pytest.raises(Conflict, match="model 'kept'") as refused:
        mlbox.delete_run(kept.id)
    assert refused.value.field == "run_id"
    assert services.tracking.get_run(kept.id).deleted_at is None

    assert mlbox.delete_run(plain.id).deleted_at is not None
    assert services.tracking.search_runs(experiments=["deletions"]).total == 1
    assert mlbox.delete_run(plain.id).deleted_at is not None  # again: nothing changes
    assert mlbox.restore_run(plain.id).deleted_at is None
    with pytest.raises(NotFound):
        mlbox.delete_run(plain.id + 100)

    client = MlflowClient()  # MLflow's names refuse the same way
    with pytest.raises(Conflict, match="model 'kept'"):
        client.delete_run(str(kept.id))
    client.delete_run(str(plain.id))
    assert services.tracking.get_run(plain.id).deleted_at is not None
    client.restore_run(str(plain.id))
    with pytest.raises(Conflict, match="model 'kept'"):
        client.delete_experiment(str(services.tracking.get_experiment("deletions").id))


def test_mlflow_names_rename_experiments_and_delete_tags(services: Services) -> None:
    import mlbox.mlflow as mlflow

    client = MlflowClient()
    exp_id = client.create_experiment("before")
    client.rename_experiment(exp_id, "after")
    assert client.get_experiment(exp_id).name == "after"
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.set_tags({"keep": "1", "drop": "2"})
        mlflow.delete_tag("drop")
        client.set_tag(run.info.run_id, "also", "3")
        client.delete_tag(run.info.run_id, "also")
        with pytest.raises(NotFound):
            client.delete_tag(run.info.run_id, "also")
    tags = services.tracking.get_run(int(run.info.run_id)).tags
    assert {k: v for k, v in tags.items() if not k.startswith("mlflow.")} == {"keep": "1"}
    with pytest.raises(Conflict, match="already exists"):
        client.rename_experiment(client.create_experiment("taken"), "after")
