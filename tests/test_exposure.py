"""Binding beyond loopback: `mlbox up` says what becomes reachable without the token, and
``MLBOX_SERVING_REQUIRE_TOKEN=1`` makes scoring, model metadata and ``/metrics`` need it.

Real ``mlbox up`` processes on a temporary home, real HTTP on 127.0.0.1 (the test never reaches
another interface: binding 0.0.0.0 is enough to see the warning).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlbox.appliance import exposure_warning
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store import Home
from tests.helpers import MLBOX, mlbox_env

DEADLINE_S = 90.0


def test_the_warning_is_for_every_address_but_loopback() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert exposure_warning(host, False) is None, host
    warning = exposure_warning("0.0.0.0", False)
    assert warning is not None and "every interface" in warning
    for named in ("score", "/metrics", "model metadata", "MLBOX_SERVING_REQUIRE_TOKEN=1"):
        assert named in warning
    assert exposure_warning("192.168.1.5", False) is not None
    locked = exposure_warning("::", True)
    assert locked is not None and "need the token" in locked and "REQUIRE_TOKEN=1" not in locked


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return mlbox_env(tmp_path / "home", MLBOX_SERVING_LOG_PREDICTIONS="0")


def up(env: dict[str, str], started: list[subprocess.Popen[str]], *argv: str) -> tuple[str, list[str]]:
    """Start ``mlbox up`` and wait until it is ready: its URL and the lines it printed by then
    (what follows the ``token:`` line, read for a moment longer)."""
    proc = subprocess.Popen(
        [str(MLBOX), "up", "--port", "0", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(proc)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while not any(line.startswith("token:") for line in seen):
        assert proc.poll() is None or not lines.empty(), "".join(seen)
        assert time.monotonic() < deadline, f"mlbox up printed no token line: {seen}"
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
    try:
        while True:
            seen.append(lines.get(timeout=1.0))
    except queue.Empty:
        pass
    ann = Home(Path(env["MLBOX_HOME"])).running_appliance()
    assert ann is not None and ann.pid == proc.pid
    port = ann.url.rsplit(":", 1)[1]
    return f"http://127.0.0.1:{port}", [line.rstrip("\n") for line in seen]


def test_up_on_every_interface_warns_what_is_open_and_loopback_does_not(
    env: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    _, lines = up(env, started, "--host", "0.0.0.0")
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1, lines
    for named in ("0.0.0.0", "score", "/metrics", "model metadata", "MLBOX_SERVING_REQUIRE_TOKEN=1"):
        assert named in warnings[0]
    started[-1].send_signal(signal.SIGTERM)
    started[-1].wait(timeout=30)
    _, lines = up(env, started)
    assert not [line for line in lines if "warning" in line], lines


def call(url: str, method: str = "GET", body: object = None, token: str | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            assert json.loads(exc.read())["field"] == "authorization"
        return int(exc.code)


def test_require_token_closes_scoring_metadata_and_metrics_on_both_paths(
    env: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    services = Services.open(Settings.from_env(env))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    services.registry.register("lr", model=model, example_input=x[:2])
    services.registry.set_alias("lr", "champion", 1)
    token = services.home.token()
    env["MLBOX_SERVING_REQUIRE_TOKEN"] = "1"
    base, lines = up(env, started, "--host", "0.0.0.0")
    assert any("need the token" in line for line in lines), lines

    row = [0.1, 0.2, 0.3]
    oip = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": row}]}
    scoring = [
        ("POST", "/v2/models/lr/infer", oip),
        ("POST", "/v2/models/lr/versions/1/infer", oip),
        ("POST", "/api/v1/models/lr/predict", {"instances": [row]}),
        ("POST", "/invocations", {"instances": [row]}),
        ("GET", "/v2/models/lr", None),
        ("GET", "/v2/models/lr/ready", None),
        ("GET", "/v2/models/lr/versions/1", None),
        ("GET", "/metrics", None),
    ]
    for method, path, body in scoring:
        assert call(base + path, method, body) == 401, path
        assert call(base + path, method, body, token="wrong") == 401, path
        assert call(base + path, method, body, token=token) == 200, path
    for path in ("/v2/health/live", "/v2/health/ready", "/api/v1/health", "/v2"):
        assert call(base + path) == 200, path
