"""The HTTP API in process: every route, deny by default, Host check, traversal, errors.

The app is the real one from `create_app` over real stores under tmp_path;
requests go through Litestar's TestClient, or straight into the ASGI app where
an HTTP client would tidy the path (``../``) before sending it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from mlbox.api.app import MAX_BODY_BYTES, create_app
from mlbox.api.security import host_name
from mlbox.services import Services
from mlbox.tracking.schemas import Run
from tests.helpers import error

TOKEN = "test-token-5c0a8e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"

# Written out here, not imported from the app: widening the allow-list must
# also change this test.
EXPECTED_OPEN = {("GET", "/"), ("GET", "/api/v1/health"), ("GET", "/schema"), ("GET", "/schema/openapi.json")}
# The scoring routes (mounted when create_app gets a ServingService) are open too: they
# only read registered models. Their answer without a token depends on the body and the
# model (200, 400, 404), so the walk checks only that they do not ask for the token.
EXPECTED_OPEN_SCORING = {
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
    ("POST", "/api/v1/models/{name}/predict"),
    ("POST", "/invocations"),
    ("GET", "/metrics"),
}


@dataclasses.dataclass
class Seeded:
    a: Run
    b: Run
    artifact: bytes
    loss: list[tuple[int, float, float]]


@pytest.fixture
def app(services: Services) -> Litestar:
    return create_app(services, token=TOKEN)


@pytest.fixture
def anon(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app, base_url=BASE) as client:
        yield client


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app, base_url=BASE) as client:
        client.headers.update(AUTH)
        yield client


@pytest.fixture
def seeded(services: Services) -> Seeded:
    t = services.tracking
    a = t.create_run("vision", "run-a", tags={"team": "cv"})
    t.log_params(a.id, {"lr": "0.01", "layers": 3})
    loss = [(step, 1000.0 + step, 1.0 / (step + 1)) for step in range(20)]
    t.log_points(a.id, [("train/loss", s, ts, v) for s, ts, v in loss])
    t.log_points(a.id, [("acc", 0, 1000.0, 0.5), ("acc", 1, 1001.0, 0.95), ("div", 0, 1000.0, math.inf)])
    artifact = b"weights \x00\x01\x02 " * 100
    t.log_artifact_bytes(a.id, "model/weights.bin", artifact)
    t.log_dataset(a.id, name="digits", digest="ab" * 32, source="digits.csv", rows=10, schema={"x": "int"})
    b = t.create_run("text", "run-b")
    t.log_params(b.id, {"lr": "0.1"})
    t.log_points(b.id, [("acc", 0, 1000.0, 0.4)])
    t.end_run(b.id)
    return Seeded(a=a, b=b, artifact=artifact, loss=loss)


async def _raw_get(app: Litestar, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Call the ASGI app with ``path`` exactly as given (no client tidies ``..`` away)."""
    messages: list[Any] = []
    done = asyncio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if asked:
            await done.wait()
            return {"type": "http.disconnect"}
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5151),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


# -- deny by default -------------------------------------------------------------------


def _concrete(route: HTTPRoute) -> str:
    values = {name: 1 if p.type is int else "x" for name, p in route.path_parameters.items()}
    return route.path_format.format(**values)


def test_every_route_but_health_and_schema_refuses_missing_or_wrong_token(
    app: Litestar, anon: TestClient[Litestar]
) -> None:
    visited: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, HTTPRoute), f"{route.path}: a non-HTTP route needs its own auth test"
        url = _concrete(route)
        for method in sorted(route.methods):
            visited.add((method, route.path_format))
            if (method, route.path_format) in EXPECTED_OPEN:
                assert anon.request(method, url).status_code == 200, (method, url)
                continue
            if (method, route.path_format) in EXPECTED_OPEN_SCORING:
                assert anon.request(method, url).status_code != 401, (method, url)
                continue
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token"},
                {"Authorization": f"Bearer {TOKEN}x"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": TOKEN},
                {"Authorization": "Bearer "},
            ):
                response = anon.request(method, url, headers=headers)
                error(response, 401, field="authorization")
            assert anon.request(method, url, headers=AUTH).status_code != 401, (method, url)
    # the walk saw the routes that matter, so it cannot pass by visiting nothing
    assert visited >= EXPECTED_OPEN
    for expected in [
        ("GET", "/api/v1/runs"),
        ("POST", "/api/v1/runs/{run_id}/log-batch"),
        ("GET", "/api/v1/runs/{run_id}/artifacts/{path}"),
        ("OPTIONS", "/api/v1/runs/{run_id}"),
    ]:
        assert expected in visited


