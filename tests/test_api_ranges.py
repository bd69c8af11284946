"""Ids past SQLite's INTEGER range in a path are a 400 naming the parameter, not an OverflowError 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.api.ranges import INT64_MAX
from mlbox.services import Services
from tests.helpers import error

TOKEN = "test-token-ranges"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url="http://127.0.0.1:5151") as client:
        client.headers.update({"Authorization": f"Bearer {TOKEN}"})
        yield client


PATHS = [
    ("get", "/api/v1/runs/{}", "run_id"),
    ("get", "/api/v1/runs/{}/metrics", "run_id"),
    ("post", "/api/v1/runs/{}/end", "run_id"),
    ("get", "/api/v1/experiments/{}", "experiment_id"),
    ("get", "/api/v1/jobs/{}", "job_id"),
    ("get", "/api/v1/jobs/{}/logs", "job_id"),
    ("post", "/api/v1/jobs/{}/cancel", "job_id"),
    ("get", "/api/v1/sweeps/{}", "sweep_id"),
    ("get", "/api/v1/notebooks/{}", "notebook_id"),
]


@pytest.mark.parametrize(("method", "template", "field"), PATHS)
@pytest.mark.parametrize("value", [INT64_MAX + 1, 2**80, -(2**63) - 1])
def test_ids_beyond_int64_are_400(
    client: TestClient[Litestar], method: str, template: str, field: str, value: int
) -> None:
    answer = error(getattr(client, method)(template.format(value)), 400, field)
    assert str(value) in answer["error"]


@pytest.mark.parametrize(("method", "template", "field"), PATHS)
def test_the_largest_id_is_looked_up(
    client: TestClient[Litestar], method: str, template: str, field: str
) -> None:
    error(getattr(client, method)(template.format(INT64_MAX)), 404)


def test_a_feature_view_version_beyond_int64_is_400(client: TestClient[Litestar]) -> None:
    error(client.get("/api/v1/features/views/v", params={"version": str(INT64_MAX + 1)}), 400, "version")


@pytest.mark.parametrize("path", ["/api/v1/notebooks", "/api/v1/notebooks/runs"])
def test_a_gpu_count_beyond_int64_is_400(client: TestClient[Litestar], path: str) -> None:
    body = b'{"path": "n.ipynb", "gpus": 9223372036854775808}'
    if path == "/api/v1/notebooks":
        body = b'{"gpus": 9223372036854775808}'
    error(client.post(path, content=body, headers={"content-type": "application/json"}), 400, "gpus")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/models/m/versions", {"run_id": INT64_MAX + 1}, "run_id"),
        ("/api/v1/models/m/aliases/champion", {"version": INT64_MAX + 1}, "version"),
    ],
)
def test_a_body_id_beyond_int64_is_400_naming_it(
    client: TestClient[Litestar], path: str, body: dict[str, int], field: str
) -> None:
    """Found by schemathesis in CI: ``{"run_id": 9223372036854775808}`` was a 500 (OverflowError)."""
    send = client.put if "aliases" in path else client.post
    error(send(path, json=body), 400, field)


def test_a_lineage_path_with_a_nul_is_400_naming_path(client: TestClient[Litestar]) -> None:
    """Found by schemathesis in CI: ``?path=%00`` was a 500 (the OS refuses such a name)."""
    error(client.get("/api/v1/pipelines/lineage", params={"path": "/data/x\x00y"}), 400, "path")
