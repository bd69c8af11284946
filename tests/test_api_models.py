"""The registry's HTTP routes in process: every route, the token, and the 400/404 paths.

The app is the real one from `create_app` over a home under tmp_path; models
are logged by a training run through the public client, then registered and
moved over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

import mlbox
from mlbox.api.app import create_app
from mlbox.api.security import OPEN_ROUTES
from mlbox.services import Services
from tests.helpers import error

TOKEN = "test-token-models"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"
PREFIX = "/api/v1/models"
QUICK = {"log_code": False, "log_environment": False}


class Halver:
    """A plain Python model, importable as ``tests.test_api_models.Halver``."""

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs) / 2


@pytest.fixture
def app(services: Services) -> Litestar:
    return create_app(services, token=TOKEN)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app, base_url=BASE) as client:
        client.headers.update(AUTH)
        yield client


@pytest.fixture
def run_ids(home: Path) -> list[int]:
    """Two runs that logged a model, and a third that logged only a bare pickle."""
    ids = []
    for name in ("a", "b"):
        with mlbox.start_run(name, experiment="halving", **QUICK) as run:
            mlbox.log_dataset(np.zeros((4, 2)), "train-x")
            mlbox.log_model(Halver())
        ids.append(run.id)
    return ids


def _register(client: TestClient[Litestar], run_id: int, **extra: Any) -> dict[str, Any]:
    response = client.post(f"{PREFIX}/halver/versions", json={"run_id": run_id, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _models_routes(app: Litestar) -> list[tuple[str, str, str]]:
    found = []
    for route in app.routes:
        assert isinstance(route, HTTPRoute)
        if route.path_format.startswith(PREFIX):
            values = {name: 1 if p.type is int else "x" for name, p in route.path_parameters.items()}
            for method in sorted(route.methods - {"OPTIONS"}):
                if (method, route.path_format) in OPEN_ROUTES:
                    continue  # scoring (`/predict`) is open by design, like KServe's
                found.append((method, route.path_format, route.path_format.format(**values)))
    return found


def test_every_models_route_needs_the_token(app: Litestar, services: Services, run_ids: list[int]) -> None:
    routes = _models_routes(app)
    assert {(m, p) for m, p, _ in routes} == {
        ("GET", PREFIX),
        ("GET", PREFIX + "/{name}"),
        ("GET", PREFIX + "/{name}/versions"),
        ("POST", PREFIX + "/{name}/versions"),
        ("GET", PREFIX + "/{name}/versions/{version}"),
        ("DELETE", PREFIX + "/{name}/versions/{version}"),
        ("DELETE", PREFIX + "/{name}"),
        ("GET", PREFIX + "/{name}/aliases/{alias}"),
        ("PUT", PREFIX + "/{name}/aliases/{alias}"),
        ("DELETE", PREFIX + "/{name}/aliases/{alias}"),
        ("GET", PREFIX + "/{name}/aliases/{alias}/history"),
        ("GET", PREFIX + "/{name}/history"),
        ("POST", PREFIX + "/{name}/explain"),
        ("GET", PREFIX + "/{name}/importance"),
    }

    def body(method: str) -> dict[str, Any] | None:
        return {"run_id": run_ids[0]} if method == "POST" else {"version": 1} if method == "PUT" else None

    with TestClient(app, base_url=BASE) as anon:
        for method, _, url in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                response = anon.request(method, url, headers=headers, json=body(method))
                error(response, 401, field="authorization")
        assert services.registry.list_models() == []  # the refused POST registered nothing
        for method, _, url in routes:
            # with the token the same request gets past the guard, and never to a 500
            response = anon.request(method, url, headers=AUTH, json=body(method))
            assert response.status_code not in (401, 500), (method, url, response.text)
    assert [m.name for m in services.registry.list_models()] == ["x"]


def test_register_list_and_read_versions(client: TestClient[Litestar], run_ids: list[int]) -> None:
    assert client.get(PREFIX).json() == []
    first = _register(client, run_ids[0], example_input=[[1.0, 2.0]], description="first")
    assert (first["name"], first["version"], first["flavor"], first["run_id"]) == (
        "halver",
        1,
        "python",
        run_ids[0],
    )
    assert first["description"] == "first"
    assert first["signature"]["inputs"] == {
        "kind": "tensor",
        "tensors": [{"dtype": "float64", "shape": [-1, 2], "name": None}],
        "columns": [],
    }
    assert (
        first["lineage"]["experiment"] == "halving" and first["lineage"]["datasets"][0]["name"] == "train-x"
    )
    assert {f["path"] for f in first["files"]} == {"mlbox-model.json", "model.pkl"}
    second = _register(client, run_ids[1])
    assert second["version"] == 2 and second["signature"] is None

    [listed] = client.get(PREFIX).json()
    assert (listed["name"], listed["latest_version"], listed["version_count"]) == ("halver", 2, 2)
    detail = client.get(f"{PREFIX}/halver").json()
    assert detail["model"]["name"] == "halver"
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert [v["version"] for v in client.get(f"{PREFIX}/halver/versions").json()] == [1, 2]
    assert client.get(f"{PREFIX}/halver/versions/1").json() == first


def test_alias_put_get_history_and_delete(client: TestClient[Litestar], run_ids: list[int]) -> None:
    for rid in run_ids:
        _register(client, rid)
    url = f"{PREFIX}/halver/aliases/champion"
    assert client.put(url, json={"version": 1}).json() == {
        "model": "halver",
        "alias": "champion",
        "from_version": None,
        "to_version": 1,
    }
    moved = client.put(url, json={"version": 2, "note": "b is better"}).json()
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    assert client.get(url).json()["version"] == 2
    assert client.get(f"{PREFIX}/halver/versions/2").json()["aliases"] == ["champion"]
    assert client.get(PREFIX).json()[0]["aliases"] == {"champion": 2}
    client.put(f"{PREFIX}/halver/aliases/challenger", json={"version": 1})

    history = client.get(f"{url}/history").json()
    assert [(h["from_version"], h["to_version"], h["note"]) for h in history] == [
        (None, 1, ""),
        (1, 2, "b is better"),
    ]
    removed = client.request("DELETE", url, json={"note": "retired"})
    assert removed.status_code == 200
    assert removed.json() == {"model": "halver", "alias": "champion", "from_version": 2, "to_version": None}
    everything = client.get(f"{PREFIX}/halver/history").json()
    assert [(h["alias"], h["to_version"], h["note"]) for h in everything][-2:] == [
        ("challenger", 1, ""),
        ("champion", None, "retired"),
    ]
    assert client.delete(f"{PREFIX}/halver/aliases/challenger").json()["from_version"] == 1
    error(client.get(url), 404, field="model")
    error(client.delete(url), 404, field="alias")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("GET", "/nope", None, 404, "name"),
        ("GET", "/nope/versions", None, 404, "name"),
        ("GET", "/halver/versions/9", None, 404, "version"),
        ("GET", "/halver/versions/0", None, 400, "version"),
        ("GET", "/halver/versions/x", None, 400, "version"),  # not an int: named, as every id in a path
        ("GET", "/bad%20name", None, 400, "name"),
        ("GET", "/halver/aliases/nope", None, 404, "model"),
        ("GET", "/halver/aliases/Nope", None, 400, "alias"),
        ("GET", "/nope/history", None, 404, "name"),
        ("GET", "/halver/aliases/Nope/history", None, 400, "alias"),
        ("PUT", "/halver/aliases/champion", {"version": 9}, 404, "version"),
        ("PUT", "/halver/aliases/champion", {"version": 0}, 400, "version"),
        ("PUT", "/halver/aliases/champion", {"version": "one"}, 400, "version"),
        ("PUT", "/halver/aliases/champion", {}, 400, "version"),  # "missing required field `version`"
        ("PUT", "/halver/aliases/champion", {"version": 1, "colour": "red"}, 400, None),
        ("PUT", "/halver/aliases/Champion", {"version": 1}, 400, "alias"),
        ("PUT", "/halver/aliases/latest", {"version": 1}, 400, "alias"),
        ("PUT", "/nope/aliases/champion", {"version": 1}, 404, "name"),
        ("DELETE", "/halver/aliases/staging", None, 404, "alias"),
        ("DELETE", "/nope/aliases/staging", None, 404, "name"),
        ("POST", "/halver/versions", {"run_id": 999}, 404, "run_id"),
        ("POST", "/halver/versions", {"run_id": "RUN"}, 400, "run_id"),
        ("POST", "/halver/versions", {}, 400, "run_id"),
        ("POST", "/halver/versions", {"run_id": 1, "artifact_path": "nope"}, 404, "artifact_path"),
        ("POST", "/halver/versions", {"run_id": 1, "artifact_path": "../etc"}, 400, "artifact_path"),
        ("POST", "/halver/versions", {"run_id": 1, "flavor": "cobol"}, 400, "flavor"),
        ("POST", "/halver/versions", {"run_id": 1, "model": "AAAA"}, 400, None),  # no uploads
        ("POST", "/bad@name/versions", {"run_id": 1}, 400, "name"),
        ("POST", "/halver/versions", {"run_id": 1, "example_input": [[1, 2], [3]]}, 400, "example_input"),
        # the model is run on the example: a Halver cannot take named inputs
        ("POST", "/halver/versions", {"run_id": 1, "example_input": {"a": [1.0]}}, 400, "example_input"),
    ],
)
def test_bad_requests_are_json_errors_naming_the_field(
    client: TestClient[Litestar],
    run_ids: list[int],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    field: str | None,
) -> None:
    _register(client, run_ids[0])
    error(client.request(method, PREFIX + path, json=body), status, field)
    assert [v["version"] for v in client.get(f"{PREFIX}/halver/versions").json()] == [1]  # nothing added


def test_malformed_json_is_400(client: TestClient[Litestar], run_ids: list[int]) -> None:
    response = client.post(
        f"{PREFIX}/halver/versions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error(response, 400, field="body")


def test_files_without_a_manifest_need_a_flavor(
    client: TestClient[Litestar], services: Services, tmp_path: Path
) -> None:
    import pickle

    run = services.tracking.create_run("halving", "raw")
    services.tracking.log_artifact_bytes(run.id, "model/halver.pkl", pickle.dumps(Halver()))
    error(client.post(f"{PREFIX}/halver/versions", json={"run_id": run.id}), 400, "flavor")
    made = client.post(
        f"{PREFIX}/halver/versions", json={"run_id": run.id, "flavor": "python", "example_input": [[4.0]]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["manifest"]["flavor"] == "python"


def test_tampered_run_artifact_is_refused(
    client: TestClient[Litestar], services: Services, run_ids: list[int]
) -> None:
    info = next(a for a in services.tracking.list_artifacts(run_ids[0]) if a.path == "model/model.pkl")
    blob = services.tracking.artifacts.root / "objects" / info.sha256[:2] / info.sha256[2:]
    blob.chmod(0o644)
    blob.write_bytes(b"tampered" + blob.read_bytes()[8:])
    body = error(client.post(f"{PREFIX}/halver/versions", json={"run_id": run_ids[0]}), 500, "artifact_path")
    assert "cannot be read back intact" in body["error"]
    error(client.get(f"{PREFIX}/halver"), 404, "name")  # no version was written