def test_every_documented_route_has_a_unique_operation_id(app: Litestar) -> None:
    """Read from the OpenAPI document, where a handler mounted on two paths (a model and one of its
    versions) has an id per path."""
    documented = {
        (method.upper(), path)
        for route in app.routes
        for handler in route.route_handlers
        if isinstance(route, HTTPRoute) and handler.resolve_include_in_schema()
        for method in handler.http_methods
        for path in [route.path_format]
    }
    schema = app.openapi_schema.to_schema()
    ops = {
        (method.upper(), path): op for path, item in schema["paths"].items() for method, op in item.items()
    }
    assert documented <= set(ops), documented - set(ops)
    ids = [op.get("operationId") for op in ops.values()]
    assert all(ids) and len(ids) == len(set(ids)) >= 14, ids
    assert {"modelInfer", "modelVersionInfer", "modelReady", "modelVersionReady"} <= set(ids)


def test_bearer_scheme_is_case_insensitive(anon: TestClient[Litestar]) -> None:
    assert anon.get("/api/v1/runs", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert anon.get("/api/v1/runs").headers["www-authenticate"] == "Bearer"


# -- Host header (DNS rebinding) ----------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:5151",
        "127.0.0.1.evil.example.com",
        "localhost.evil.example.com:5151",
        "[::2]:5151",
        "",
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/health", "/schema/openapi.json", "/api/v1/runs"])
def test_foreign_host_is_refused_everywhere(client: TestClient[Litestar], host: str, path: str) -> None:
    error(client.get(path, headers={"Host": host}), 403, field="host")


@pytest.mark.parametrize("host", ["localhost:5151", "127.0.0.1", "[::1]:5151", "LOCALHOST", "127.0.0.1:80"])
def test_loopback_hosts_are_accepted(client: TestClient[Litestar], host: str) -> None:
    assert client.get("/api/v1/runs", headers={"Host": host}).status_code == 200


def test_configured_hosts_are_accepted(services: Services) -> None:
    settings = dataclasses.replace(services.settings, allowed_hosts=("mlbox.lan",))
    app = create_app(dataclasses.replace(services, settings=settings), token=TOKEN)
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/api/v1/health", headers={"Host": "mlbox.lan:5151"}).status_code == 200
        error(c.get("/api/v1/health", headers={"Host": "other.lan"}), 403, field="host")


def test_host_name_parsing() -> None:
    assert host_name("LocalHost:5151") == "localhost"
    assert host_name("[::1]:5151") == "[::1]"
    assert host_name("[::1]") == "[::1]"
    assert host_name("::1") == "::1"
    assert host_name("example.com") == "example.com"


# -- open routes ---------------------------------------------------------------------------


def test_health(anon: TestClient[Litestar]) -> None:
    body = anon.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["version"]


def test_schema_is_json_only_with_no_html_page(
    anon: TestClient[Litestar], client: TestClient[Litestar]
) -> None:
    response = anon.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    ops = [
        op["operationId"] for item in schema["paths"].values() for op in item.values() if "operationId" in op
    ]
    assert {"searchRuns", "getRun", "getMetricHistory", "downloadArtifact", "logBatch"} <= set(ops)
    for page in ["/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/x.html"]:
        r = client.get(page)
        assert r.status_code == 404, page
        assert r.headers["content-type"].startswith("application/json"), page
        assert "<script" not in r.text and "cdn" not in r.text.lower()


# -- experiments -------------------------------------------------------------------------------


def test_experiments(client: TestClient[Litestar], seeded: Seeded) -> None:
    names = [e["name"] for e in client.get("/api/v1/experiments").json()]
    assert names == ["text", "vision"]
    created = client.post("/api/v1/experiments", json={"name": "audio", "description": "wav2vec"})
    assert created.status_code == 201
    exp = created.json()
    assert exp["name"] == "audio" and exp["run_count"] == 0
    assert client.get(f"/api/v1/experiments/{exp['id']}").json() == exp
    error(client.post("/api/v1/experiments", json={"name": "audio"}), 409, field="experiment")
    error(client.post("/api/v1/experiments", json={"name": " "}), 400, field="experiment")
    error(client.post("/api/v1/experiments", json={"title": "x"}), 400, field="body")
    error(client.get("/api/v1/experiments/999"), 404, field="experiment")


def test_rename_an_experiment(client: TestClient[Litestar], seeded: Seeded) -> None:
    text = next(e for e in client.get("/api/v1/experiments").json() if e["name"] == "text")
    renamed = client.patch(f"/api/v1/experiments/{text['id']}", json={"name": "nlp"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "nlp" and renamed.json()["run_count"] == text["run_count"] > 0
    runs = client.post("/api/v1/runs/search", json={"experiments": ["nlp"]}).json()["runs"]
    assert len(runs) == text["run_count"]
    error(client.patch(f"/api/v1/experiments/{text['id']}", json={"name": "vision"}), 409, field="new_name")
    error(client.patch(f"/api/v1/experiments/{text['id']}", json={"name": " "}), 400)
    error(client.patch(f"/api/v1/experiments/{text['id']}", json={"title": "x"}), 400, field="body")
    error(client.patch("/api/v1/experiments/999", json={"name": "x"}), 404, field="experiment")
    assert sorted(e["name"] for e in client.get("/api/v1/experiments").json()) == ["nlp", "vision"]


# -- runs: search, detail, compare -----------------------------------------------------------


def test_search_runs_by_query(client: TestClient[Litestar], seeded: Seeded) -> None:
    page = client.get("/api/v1/runs").json()
    assert page["total"] == 2 and [r["id"] for r in page["runs"]] == [seeded.b.id, seeded.a.id]
    page = client.get("/api/v1/runs", params={"filter": "metrics.acc > 0.9"}).json()
    assert [r["id"] for r in page["runs"]] == [seeded.a.id]
    page = client.get("/api/v1/runs", params={"order_by": ["metrics.acc ASC"], "limit": 1}).json()
    assert page["total"] == 2 and [r["id"] for r in page["runs"]] == [seeded.b.id] and page["limit"] == 1
    page = client.get("/api/v1/runs", params={"order_by": "metrics.acc ASC", "offset": 1}).json()
    assert [r["id"] for r in page["runs"]] == [seeded.a.id]
    page = client.get("/api/v1/runs", params={"experiment": ["text", "nope"]}).json()
    assert [r["id"] for r in page["runs"]] == [seeded.b.id]
    page = client.get("/api/v1/runs", params={"filter": "params.lr = '0.01' and status = 'running'"}).json()
    assert [r["id"] for r in page["runs"]] == [seeded.a.id]


def test_search_runs_by_body(client: TestClient[Litestar], seeded: Seeded) -> None:
    r = client.post("/api/v1/runs/search", json={"filter": "metrics.acc < 0.9", "experiments": ["text"]})
    assert r.status_code == 200
    assert [run["id"] for run in r.json()["runs"]] == [seeded.b.id]
    error(client.post("/api/v1/runs/search", json={"filter": "metrics.acc >"}), 400, field="filter")
    error(client.post("/api/v1/runs/search", json={"limit": "ten"}), 400, field="limit")
    error(client.post("/api/v1/runs/search", json={"fliter": "x"}), 400, field="body")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "x"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000000"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1.5"}, "offset"),
        ({"filter": "metrics.acc >"}, "filter"),
        ({"filter": "metrics.acc > 'high'"}, "filter"),
        ({"filter": "nonsense ==== 3"}, "filter"),
    ],
)
def test_bad_search_input_is_400_naming_the_field(
    client: TestClient[Litestar], seeded: Seeded, params: dict[str, str], field: str
) -> None:
    error(client.get("/api/v1/runs", params=params), 400, field=field)


