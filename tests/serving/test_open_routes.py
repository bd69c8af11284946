"""Open (unauthenticated) routes score only what is served and never load a version (issue 12);
with the token a version loads on demand, at most ``max_on_demand`` of them, unloaded when idle;
``/v2/health/ready`` names an aliased model that could not be loaded instead of saying ready.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.service import ServingService
from tests.helpers import error
from tests.serving.server import FAST, ROW, TOKEN, http_client, oip, start_serving

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def loaded(serving: ServingService) -> float:
    """``mlbox_serving_models_loaded`` from /metrics' text: how many versions hold a model thread."""
    line = next(x for x in serving.metrics_text().splitlines() if x.startswith("mlbox_serving_models_loaded"))
    return float(line.split()[-1])


@pytest.fixture
def anon(services: Services, serving: ServingService) -> Iterator[TestClient[Litestar]]:
    """A client without the token (as any web page or local program)."""
    with http_client(services, serving, auth=False) as c:
        yield c


@pytest.fixture
def three(registry: RegistryService, gbc: Any, data: dict[str, Any]) -> None:
    """gbc: version 1 is the champion; versions 2 and 3 have no alias."""
    registry.register("gbc", model=data["lr"], example_input=data["x"][:5])
    registry.register("gbc", model=data["gbc"], example_input=data["x"][:5])


@pytest.mark.usefixtures("three")
def test_open_routes_never_load_a_version_no_alias_serves(
    anon: TestClient[Litestar], serving: ServingService
) -> None:
    client = anon
    assert loaded(serving) == 1
    for v in (1, 2, 3):
        client.get(f"/v2/models/gbc/versions/{v}/ready")
        assert client.get(f"/v2/models/gbc/versions/{v}").status_code == 200  # metadata reads the registry
    for v in (2, 3):
        body = error(client.post(f"/v2/models/gbc/versions/{v}/infer", json=oip([ROW])), 404, "name")
        assert "not served" in body["error"] and "Authorization" in body["error"]
    # the plain name follows the newest version (3), which nothing serves
    error(client.post("/v2/models/gbc/infer", json=oip([ROW])), 404, "name")
    error(client.post("/api/v1/models/gbc/predict", json={"instances": [ROW]}), 404, "name")
    wrong = {"Authorization": "Bearer not-the-token"}
    error(client.post("/v2/models/gbc/versions/2/infer", json=oip([ROW]), headers=wrong), 404, "name")
    serving.sync()
    assert loaded(serving) == 1 and set(serving.served()) <= {"gbc@champion", "gbc/1"}
    # the served version answers anyone, under every spelling
    assert client.post("/v2/models/gbc/versions/1/infer", json=oip([ROW])).status_code == 200
    assert client.post("/v2/models/gbc@champion/infer", json=oip([ROW])).status_code == 200


@pytest.mark.usefixtures("three")
def test_the_token_loads_a_version_on_demand(anon: TestClient[Litestar], serving: ServingService) -> None:
    client = anon
    r = client.post("/v2/models/gbc/versions/2/infer", json=oip([ROW]), headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "2"
    r = client.post("/api/v1/models/gbc/predict", json={"instances": [ROW]}, headers=AUTH)
    assert r.status_code == 200 and r.headers["mlbox-model-version"] == "3"
    assert loaded(serving) == 3
    # once loaded, anyone may score it (it is served now), and asking about it loads nothing more
    assert client.post("/v2/models/gbc/versions/2/infer", json=oip([ROW])).status_code == 200
    assert client.get("/v2/models/gbc/versions/2/ready").status_code == 200


@pytest.mark.usefixtures("three")
def test_a_watcher_pass_while_a_version_loads_on_demand_keeps_it(
    anon: TestClient[Litestar], serving: ServingService
) -> None:
    """The watcher (every ``poll_s``) decides from one read what is wanted: a version loading on
    demand meanwhile must be wanted already, or the pass unloads it as it appears (seen in CI)."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            serving.sync()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for v in (2, 3):
            r = anon.post(f"/v2/models/gbc/versions/{v}/infer", json=oip([ROW]), headers=AUTH)
            assert r.status_code == 200, r.text
            for _ in range(20):  # passes that began during the load are over, later ones keep it
                serving.sync()
            assert f"gbc/{v}" in serving.served(), serving.served()
    finally:
        stop.set()
        watcher.join()
    assert loaded(serving) == 3


@pytest.mark.usefixtures("three")
def test_on_demand_versions_are_capped_and_unloaded_when_idle(
    services: Services, registry: RegistryService, home: Path
) -> None:
    # 5 s idle: at 2 s a loaded CI machine (a benchmark beside it) once let v3 go between scoring
    # it and the check below, as 0.5 s had before
    serving = start_serving(registry, home, replace(FAST, max_on_demand=1, on_demand_idle_s=5.0))
    try:
        with http_client(services, serving, auth=False) as client:
            for v in (2, 3):
                r = client.post(f"/v2/models/gbc/versions/{v}/infer", json=oip([ROW]), headers=AUTH)
                assert r.status_code == 200, r.text
            serving.sync()
            assert "gbc/3" in serving.served() and "gbc/2" not in serving.served()  # LRU made room
            assert loaded(serving) == 2
            deadline = time.monotonic() + 20
            while "gbc/3" in serving.served() or loaded(serving) != 1:
                assert time.monotonic() < deadline, "an idle on-demand version was never unloaded"
                time.sleep(0.05)
    finally:
        serving.close()
    off = start_serving(registry, home, replace(FAST, max_on_demand=0))
    try:
        with http_client(services, off, auth=False) as client:
            r = client.post("/v2/models/gbc/versions/2/infer", json=oip([ROW]), headers=AUTH)
            assert "MLBOX_SERVING_MAX_ON_DEMAND" in error(r, 404, "name")["error"]
    finally:
        off.close()


def test_ready_names_an_aliased_model_refused_for_a_hash_mismatch(
    services: Services, registry: RegistryService, gbc: Any, home: Path, data: dict[str, Any]
) -> None:
    mv = registry.register("victim", model=data["lr"], example_input=data["x"][:2])
    registry.set_alias("victim", "champion", 1)
    pickled = next(f for f in mv.files if f.path.endswith(".pkl"))
    obj = services.tracking.artifacts.root / "objects" / pickled.sha256[:2] / pickled.sha256[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-10] + b"0123456789")
    serving = start_serving(registry, home)
    try:
        with http_client(services, serving, auth=False) as client:
            r = client.get("/v2/health/ready")
            body = error(r, 503)
            assert body["ready"] is False and list(body["unserved"]) == ["victim@champion"]
            assert "sha256" in body["unserved"]["victim@champion"] and "victim" in body["error"]
            assert r.headers["retry-after"]
            # the alias moves to a good version: ready again
            registry.register("victim", model=data["gbc"], example_input=data["x"][:2])
            registry.set_alias("victim", "champion", 2)
            serving.notify()
            deadline = time.monotonic() + 10
            while client.get("/v2/health/ready").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert client.get("/v2/health/ready").json() == {"ready": True}
    finally:
        serving.close()
