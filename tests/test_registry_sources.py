"""A registry source written as a URL is refused as such (400), never looked up as if a run
merely lacked that artifact (404): mlbox fetches nothing from a network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

import mlbox
from mlbox.api.app import create_app
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from tests.helpers import error

TOKEN = "test-token-sources"
URLS = ["http://example.com/model.pkl", "s3://bucket/model", "HTTPS://x/y", "gs://b/m", "file:///tmp/m"]


@pytest.fixture
def run_id(home: Path) -> int:
    with mlbox.start_run("sources", experiment="sources") as run:
        mlbox.log_dataset(np.zeros((2, 2)), "x")
    return run.id


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url="http://127.0.0.1:5151") as client:
        client.headers.update({"Authorization": f"Bearer {TOKEN}"})
        yield client


@pytest.mark.parametrize("url", URLS)
def test_a_url_as_artifact_path_is_a_400_over_http(
    client: TestClient[Litestar], run_id: int, url: str
) -> None:
    r = client.post("/api/v1/models/m/versions", json={"run_id": run_id, "artifact_path": url})
    body = error(r, 400, "artifact_path")
    assert "sources must be artifacts of a run in this store" in body["error"]


@pytest.mark.parametrize("url", URLS[:2])
def test_a_url_as_files_from_is_refused_by_the_service(services: Services, url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        services.registry.register("m", files_from=url)
    assert caught.value.field == "files_from" and caught.value.http_status == 400
    assert "sources must be artifacts of a run in this store" in caught.value.message


def test_a_missing_artifact_of_a_real_run_is_still_a_404(client: TestClient[Litestar], run_id: int) -> None:
    r = client.post("/api/v1/models/m/versions", json={"run_id": run_id, "artifact_path": "no/such"})
    error(r, 404, "artifact_path")