@pytest.mark.parametrize("order_by", ["metrics.acc sideways", "bogus", "metrics."])
def test_bad_order_by_is_400_naming_order_by(
    client: TestClient[Litestar], seeded: Seeded, order_by: str
) -> None:
    error(client.get("/api/v1/runs", params={"order_by": order_by}), 400, field="order_by")


def test_run_detail(client: TestClient[Litestar], seeded: Seeded) -> None:
    d = client.get(f"/api/v1/runs/{seeded.a.id}").json()
    assert d["run"]["name"] == "run-a" and d["run"]["experiment"] == "vision"
    assert d["run"]["params"] == {"lr": "0.01", "layers": "3"}
    assert d["run"]["tags"] == {"team": "cv"}
    assert d["run"]["metrics"]["acc"] == 0.95
    assert d["run"]["metrics"]["div"] is None  # +inf renders as null
    assert {m["key"]: m["count"] for m in d["metrics"]} == {"acc": 2, "div": 1, "train/loss": 20}
    assert d["artifacts"] == [
        {"path": "model/weights.bin", "sha256": d["artifacts"][0]["sha256"], "size": len(seeded.artifact)}
    ]
    assert d["datasets"][0]["name"] == "digits"


def test_unknown_run_is_404(client: TestClient[Litestar], seeded: Seeded) -> None:
    for path in [
        "/api/v1/runs/999",
        "/api/v1/runs/999/metrics",
        "/api/v1/runs/999/metrics/acc",
        "/api/v1/runs/999/artifacts",
        "/api/v1/runs/999/artifacts/model/weights.bin",
    ]:
        error(client.get(path), 404, field="run_id")
    error(client.post("/api/v1/runs/999/end", json={}), 404, field="run_id")
    error(client.post("/api/v1/runs/999/log-batch", json={"params": {"a": 1}}), 404, field="run_id")
    error(client.get("/api/v1/runs/abc"), 400, "run_id")  # not an id: a 400 naming it


