"""Deleting over the HTTP API in process (the real `create_app`): runs and experiments deleted,
listed with ``lifecycle`` and restored; model versions and models deleted; every route behind
the token; refusals are 409 JSON naming the dependent, bad values 400 naming the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.services import Services
from tests.helpers import error
from tests.models import Doubler

TOKEN = "test-token-delete"
BASE = "http://127.0.0.1:5151"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as client:
        client.headers.update({"Authorization": f"Bearer {TOKEN}"})
        yield client


def test_runs_and_experiments_delete_list_and_restore(client: TestClient, services: Services) -> None:
    t = services.tracking
    free, needed = t.create_run("exp").id, t.create_run("exp").id
    t.end_run(needed)
    services.registry.register("m", model=Doubler(), run_id=needed)
    body = error(client.delete(f"/api/v1/runs/{needed}"), 409, "run_id")
    assert (
        body["error"] == f"cannot delete run {needed}: model 'm' version 1 was registered from run {needed}"
    )
    deleted = client.delete(f"/api/v1/runs/{free}")
    assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None
    assert [r["id"] for r in client.get("/api/v1/runs").json()["runs"]] == [needed]
    assert [r["id"] for r in client.get("/api/v1/runs?lifecycle=deleted").json()["runs"]] == [free]
    assert client.get("/api/v1/runs?lifecycle=all").json()["total"] == 2
    error(client.get("/api/v1/runs?lifecycle=gone"), 400, "lifecycle")
    by_body = client.post("/api/v1/runs/search", json={"lifecycle": "deleted"}).json()
    assert [r["id"] for r in by_body["runs"]] == [free]
    error(client.post("/api/v1/runs/search", json={"lifecycle": 1}), 400)
    assert client.post(f"/api/v1/runs/{free}/restore").json()["deleted_at"] is None
    exp_id = t.get_experiment("exp").id
    error(client.delete(f"/api/v1/experiments/{exp_id}"), 409, "experiment")
    other = t.create_run("other")
    other_exp = other.experiment_id
    assert client.delete(f"/api/v1/experiments/{other_exp}").json()["deleted_at"] is not None
    assert [e["name"] for e in client.get("/api/v1/experiments").json()] == ["exp"]
    assert [e["name"] for e in client.get("/api/v1/experiments?lifecycle=deleted").json()] == ["other"]
    assert client.post(f"/api/v1/experiments/{other_exp}/restore").json()["run_count"] == 1
    error(client.delete("/api/v1/runs/999999"), 404, "run_id")


def test_model_versions_and_models_delete(client: TestClient, services: Services) -> None:
    reg = services.registry
    for _ in range(2):
        reg.register("m", model=Doubler())
    reg.set_alias("m", "champion", 2)
    body = error(client.delete("/api/v1/models/m/versions/2"), 409, "version")
    assert "alias m@champion points to version 2" in body["error"]
    assert client.delete("/api/v1/models/m/versions/1").json()["version"] == 1
    error(client.get("/api/v1/models/m/versions/1"), 404)
    error(client.delete("/api/v1/models/m"), 409, "name")
    reg.delete_alias("m", "champion")
    assert client.delete("/api/v1/models/m").json()["name"] == "m"
    error(client.delete("/api/v1/models/m"), 404)
    error(client.delete("/api/v1/models/m/versions/0"), 400, "version")


def test_deleting_needs_the_token(services: Services) -> None:
    run = services.tracking.create_run("exp")
    services.registry.register("m", model=Doubler())
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as anonymous:
        for method, path in (
            ("DELETE", f"/api/v1/runs/{run.id}"),
            ("POST", f"/api/v1/runs/{run.id}/restore"),
            ("DELETE", f"/api/v1/experiments/{run.experiment_id}"),
            ("POST", f"/api/v1/experiments/{run.experiment_id}/restore"),
            ("DELETE", "/api/v1/models/m/versions/1"),
            ("DELETE", "/api/v1/models/m"),
        ):
            assert anonymous.request(method, path).status_code == 401, (method, path)
    assert services.tracking.get_run(run.id).deleted_at is None
    assert services.registry.get_version("m", 1).version == 1
