"""MLflow's REST API on mlbox, in process: shapes, ids, errors, the token, and what lands in mlbox.

The app is the real one (`create_app`) over real stores in a temporary home,
called through Litestar's TestClient; the real MLflow client against a real
``mlbox up`` is `tests.test_mlflow_client`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.api.mlflow_fast import MlflowFastPath
from mlbox.mlflow import protocol
from mlbox.mlflow.intake import MetricIntake
from mlbox.mlflow.state import state_for
from mlbox.services import Services
from mlbox.store.errors import InvalidInput

TOKEN = "test-token-mlflow"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"
API = "/api/2.0/mlflow"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as c:
        c.headers.update(AUTH)
        yield c


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def mlflow_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


def new_run(client: TestClient[Any], experiment_id: str = "0", **extra: Any) -> dict[str, Any]:
    body = {"experiment_id": experiment_id, "start_time": 1_700_000_000_000, **extra}
    return ok(client.post(f"{API}/runs/create", json=body))["run"]


# -- the token and errors ----------------------------------------------------------------


def test_every_mlflow_route_needs_the_token(services: Services) -> None:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as c:
        for method, path in [
            ("POST", f"{API}/runs/create"),
            ("GET", f"{API}/experiments/get-by-name?experiment_name=Default"),
            ("POST", "/ajax-api/2.0/mlflow/runs/search"),
            ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=1"),
            ("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/x.txt"),
            ("POST", f"{API}/registered-models/create"),
        ]:
            r = c.request(method, path, json={})
            mlflow_error(r, 401, "UNAUTHENTICATED")
            assert r.headers["WWW-Authenticate"] == "Bearer"
        assert services.tracking.search_runs().total == 0


def test_errors_come_in_mlflow_shape_with_its_status(client: TestClient[Any]) -> None:
    mlflow_error(client.get(f"{API}/runs/get", params={"run_id": "999"}), 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow_error(client.get(f"{API}/runs/get", params={"run_id": "abc"}), 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow_error(
        client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    msg = mlflow_error(client.post(f"{API}/experiments/create", json={}), 400, "INVALID_PARAMETER_VALUE")
    assert "name" in msg
    ok(client.post(f"{API}/experiments/create", json={"name": "twice"}))
    mlflow_error(
        client.post(f"{API}/experiments/create", json={"name": "twice"}), 400, "RESOURCE_ALREADY_EXISTS"
    )
    run = new_run(client)
    bad = {"run_id": run["info"]["run_id"], "metrics": [{"key": "m", "value": "high", "timestamp": 1}]}
    msg = mlflow_error(client.post(f"{API}/runs/log-batch", json=bad), 400, "INVALID_PARAMETER_VALUE")
    assert "metrics[0].value" in msg
    r = client.post(
        f"{API}/runs/log-batch", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "error_code" in r.json()


# -- experiments and runs -----------------------------------------------------------------


def test_experiment_lifecycle(client: TestClient[Any], services: Services) -> None:
    exp_id = ok(
        client.post(f"{API}/experiments/create", json={"name": "e1", "tags": [{"key": "k", "value": "v"}]})
    )["experiment_id"]
    got = ok(client.get(f"{API}/experiments/get", params={"experiment_id": exp_id}))["experiment"]
    assert got["name"] == "e1" and got["lifecycle_stage"] == "active"
    assert {"key": "k", "value": "v"} in got["tags"]
    assert services.tracking.get_experiment("e1").id == int(exp_id)
    # "0" is MLflow's default experiment: mlbox's Default
    assert (
        ok(client.get(f"{API}/experiments/get", params={"experiment_id": "0"}))["experiment"]["name"]
        == "Default"
    )

    ok(client.post(f"{API}/experiments/delete", json={"experiment_id": exp_id}))
    names = [e["name"] for e in ok(client.post(f"{API}/experiments/search", json={}))["experiments"]]
    assert "e1" not in names and "Default" in names
    deleted = ok(client.post(f"{API}/experiments/search", json={"view_type": "DELETED_ONLY"}))["experiments"]
    assert [e["name"] for e in deleted] == ["e1"]
    mlflow_error(
        client.post(f"{API}/runs/create", json={"experiment_id": exp_id}), 400, "INVALID_PARAMETER_VALUE"
    )
    ok(client.post(f"{API}/experiments/restore", json={"experiment_id": exp_id}))
    found = ok(client.post(f"{API}/experiments/search", json={"filter": "name LIKE 'e%'"}))["experiments"]
    assert [e["name"] for e in found] == ["e1"]
    ok(
        client.post(
            f"{API}/experiments/set-experiment-tag", json={"experiment_id": exp_id, "key": "a", "value": "b"}
        )
    )
    got = ok(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "e1"}))["experiment"]
    assert {"key": "a", "value": "b"} in got["tags"]


def test_experiments_update_renames_and_runs_follow(client: TestClient[Any], services: Services) -> None:
    exp_id = ok(client.post(f"{API}/experiments/create", json={"name": "draft"}))["experiment_id"]
    other = ok(client.post(f"{API}/experiments/create", json={"name": "other"}))["experiment_id"]
    rid = new_run(client, exp_id)["info"]["run_id"]
    ok(client.post(f"{API}/experiments/update", json={"experiment_id": exp_id, "new_name": "final"}))
    got = ok(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "final"}))["experiment"]
    assert got["experiment_id"] == exp_id
    assert services.tracking.get_run(int(rid)).experiment == "final"
    found = ok(client.post(f"{API}/runs/search", json={"experiment_ids": [exp_id]}))["runs"]
    assert [r["info"]["run_id"] for r in found] == [rid]
    mlflow_error(
        client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "draft"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    taken = {"experiment_id": exp_id, "new_name": "other"}
    assert "other" in mlflow_error(
        client.post(f"{API}/experiments/update", json=taken), 400, "RESOURCE_ALREADY_EXISTS"
    )
    ok(client.post(f"{API}/experiments/delete", json={"experiment_id": other}))
    mlflow_error(
        client.post(f"{API}/experiments/update", json={"experiment_id": other, "new_name": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    mlflow_error(
        client.post(f"{API}/experiments/update", json={"experiment_id": "0", "new_name": "x"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert [e.name for e in services.tracking.list_experiments("all")] == ["Default", "final", "other"]


def test_delete_tag_has_mlflows_answers(client: TestClient[Any], services: Services) -> None:
    rid = new_run(client, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])["info"]["run_id"]
    ok(client.post(f"{API}/runs/delete-tag", json={"run_id": rid, "key": "a"}))
    tags = ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]["data"]["tags"]
    assert {"key": "b", "value": "2"} in tags and all(t["key"] != "a" for t in tags)
    assert "a" not in services.tracking.get_run(int(rid)).tags
    msg = mlflow_error(
        client.post(f"{API}/runs/delete-tag", json={"run_id": rid, "key": "a"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert msg == f"No tag with name: a in run with id {rid}"
    mlflow_error(
        client.post(f"{API}/runs/delete-tag", json={"run_id": "999", "key": "b"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    mlflow_error(client.post(f"{API}/runs/delete-tag", json={"run_id": rid}), 400, "INVALID_PARAMETER_VALUE")
    ok(client.post(f"{API}/runs/delete", json={"run_id": rid}))
    msg = mlflow_error(
        client.post(f"{API}/runs/delete-tag", json={"run_id": rid, "key": "b"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "must be in the 'active' state" in msg
    assert services.tracking.get_run(int(rid)).tags["b"] == "2"


def test_run_logging_lands_in_mlbox(client: TestClient[Any], services: Services) -> None:
    run = new_run(client, run_name="r1", tags=[{"key": "team", "value": "x"}], user_id="ann")
    info = run["info"]
    assert info["status"] == "RUNNING" and info["start_time"] == 1_700_000_000_000
    assert info["artifact_uri"] == f"mlflow-artifacts:/{info['run_id']}"
    rid = info["run_id"]
    ok(client.post(f"{API}/runs/log-parameter", json={"run_id": rid, "key": "lr", "value": "0.1"}))
    for step in range(3):
        body = {
            "run_id": rid,
            "key": "loss",
            "value": 1.0 / (step + 1),
            "timestamp": 1_700_000_001_000,
            "step": step,
        }
        ok(client.post(f"{API}/runs/log-metric", json=body))
    ok(
        client.post(
            f"{API}/runs/log-batch",
            json={
                "run_id": rid,
                "metrics": [{"key": "acc", "value": 0.9, "timestamp": 1_700_000_002_000, "step": 7}],
                "params": [{"key": "depth", "value": "3"}],
                "tags": [{"key": "stage", "value": "dev"}],
            },
        )
    )
    # a param is written once, as in MLflow
    mlflow_error(
        client.post(f"{API}/runs/log-parameter", json={"run_id": rid, "key": "lr", "value": "0.2"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    ok(
        client.post(
            f"{API}/runs/update", json={"run_id": rid, "status": "FINISHED", "end_time": 1_700_000_009_000}
        )
    )

    mine = services.tracking.get_run(int(rid))
    assert mine.name == "r1" and mine.status == "finished" and mine.end_time == 1_700_000_009.0
    assert mine.params == {"lr": "0.1", "depth": "3"}
    assert mine.tags["team"] == "x" and mine.tags["stage"] == "dev" and mine.tags["mlflow.user"] == "ann"
    assert [p.value for p in services.tracking.metric_history(int(rid), "loss")] == [1.0, 0.5, 1 / 3]

    hist = ok(client.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "loss"}))[
        "metrics"
    ]
    assert [(m["step"], m["value"], m["timestamp"]) for m in hist] == [
        (0, 1.0, 1_700_000_001_000),
        (1, 0.5, 1_700_000_001_000),
        (2, 1 / 3, 1_700_000_001_000),
    ]
    page = ok(
        client.get(
            f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "loss", "max_results": 2}
        )
    )
    assert len(page["metrics"]) == 2 and page["next_page_token"] == "2"

    got = ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]
    assert got["info"]["status"] == "FINISHED" and got["info"]["end_time"] == 1_700_000_009_000
    assert {
        "key": "acc",
        "value": 0.9,
        "timestamp": got["data"]["metrics"][0]["timestamp"],
        "step": 7,
    } in got["data"]["metrics"]
    assert {"key": "mlflow.runName", "value": "r1"} in got["data"]["tags"]


def test_search_runs_with_mlflow_filters_order_and_pages(client: TestClient[Any]) -> None:
    ids = []
    for i, lr in enumerate(["0.1", "0.2", "0.3"]):
        rid = new_run(client, run_name=f"s{i}", start_time=1_700_000_000_000 + i * 1000)["info"]["run_id"]
        ids.append(rid)
        batch = {
            "run_id": rid,
            "params": [{"key": "lr", "value": lr}],
            "metrics": [{"key": "acc", "value": 0.5 + i / 10, "timestamp": 1, "step": 0}],
        }
        ok(client.post(f"{API}/runs/log-batch", json=batch))
    ok(client.post(f"{API}/runs/update", json={"run_id": ids[0], "status": "FINISHED"}))

    def search(**body: Any) -> list[str]:
        return [r["info"]["run_id"] for r in ok(client.post(f"{API}/runs/search", json=body)).get("runs", [])]

    assert search(experiment_ids=["0"], filter="metrics.acc > 0.55", order_by=["metrics.acc DESC"]) == [
        ids[2],
        ids[1],
    ]
    assert search(filter="params.lr = '0.1'") == [ids[0]]
    assert search(filter="attributes.status = 'FINISHED'") == [ids[0]]
    assert search(filter="attributes.status != 'FINISHED'", order_by=["attributes.start_time ASC"]) == ids[1:]
    assert search(filter="tags.mlflow.runName = 's1'") == [ids[1]]
    assert search(filter=f"attributes.run_id IN ('{ids[0]}', '{ids[2]}')", order_by=["metrics.acc"]) == [
        ids[0],
        ids[2],
    ]
    first = ok(client.post(f"{API}/runs/search", json={"max_results": 2, "order_by": ["metrics.acc ASC"]}))
    assert [r["info"]["run_id"] for r in first["runs"]] == ids[:2]
    rest = search(max_results=2, order_by=["metrics.acc ASC"], page_token=first["next_page_token"])
    assert rest == [ids[2]]

    ok(client.post(f"{API}/runs/delete", json={"run_id": ids[1]}))
    assert ids[1] not in search()
    assert search(run_view_type="DELETED_ONLY") == [ids[1]]
    assert (
        ok(client.get(f"{API}/runs/get", params={"run_id": ids[1]}))["run"]["info"]["lifecycle_stage"]
        == "deleted"
    )
    ok(client.post(f"{API}/runs/restore", json={"run_id": ids[1]}))
    assert ids[1] in search()
    mlflow_error(
        client.post(f"{API}/runs/search", json={"filter": "metrics.acc >"}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert search(filter="attributes.experiment_id = '0' and params.lr = '0.3'") == [ids[2]]
    assert search(filter="attributes.experiment_id != '0'") == []
    refused = mlflow_error(
        client.post(f"{API}/runs/search", json={"filter": "dataset.digest = 'x'"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "dataset.digest" in refused


def test_translate_filter_is_mlbox_grammar() -> None:
    assert protocol.translate_filter("attributes.status = 'FINISHED'") == "attributes.status = 'finished'"
    assert protocol.translate_filter("status IN ('RUNNING','FAILED')") == "status IN ('running', 'failed')"
    assert (
        protocol.translate_filter("attributes.start_time > 1700000000000")
        == "attributes.start_time > 1700000000.0"
    )
    assert protocol.translate_filter("tags.`mlflow.runName` = 'x'") == "attributes.name = 'x'"
    assert protocol.translate_filter("attributes.run_id IN ('3', 'zz')") == "attributes.id IN (3, -1)"
    assert protocol.translate_filter("metrics.acc > 0.9") == "metrics.acc > 0.9"
    # MLflow's "0" is Default, whatever its row; its other spellings; what mlbox cannot search is named
    t = protocol.translate_filter
    assert t("attributes.experiment_id = '0'", 12) == "attributes.experiment_id = 12"
    assert t("experiment_id IN ('0', '7', 'x')", 12) == "experiment_id IN (12, 7, -1)"
    assert t("experiment_id = '0'", None) == "experiment_id = -1"  # no Default yet: matches none
    assert (
        t("run.status = 'FINISHED' and parameters.lr = '0.1'")
        == "attributes.status = 'finished' and params.lr = '0.1'"
    )
    assert (
        t("params.lr IS NULL and tags.`a b` is not null") == "not params.lr LIKE '%' and tags.`a b` LIKE '%'"
    )
    assert (
        t("created > 1700000000000 and `Run name` = 'x'")
        == "attributes.start_time > 1700000000.0 and attributes.name = 'x'"
    )
    assert t("attributes.user_id = 'bob'") == "tags.`mlflow.user` = 'bob'"
    assert t("params.created = 'dataset.x'") == "params.created = 'dataset.x'"  # names and values left alone
    for unsupported, named in (
        ("dataset.name = 'a'", "dataset.name"),
        ("artifact_uri LIKE 'x%'", "artifact_uri"),
    ):
        with pytest.raises(InvalidInput, match=named):
            t(unsupported)
    assert protocol.translate_order_by(["created DESC", "attributes.user_id"]) == [
        "attributes.start_time DESC",
        "tags.`mlflow.user`",
    ]
    with pytest.raises(InvalidInput):
        protocol.parse_source("s3://bucket/model", None)
    assert protocol.parse_source("runs:/12/model", "12") == (12, "model")
    assert protocol.parse_source("mlflow-artifacts:/12/a/b", None) == (12, "a/b")


# -- artifacts --------------------------------------------------------------------------


def test_artifacts_upload_list_download(client: TestClient[Any], services: Services) -> None:
    rid = new_run(client)["info"]["run_id"]
    root = "/api/2.0/mlflow-artifacts/artifacts"
    ok(client.put(f"{root}/{rid}/notes.txt", content=b"hello"))
    ok(client.put(f"{root}/{rid}/docs/deep/a.bin", content=bytes(range(256))))
    listed = ok(client.get(root, params={"path": rid}))["files"]
    assert listed == [
        {"path": "docs", "is_dir": True},
        {"path": "notes.txt", "is_dir": False, "file_size": 5},
    ]
    assert ok(client.get(root, params={"path": f"{rid}/docs/deep"}))["files"] == [
        {"path": "a.bin", "is_dir": False, "file_size": 256}
    ]
    got = client.get(f"{root}/{rid}/docs/deep/a.bin")
    assert got.status_code == 200 and got.content == bytes(range(256))
    assert [a.path for a in services.tracking.list_artifacts(int(rid))] == ["docs/deep/a.bin", "notes.txt"]
    run_listing = ok(client.get(f"{API}/artifacts/list", params={"run_id": rid, "path": "docs"}))
    assert run_listing["files"] == [{"path": "docs/deep", "is_dir": True}]
    mlflow_error(client.get(f"{root}/{rid}/missing.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    mlflow_error(
        client.put(f"{root}/{rid}/..%2F..%2Fescape.txt", content=b"x"), 400, "INVALID_PARAMETER_VALUE"
    )
    mlflow_error(client.put(f"{root}/999/x.txt", content=b"x"), 404, "RESOURCE_DOES_NOT_EXIST")


# -- registry ---------------------------------------------------------------------------


def _mlflow_sklearn_dir(client: TestClient[Any], rid: str) -> Any:
    """Log an MLflow model directory (what ``mlflow.sklearn.log_model`` writes) to run ``rid``."""
    import io
    import json
    import pickle

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    buf = io.BytesIO()
    pickle.dump(model, buf)
    mlmodel = (
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    python_version: 3.11.7\n  sklearn:\n    pickled_model: model.pkl\n"
        "    serialization_format: cloudpickle\n    sklearn_version: 1.5.0\n"
        "saved_input_example_info:\n  artifact_path: input_example.json\n  type: ndarray\n"
    )
    root = "/api/2.0/mlflow-artifacts/artifacts"
    ok(client.put(f"{root}/{rid}/model/MLmodel", content=mlmodel.encode()))
    ok(client.put(f"{root}/{rid}/model/model.pkl", content=buf.getvalue()))
    example = json.dumps({"inputs": x[:2].tolist()}).encode()
    ok(client.put(f"{root}/{rid}/model/input_example.json", content=example))
    return model, x


def test_register_model_from_a_run_and_move_aliases(client: TestClient[Any], services: Services) -> None:
    rid = new_run(client)["info"]["run_id"]
    model, x = _mlflow_sklearn_dir(client, rid)
    created = ok(
        client.post(
            f"{API}/registered-models/create", json={"name": "iris", "tags": [{"key": "t", "value": "1"}]}
        )
    )
    assert created["registered_model"]["name"] == "iris"
    mlflow_error(
        client.post(f"{API}/registered-models/create", json={"name": "iris"}), 400, "RESOURCE_ALREADY_EXISTS"
    )
    source = {"name": "iris", "source": f"mlflow-artifacts:/{rid}/model", "run_id": rid}
    # a pickled model registers only when the caller says it trusts it, as with mlbox models import
    msg = mlflow_error(
        client.post(f"{API}/model-versions/create", json=source), 400, "INVALID_PARAMETER_VALUE"
    )
    assert "pickled" in msg and "'mlbox.trust': 'true'" in msg and "mlbox models import" in msg
    assert services.registry.list_models() == []
    mv = ok(
        client.post(
            f"{API}/model-versions/create", json={**source, "tags": [{"key": "mlbox.trust", "value": "true"}]}
        )
    )["model_version"]
    assert mv["version"] == "1" and mv["status"] == "READY" and mv["run_id"] == rid
    assert {"key": "mlbox.trust", "value": "true"} in mv["tags"]
    ok(
        client.post(
            f"{API}/registered-models/alias", json={"name": "iris", "alias": "champion", "version": "1"}
        )
    )
    by_alias = ok(client.get(f"{API}/registered-models/alias", params={"name": "iris", "alias": "champion"}))
    assert by_alias["model_version"]["version"] == "1" and by_alias["model_version"]["aliases"] == [
        "champion"
    ]

    version = services.registry.resolve("iris@champion")
    assert version.flavor == "sklearn" and version.run_id == int(rid)
    assert version.signature is not None  # from input_example.json
    loaded = services.registry.load(version)
    np.testing.assert_array_equal(loaded.predictor.predict(x[:20]), model.predict(x[:20]))

    rm = ok(client.get(f"{API}/registered-models/get", params={"name": "iris"}))["registered_model"]
    assert rm["aliases"] == [{"alias": "champion", "version": "1"}]
    assert rm["latest_versions"][0]["version"] == "1" and {"key": "t", "value": "1"} in rm["tags"]
    latest = ok(client.post(f"{API}/registered-models/get-latest-versions", json={"name": "iris"}))
    assert [v["version"] for v in latest["model_versions"]] == ["1"]
    found = ok(
        client.get(f"{API}/model-versions/search", params={"filter": f"name='iris' and run_id='{rid}'"})
    )
    assert [v["version"] for v in found["model_versions"]] == ["1"]
    models = ok(client.get(f"{API}/registered-models/search", params={"filter": "name LIKE 'ir%'"}))
    assert [m["name"] for m in models["registered_models"]] == ["iris"]
    ok(
        client.post(
            f"{API}/model-versions/set-tag", json={"name": "iris", "version": "1", "key": "k", "value": "v"}
        )
    )
    got = ok(client.get(f"{API}/model-versions/get", params={"name": "iris", "version": "1"}))[
        "model_version"
    ]
    assert {"key": "k", "value": "v"} in got["tags"]
    # the registry's own deletion: refused while an alias serves the version, naming it
    msg = mlflow_error(
        client.request("DELETE", f"{API}/model-versions/delete", json={"name": "iris", "version": "1"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "champion" in msg
    assert services.registry.get_version("iris", 1).version == 1
    ok(client.request("DELETE", f"{API}/registered-models/alias", json={"name": "iris", "alias": "champion"}))
    assert services.registry.get_model("iris").aliases == {}
    mlflow_error(
        client.get(f"{API}/model-versions/get", params={"name": "iris", "version": "7"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    # renaming is the registry's own; the MLflow tags follow the model and its versions
    renamed = ok(client.post(f"{API}/registered-models/rename", json={"name": "iris", "new_name": "flowers"}))
    assert renamed["registered_model"]["name"] == "flowers"
    assert {"key": "t", "value": "1"} in renamed["registered_model"]["tags"]
    moved = ok(client.get(f"{API}/model-versions/get", params={"name": "flowers", "version": "1"}))
    assert {"key": "k", "value": "v"} in moved["model_version"]["tags"]
    assert [v.version for v in services.registry.list_versions("flowers")] == [1]
    mlflow_error(
        client.get(f"{API}/registered-models/get", params={"name": "iris"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    ok(client.request("DELETE", f"{API}/model-versions/delete", json={"name": "flowers", "version": "1"}))
    mlflow_error(
        client.get(f"{API}/model-versions/get", params={"name": "flowers", "version": "1"}),
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert services.registry.list_versions("flowers") == []
    assert state_for(services.registry.db).tags("version", "flowers/1") == {}  # its tags went with it
    ok(client.request("DELETE", f"{API}/registered-models/delete", json={"name": "flowers"}))
    assert "flowers" not in [m.name for m in services.registry.list_models()]
    mlflow_error(
        client.get(f"{API}/registered-models/get", params={"name": "flowers"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    msg = mlflow_error(
        client.post(f"{API}/model-versions/create", json={"name": "iris", "source": "s3://b/m"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "source" in msg


def _upload_dir(client: TestClient[Any], rid: str, folder: Any, name: str = "model") -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            ok(
                client.put(
                    f"/api/2.0/mlflow-artifacts/artifacts/{rid}/{name}/{rel}", content=path.read_bytes()
                )
            )


def test_every_flavor_mlbox_imports_registers_over_rest(
    client: TestClient[Any], services: Services, tmp_path: Any
) -> None:
    """The same choice as ``mlbox models import`` (`mlflow_flavors.choose`): a PyTorch export needs no
    trust; a pickled python object needs the ``mlbox.trust`` tag; MLflow's generic pyfunc too."""
    import torch

    from mlbox.registry.mlflow_format import export
    from tests.models import MLP, Doubler

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    registry = services.registry
    for name, model, trusted in (("mlp", MLP().eval(), False), ("doubler", Doubler(3.0), True)):
        registry.register(f"{name}-src", model=model, example_input=x[:2])
        export(registry, f"{name}-src", tmp_path / name)
        rid = new_run(client)["info"]["run_id"]
        _upload_dir(client, rid, tmp_path / name)
        body: dict[str, Any] = {"name": name, "source": f"runs:/{rid}/model"}
        if trusted:
            msg = mlflow_error(
                client.post(f"{API}/model-versions/create", json=body), 400, "INVALID_PARAMETER_VALUE"
            )
            assert "python model is pickled" in msg and "--trust" in msg
            body["tags"] = [{"key": "mlbox.trust", "value": "true"}]
        mv = ok(client.post(f"{API}/model-versions/create", json=body))["model_version"]
        version = registry.get_version(name, int(mv["version"]))
        assert version.run_id == int(rid) and version.lineage.source == f"run:{rid}/model"
        expected = registry.load(f"{name}-src").predict(x)
        np.testing.assert_allclose(
            np.asarray(registry.load(name).predict(x)), np.asarray(expected), rtol=1e-6
        )

    # a directory MLflow's pyfunc wrote (python_model.pkl with its loader): refused without the tag
    rid = new_run(client)["info"]["run_id"]
    mlmodel = (
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
        "    python_model: python_model.pkl\n    python_version: 3.11.7\n"
    )
    root = "/api/2.0/mlflow-artifacts/artifacts"
    ok(client.put(f"{root}/{rid}/model/MLmodel", content=mlmodel.encode()))
    ok(client.put(f"{root}/{rid}/model/python_model.pkl", content=b"not read"))
    msg = mlflow_error(
        client.post(f"{API}/model-versions/create", json={"name": "generic", "source": f"runs:/{rid}/model"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "pyfunc model is pickled" in msg and "mlbox models import DIR --name NAME --trust" in msg
    assert "generic" not in [m.name for m in registry.list_models()]


def test_logged_model_files_live_in_its_run(client: TestClient[Any]) -> None:
    rid = new_run(client)["info"]["run_id"]
    created = ok(
        client.post(
            f"{API}/logged-models", json={"experiment_id": "0", "name": "model", "source_run_id": rid}
        )
    )["model"]["info"]
    assert created["artifact_uri"] == f"mlflow-artifacts:/{rid}/model" and created["status"] == "PENDING"
    mid = created["model_id"]
    done = ok(
        client.patch(f"{API}/logged-models/{mid}", json={"model_id": mid, "status": "LOGGED_MODEL_READY"})
    )
    assert done["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    ok(client.patch(f"{API}/logged-models/{mid}/tags", json={"tags": [{"key": "a", "value": "b"}]}))
    got = ok(client.get(f"{API}/logged-models/{mid}"))["model"]["info"]
    assert got["tags"] == [{"key": "a", "value": "b"}]
    second = ok(
        client.post(
            f"{API}/logged-models", json={"experiment_id": "0", "name": "model", "source_run_id": rid}
        )
    )["model"]["info"]
    assert second["artifact_uri"] != created["artifact_uri"]  # two models of one run never share files
    outputs = ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]["outputs"]["model_outputs"]
    assert {o["model_id"] for o in outputs} == {mid, second["model_id"]}
    mlflow_error(
        client.post(f"{API}/logged-models", json={"experiment_id": "0", "name": "m"}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    mlflow_error(client.get(f"{API}/logged-models/m-nope"), 404, "RESOURCE_DOES_NOT_EXIST")


# -- the metric fast path ------------------------------------------------------------------


def test_metric_logging_takes_the_fast_path_and_keeps_litestars_answers(services: Services) -> None:
    """log-metric and metrics-only log-batch are answered before Litestar; whatever would not be a
    plain 200 goes to the Litestar handlers, so errors, the token and the Host check stay theirs."""
    app = create_app(services, token=TOKEN)
    fast = app.asgi_handler
    assert isinstance(fast, MlflowFastPath)
    with TestClient(app, base_url=BASE) as client:
        client.headers.update(AUTH)
        rid = new_run(client)["info"]["run_id"]
        for step in range(5):
            body = {
                "run_id": rid,
                "key": "loss",
                "value": 1.0 / (step + 1),
                "timestamp": 1_700_000_000_000,
                "step": step,
            }
            ok(client.post(f"{API}/runs/log-metric", json=body))
        metrics = [{"key": f"k{i % 3}", "value": float(i), "timestamp": 1_700_000_000_000 + i, "step": i // 3}
                   for i in range(30)]  # fmt: skip
        ok(client.post("/ajax-api/2.0/mlflow/runs/log-batch", json={"run_id": rid, "metrics": metrics}))
        ok(client.post(f"{API}/runs/log-metric", json={"run_uuid": rid, "key": "nan", "value": "NaN"}))
        assert fast.answered == 7

        # refused there, answered by Litestar as before
        mlflow_error(
            client.post(f"{API}/runs/log-metric", json={"run_id": "424242", "key": "m", "value": 1.0}),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )
        assert set(fast._checked) == {int(rid)}  # a found run is asked of SQLite once a second, no other
        msg = mlflow_error(
            client.post(f"{API}/runs/log-metric", json={"run_id": rid, "key": "m", "value": [1]}),
            400,
            "INVALID_PARAMETER_VALUE",
        )
        assert "metrics[0].value" in msg
        msg = mlflow_error(
            client.post(f"{API}/runs/log-batch", json={"run_id": rid, "metrics": [{"key": "", "value": 1}]}),
            400,
            "INVALID_PARAMETER_VALUE",
        )
        assert "metrics[0].key" in msg
        no_token = client.post(
            f"{API}/runs/log-metric",
            json={"run_id": rid, "key": "m", "value": 1.0},
            headers={"Authorization": "Bearer wrong"},
        )
        mlflow_error(no_token, 401, "UNAUTHENTICATED")
        other_host = client.post(
            f"{API}/runs/log-metric",
            json={"run_id": rid, "key": "m", "value": 1.0},
            headers={"Host": "evil.example"},
        )
        assert other_host.status_code >= 400
        # a batch with params is Litestar's; its points still go through the same intake
        ok(client.post(f"{API}/runs/log-batch", json={"run_id": rid, "metrics": metrics[:3],
                                                     "params": [{"key": "p", "value": "1"}]}))  # fmt: skip
        assert fast.answered == 7

        hist = ok(client.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "loss"}))
        assert [(m["step"], m["value"]) for m in hist["metrics"]] == [(s, 1.0 / (s + 1)) for s in range(5)]
        k0 = ok(client.get(f"{API}/metrics/get-history", params={"run_id": rid, "metric_key": "k0"}))
        stamps = [1_700_000_000_000 + i for i in range(0, 30, 3)] + [1_700_000_000_000]  # + the params batch
        assert sorted(m["timestamp"] for m in k0["metrics"]) == sorted(stamps)
        # answered, not yet read by anyone: committed when the app stops
        ok(
            client.post(
                f"{API}/runs/log-metric", json={"run_id": rid, "key": "last", "value": 7.0, "step": 3}
            )
        )
    assert [(p.step, p.value) for p in services.tracking.metric_history(int(rid), "last")] == [(3, 7.0)]
    assert services.tracking.get_run(int(rid)).metrics["nan"] is None  # NaN kept as NaN (None here)
    assert "m" not in services.tracking.get_run(int(rid)).metrics


def test_metric_points_read_mlflows_json() -> None:
    items = protocol.metric_items(
        [
            {"key": "a", "value": 1, "timestamp": 1_500, "step": 2, "model_id": "m-1"},
            {"key": "a", "value": "-Infinity", "step": None},
            {"key": "b", "value": 0.5, "timestamp": None},
        ]
    )
    points = protocol.metric_points(items, now=9.0)
    assert points == [("a", 2, 1.5, 1.0), ("a", 0, 9.0, -float("inf")), ("b", 0, 9.0, 0.5)]
    for bad, field in [
        ([{"key": "a", "value": True}], "metrics[0].value"),
        ([{"key": "a", "value": "high"}], "metrics[0].value"),
        ([{"key": "a", "value": 1}, {"key": "a\n", "value": 1}], "metrics[1].key"),
        ([{"key": "a", "value": 1, "step": 2**63}], "metrics[0].step"),
        ([{"key": "a", "value": 1, "timestamp": "soon"}], "metrics[0].timestamp"),
        ([{"value": 1}], "metrics[0].key"),
        ({"key": "a"}, "metrics"),
    ]:
        with pytest.raises(InvalidInput) as err:
            protocol.metric_points(protocol.metric_items(bad), now=0.0)
        assert err.value.field == field


def test_an_older_homes_deleted_marks_become_the_tracking_services(services: Services) -> None:
    """mlbox once kept MLflow's deleted marks in its own table; they are handed over once."""
    exp = services.tracking.create_experiment("old")
    gone = services.tracking.create_run("old", "gone")
    services.tracking.create_run("Default", "kept")
    marked = services.tracking.create_run("Default", "marked")
    state_for(services.tracking.db)  # the MLflow layer's tables, as an older mlbox made them
    with services.tracking.db.atomic() as conn:
        conn.executemany(
            "INSERT INTO mlflow_deleted (kind, id, deleted_at) VALUES (?, ?, ?)",
            [("experiment", exp.id, 1_700_000_000.0), ("run", marked.id, 1_700_000_100.0), ("run", 999, 1.0)],
        )
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as client:
        client.headers.update(AUTH)
        got = ok(client.get(f"{API}/experiments/get", params={"experiment_id": str(exp.id)}))["experiment"]
        assert got["lifecycle_stage"] == "deleted"
        listed = ok(client.post(f"{API}/runs/search", json={"run_view_type": "ALL"}))["runs"]
        stages = {r["info"]["run_name"]: r["info"]["lifecycle_stage"] for r in listed}
        assert stages == {"gone": "deleted", "kept": "active", "marked": "deleted"}
        ok(client.post(f"{API}/runs/restore", json={"run_id": str(marked.id)}))
    assert services.tracking.get_run(gone.id).deleted_at == 1_700_000_000.0
    assert services.tracking.get_run(marked.id).deleted_at is None
    assert services.tracking.db.query("SELECT * FROM mlflow_deleted") == []


def test_the_intake_commits_what_it_answered_and_drops_a_purged_runs_points(services: Services) -> None:
    tracking = services.tracking
    intake = MetricIntake(tracking, interval=3600.0)  # only flush and close commit here
    kept = tracking.create_run("Default", "kept")
    purged = tracking.create_run("Default", "purged")
    intake.add(kept.id, [("m", 0, 1.0, 0.5), ("m", 1, 2.0, 0.25)])
    assert tracking.metric_keys(kept.id) == [] and intake.pending == 2  # answered, not yet committed
    intake.flush()
    assert [(p.step, p.value) for p in tracking.metric_history(kept.id, "m")] == [(0, 0.5), (1, 0.25)]
    intake.add(purged.id, [("m", 0, 1.0, 9.0)])
    intake.add(kept.id, [("m", 2, 3.0, 0.125)])
    tracking.end_run(purged.id)
    tracking.delete_run(purged.id)
    assert tracking.purge_deleted(older_than_s=0, now=time.time() + 1).runs == [purged.id]
    intake.close()  # commits the rest in one transaction: the purged run's point is dropped
    assert intake.pending == 0
    assert [p.step for p in tracking.metric_history(kept.id, "m")] == [0, 1, 2]


def test_the_default_experiment_is_0_both_ways(client: TestClient[Any], services: Services) -> None:
    """MLflow's Default experiment is "0" in everything answered, whatever mlbox's row id
    (issue 17: scripts hard-code experiment_ids=["0"]); mlbox's own ids stay as they are."""
    other = services.tracking.create_experiment("first")  # Default is not row 1 here
    row = services.tracking.get_or_create_experiment("Default").id
    assert row != 0 and str(row) != "0"
    got = ok(client.get(f"{API}/experiments/get", params={"experiment_id": "0"}))["experiment"]
    assert got["experiment_id"] == "0" and got["name"] == "Default"
    assert got["artifact_location"] == "mlflow-artifacts:/experiments/0"
    by_name = ok(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "Default"}))
    assert by_name["experiment"]["experiment_id"] == "0"
    by_row = ok(client.get(f"{API}/experiments/get", params={"experiment_id": str(row)}))["experiment"]
    assert by_row["experiment_id"] == "0"  # its row id still finds it, answered as "0"
    listed = ok(client.post(f"{API}/experiments/search", json={}))["experiments"]
    assert {e["name"]: e["experiment_id"] for e in listed} == {"Default": "0", "first": str(other.id)}

    run = new_run(client)  # no experiment set: MLflow's "0"
    assert run["info"]["experiment_id"] == "0"
    rid = run["info"]["run_id"]
    assert services.tracking.get_run(int(rid)).experiment_id == row  # mlbox's own id unchanged
    got_run = ok(client.get(f"{API}/runs/get", params={"run_id": rid}))["run"]
    assert got_run["info"]["experiment_id"] == "0"
    found = ok(client.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}))["runs"]
    assert [(r["info"]["run_id"], r["info"]["experiment_id"]) for r in found] == [(rid, "0")]
    ended = ok(client.post(f"{API}/runs/update", json={"run_id": rid, "status": "FINISHED"}))
    assert ended["run_info"]["experiment_id"] == "0"
    elsewhere = new_run(client, str(other.id))
    assert elsewhere["info"]["experiment_id"] == str(other.id)

    model = ok(
        client.post(
            f"{API}/logged-models", json={"experiment_id": "0", "name": "model", "source_run_id": rid}
        )
    )["model"]
    assert model["info"]["experiment_id"] == "0"
    searched = ok(client.post(f"{API}/logged-models/search", json={"experiment_ids": ["0"]}))["models"]
    assert [m["info"]["model_id"] for m in searched] == [model["info"]["model_id"]]