def test_compare(client: TestClient[Litestar], seeded: Seeded) -> None:
    cmp = client.get("/api/v1/runs/compare", params={"ids": [seeded.a.id, seeded.b.id]}).json()
    assert cmp["run_ids"] == [seeded.a.id, seeded.b.id]
    assert cmp["params"]["lr"] == ["0.01", "0.1"]
    assert cmp["params"]["layers"] == ["3", None]
    assert cmp["metrics"]["acc"] == [0.95, 0.4]
    error(client.get("/api/v1/runs/compare", params={"ids": seeded.a.id}), 400, field="run_ids")
    error(client.get("/api/v1/runs/compare"), 400, field="ids")
    error(client.get("/api/v1/runs/compare", params={"ids": ["1", "x"]}), 400, field="ids")
    error(client.get("/api/v1/runs/compare", params={"ids": [seeded.a.id, 999]}), 404)
    # past SQLite's 64-bit integers: a 400 naming the parameter (schemathesis found a 500)
    error(client.get("/api/v1/runs/compare", params={"ids": [2**63, 0]}), 400, field="ids")
    error(client.get("/api/v1/runs", params={"offset": 2**63}), 400, field="offset")


# -- metrics -------------------------------------------------------------------------------


def test_metric_history(client: TestClient[Litestar], seeded: Seeded) -> None:
    url = f"/api/v1/runs/{seeded.a.id}/metrics"
    assert [m["key"] for m in client.get(url).json()] == ["acc", "div", "train/loss"]
    h = client.get(f"{url}/train/loss").json()
    assert h["key"] == "train/loss" and h["run_id"] == seeded.a.id
    assert [tuple(p) for p in h["points"]] == seeded.loss
    thin = client.get(f"{url}/train/loss", params={"max_points": 5}).json()["points"]
    assert len(thin) == 5 and tuple(thin[-1]) == seeded.loss[-1]
    assert client.get(f"{url}/div").json()["points"] == [[0, 1000.0, None]]
    error(client.get(f"{url}/train/loss", params={"max_points": 1}), 400, field="max_points")
    error(client.get(f"{url}/train/loss", params={"max_points": "many"}), 400, field="max_points")
    error(client.get(f"{url}/nope"), 404, field="key")


