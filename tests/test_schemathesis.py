"""Every operation of the OpenAPI schema, fuzzed by schemathesis with the token: no answer is a 5xx
(but a JSON 503, which says "not ready" or "overloaded" and is meant).

The app is the real one (`create_app`) over real stores in a temporary home,
served by uvicorn on 127.0.0.1 and called over HTTP with the bearer token, so
the guards, the body limits and the depth check are all in the path.

Operations that would start processes (``submitJob``, ``startNotebook``,
``runNotebook``, ``createSweep``) are fuzzed like the rest: no scheduler loop
runs here, so what they queue stays a row and nothing is ever executed,
whatever argv the fuzzer invents; the fixture kills whatever is left anyway.

``MLBOX_SCHEMATHESIS_EXAMPLES`` sets the examples per operation (default 25, a
run of about a minute on two cores); a developer runs a few hundred with
``MLBOX_SCHEMATHESIS_EXAMPLES=300``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mlbox.api.app import create_app
from mlbox.services import Services
from mlbox.settings import Settings

TOKEN = "test-token-schemathesis"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = int(os.environ.get("MLBOX_SCHEMATHESIS_EXAMPLES", "25"))
EXPLORE = bool(os.environ.get("MLBOX_SCHEMATHESIS_EXPLORE"))
"""Fresh random examples each run (as CI drew them until 2026-12-06, when one run found two new 500s,
both fixed): set it to explore. By default the examples are derandomized, the same every run, so a
red suite means a change broke something, not that this run drew other bodies."""

XFAIL: dict[str, str] = {}
"""Operations known to answer a 5xx to some body, each with why (none today)."""


class Served:
    """The app on a real socket: its base URL and the services behind it."""

    def __init__(self, services: Services, base_url: str) -> None:
        self.services = services
        self.base_url = base_url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import uvicorn

    home = tmp_path_factory.mktemp("schemathesis") / "home"
    services = Services.open(Settings.from_env({"MLBOX_HOME": str(home)}))
    app = create_app(services, token=TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield Served(services, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    running = [j for j in services.scheduler.list_jobs(["running"]) if j.state == "running"]
    services.scheduler.close(kill=True)
    assert not running, f"the fuzzed API started jobs: {running}"
    assert Path(home).is_dir()


@pytest.fixture(scope="module")
def api_schema(served: Served) -> Any:
    return schemathesis.openapi.from_url(f"{served.base_url}/schema/openapi.json", headers=AUTH)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=not EXPLORE,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx(case: Any, served: Served) -> None:
    if case.operation.definition.raw.get("operationId") in XFAIL:
        pytest.xfail(XFAIL[case.operation.definition.raw["operationId"]])
    response = case.call(base_url=served.base_url, headers=AUTH, timeout=30)
    # 503 is an answer, not a failure: readiness before models load, load shed at the door
    shed = response.status_code == 503 and "error" in response.json()
    assert response.status_code < 500 or shed, (
        f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]}\n"
        f"{case.as_curl_command(headers=AUTH)}"
    )