def test_the_in_process_api_calls_default_0(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlbox.mlflow as mlflow
    from mlbox.tracking import client as tracking_client

    monkeypatch.setattr(tracking_client, "_default", None)
    mlflow.set_tracking_uri(str(tmp_path / "home"))
    first = mlflow.create_experiment("first")  # Default comes after it
    assert first != "0"
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == "0"
    assert mlflow.get_experiment("0").experiment_id == "0"
    default = mlflow.get_experiment_by_name("Default")
    assert default is not None and default.experiment_id == "0"
    assert mlflow.get_run(run.info.run_id).info.experiment_id == "0"
    frame = mlflow.search_runs(experiment_ids=["0"])
    assert list(frame["experiment_id"]) == ["0"]
    names = {e.name: e.experiment_id for e in mlflow.search_experiments()}
    assert names == {"Default": "0", "first": first}
    assert mlflow.MlflowClient().create_run("0").info.experiment_id == "0"


def test_a_skops_model_registered_over_rest_names_its_run(
    client: TestClient[Any], services: Services
) -> None:
    """MLflow's default sklearn format (skops) is converted on registration; its lineage still names
    the run's files (issue 17: it said "object"), so the run is its source and cannot be deleted."""
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlbox.store.errors import Conflict

    rid = new_run(client)["info"]["run_id"]
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    mlmodel = (
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    )
    root = "/api/2.0/mlflow-artifacts/artifacts"
    ok(client.put(f"{root}/{rid}/model/MLmodel", content=mlmodel.encode()))
    ok(client.put(f"{root}/{rid}/model/model.skops", content=sio.dumps(model)))
    source = {"name": "iris-skops", "source": f"runs:/{rid}/model", "run_id": rid}
    mv = ok(client.post(f"{API}/model-versions/create", json=source))["model_version"]
    assert mv["run_id"] == rid and mv["source"] == f"mlflow-artifacts:/{rid}/model"
    version = services.registry.get_version("iris-skops", 1)
    assert version.lineage.source == f"run:{rid}/model" and version.lineage.run_id == int(rid)
    assert version.lineage.experiment == "Default"
    with pytest.raises(Conflict, match="'iris-skops' version 1 was registered from run"):
        services.tracking.delete_run(int(rid))
    predicted = services.registry.load(version).predictor.predict(x[::10])
    np.testing.assert_array_equal(np.asarray(predicted), model.predict(x[::10]))