# -- logging from a remote client ---------------------------------------------------------------


def test_create_log_and_end_a_run(client: TestClient[Litestar], services: Services) -> None:
    r = client.post("/api/v1/runs", json={"experiment": "remote", "name": "r1", "tags": {"via": "http"}})
    assert r.status_code == 201
    run = r.json()
    assert run["status"] == "running" and run["experiment"] == "remote" and run["tags"] == {"via": "http"}
    url = f"/api/v1/runs/{run['id']}"
    batch = {
        "params": {"lr": 0.01, "opt": "adam"},
        "tags": {"stage": "dev"},
        "metrics": [["loss", 0, 10.0, 1.0], ["loss", 1, 11.0, 0.5], ["loss", 2, 12.0, None]],
    }
    r = client.post(f"{url}/log-batch", json=batch)
    assert r.status_code == 200 and r.json() == {"params": 2, "tags": 1, "metrics": 3}
    points = services.tracking.metric_history(run["id"], "loss")
    assert [(p.step, p.ts) for p in points] == [(0, 10.0), (1, 11.0), (2, 12.0)]
    assert points[1].value == 0.5 and points[2].value is not None and math.isnan(points[2].value)
    assert client.get(f"{url}/metrics/loss").json()["points"][2] == [2, 12.0, None]
    # the same param again is fine, another value is a conflict
    assert client.post(f"{url}/log-batch", json={"params": {"opt": "adam"}}).status_code == 200
    error(client.post(f"{url}/log-batch", json={"params": {"opt": "sgd"}}), 409, field="opt")
    error(client.post(f"{url}/log-batch", json={"metrics": [["loss", "x", 1, 2]]}), 400)
    error(client.post(f"{url}/log-batch", json={"metrics": [["", 3, 1.0, 2.0]]}), 400, field="metric")
    error(client.post(f"{url}/log-batch", content=b'{"params": '), 400, field="body")
    error(client.post(f"{url}/log-batch", json={"metrics": "lots"}), 400, field="metrics")
    error(client.post(f"{url}/end", json={"status": "running"}), 400, field="status")
    ended = client.post(f"{url}/end", json={"status": "failed"})
    assert ended.status_code == 200 and ended.json()["status"] == "failed"
    assert services.tracking.get_run(run["id"]).status == "failed"
    other = client.post("/api/v1/runs", json={}).json()
    assert other["experiment"] == "Default"
    assert client.post(f"/api/v1/runs/{other['id']}/end").json()["status"] == "finished"


def test_body_over_the_limit_is_413(client: TestClient[Litestar], seeded: Seeded) -> None:
    big = b'{"params": {"x": "' + b"a" * MAX_BODY_BYTES + b'"}}'
    error(client.post(f"/api/v1/runs/{seeded.a.id}/log-batch", content=big), 413)


# -- artifacts ---------------------------------------------------------------------------------


def test_list_and_download_artifact(client: TestClient[Litestar], seeded: Seeded) -> None:
    url = f"/api/v1/runs/{seeded.a.id}/artifacts"
    listing = client.get(url).json()
    assert [a["path"] for a in listing] == ["model/weights.bin"]
    r = client.get(f"{url}/model/weights.bin")
    assert r.status_code == 200 and r.content == seeded.artifact
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"] == f'"{listing[0]["sha256"]}"'
    assert "attachment" in r.headers["content-disposition"]
    error(client.get(f"{url}/model/other.bin"), 404, field="path")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the store that no request may ever read."""
    path = tmp_path / "secret.txt"
    path.write_bytes(b"TOP-SECRET-2f9d")
    return path


@pytest.mark.parametrize(
    "tail",
    [
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "..%2f..%2f..%2f..%2fsecret.txt",
        "%2e%2e%2f%2e%2e%2fsecret.txt",
        "%252e%252e%252f%252e%252e%252fsecret.txt",
        "model/..%5c..%5csecret.txt",
        "..\\..\\secret.txt",
        "model/%00secret.txt",
        "~/secret.txt",
    ],
)
def test_encoded_traversal_never_leaves_the_store(
    client: TestClient[Litestar], seeded: Seeded, secret: Path, tail: str
) -> None:
    r = client.get(f"/api/v1/runs/{seeded.a.id}/artifacts/{tail}")
    assert r.status_code in (400, 404), r.text
    error(r, r.status_code)
    assert b"TOP-SECRET" not in r.content


@pytest.mark.parametrize(
    "tail",
    ["../../../../../secret.txt", "model/../../secret.txt", "/{secret}", "{secret}", "./../secret.txt"],
)
async def test_raw_traversal_never_leaves_the_store(
    app: Litestar, seeded: Seeded, secret: Path, tail: str
) -> None:
    path = f"/api/v1/runs/{seeded.a.id}/artifacts/" + tail.format(secret=secret)
    status, body = await _raw_get(app, path, {"host": "127.0.0.1", **AUTH})
    assert status in (400, 404), body
    assert b"TOP-SECRET" not in body and b'"error"' in body


async def test_raw_dot_segments_inside_the_store_are_refused_not_resolved(
    app: Litestar, seeded: Seeded
) -> None:
    path = f"/api/v1/runs/{seeded.a.id}/artifacts/model/x/../weights.bin"
    status, body = await _raw_get(app, path, {"host": "127.0.0.1", **AUTH})
    assert status == 400 and b'"field":"path"' in body


def _object_path(services: Services, run_id: int, path: str) -> Path:
    sha = services.tracking.artifact(run_id, path).sha256
    return services.home.artifacts / "objects" / sha[:2] / sha[2:]


def test_symlink_planted_in_the_store_is_not_followed(
    client: TestClient[Litestar], services: Services, seeded: Seeded, tmp_path: Path
) -> None:
    # the target even holds the right bytes: it is refused for being a link, not for its hash
    target = tmp_path / "outside.bin"
    target.write_bytes(seeded.artifact)
    obj = _object_path(services, seeded.a.id, "model/weights.bin")
    obj.unlink()
    obj.symlink_to(target)
    r = client.get(f"/api/v1/runs/{seeded.a.id}/artifacts/model/weights.bin")
    body = error(r, 500)
    assert body["type"] == "IntegrityError"
    assert seeded.artifact not in r.content


def test_tampered_artifact_is_an_error_json(
    client: TestClient[Litestar], services: Services, seeded: Seeded
) -> None:
    obj = _object_path(services, seeded.a.id, "model/weights.bin")
    os.chmod(obj, 0o644)
    obj.write_bytes(b"evil" + seeded.artifact[4:])
    r = client.get(f"/api/v1/runs/{seeded.a.id}/artifacts/model/weights.bin")
    body = error(r, 500)
    assert body["type"] == "IntegrityError" and "sha256" in body["error"]
    assert b"evil" not in r.content


def test_missing_object_is_404_json(client: TestClient[Litestar], services: Services, seeded: Seeded) -> None:
    _object_path(services, seeded.a.id, "model/weights.bin").unlink()
    error(client.get(f"/api/v1/runs/{seeded.a.id}/artifacts/model/weights.bin"), 404)


# -- errors ---------------------------------------------------------------------------------


def test_unknown_route_and_method_are_json(client: TestClient[Litestar]) -> None:
    error(client.get("/api/v1/nothing-here"), 404)
    error(client.delete("/api/v1/runs"), 405)


def test_unexpected_failure_is_a_bare_500(client: TestClient[Litestar], services: Services) -> None:
    with sqlite3.connect(services.home.db_path) as conn:  # break the store under the service
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DROP TABLE experiments")
    r = client.get("/api/v1/experiments")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error"}
