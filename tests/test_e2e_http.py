"""End to end over real HTTP: `mlbox up` as a subprocess, logging from another one.

Nothing is shared in memory: the appliance, the logging process and this test
meet only through ``$MLBOX_HOME`` (SQLite, artifact store, token file) and a
socket on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import MLBOX, stop, wait_announced

ARTIFACT = bytes(range(256)) * 40
STEPS = 30

LOGGER = textwrap.dedent(
    f"""
    import json, pathlib
    import mlbox

    pathlib.Path("model.bin").write_bytes(bytes(range(256)) * 40)
    pathlib.Path("data.csv").write_text("x,y\\n1,2\\n3,4\\n")
    with mlbox.start_run("e2e-run", experiment="e2e", tags={{"kind": "e2e"}}) as run:
        mlbox.log_params({{"lr": 0.01, "epochs": {STEPS}}})
        for step in range({STEPS}):
            mlbox.log_metrics({{"loss": 1.0 / (step + 1), "acc": step / {STEPS}}}, step=step)
        mlbox.log_artifact("model.bin", "model")
        mlbox.log_dataset("data.csv", "train-data")
    print(json.dumps({{"run_id": run.id}}))
    """
)

DOOMED = textwrap.dedent(
    """
    import json, time
    import mlbox

    run = mlbox.start_run("doomed", experiment="e2e", log_code=False, log_environment=False)
    for step in range(100):
        mlbox.log_metric("loss", float(step), step=step)
    mlbox.flush()
    print(json.dumps({"run_id": run.id}), flush=True)
    time.sleep(600)
    """
)


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    home: Path
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, trust_env=False)


@pytest.fixture
def up(home: Path, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[Up]:
    env = {**subprocess_env, "MLBOX_REAP_EVERY_S": "0.2"}
    log = tmp_path / "up.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(MLBOX), "up", "--port", "0"], env=env, cwd=tmp_path, stdout=err, stderr=err
        )
    try:
        url = wait_announced(home, proc, log=log)
        token_path = home / "token"
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        yield Up(proc, url, token_path.read_text().strip(), home, log)
    finally:
        stop(proc)


def _log_a_run(env: dict[str, str], cwd: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", LOGGER], env=env, cwd=cwd, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return int(json.loads(done.stdout.decode().strip().splitlines()[-1])["run_id"])


def _raw_get(url: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """A request whose path goes on the wire exactly as written (``../`` included)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_log_in_one_process_read_over_http_in_another(
    up: Up, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    assert f"up at {up.url}" in up.log.read_text()
    assert urlsplit(up.url).hostname == "127.0.0.1"
    work = tmp_path / "work"
    work.mkdir()
    run_id = _log_a_run(subprocess_env, work)
    auth = {"Authorization": f"Bearer {up.token}"}

    with up.client() as anon:
        assert anon.get("/api/v1/health").json()["status"] == "ok"
        assert "paths" in anon.get("/schema/openapi.json").json()
        for path in [f"/api/v1/runs/{run_id}", "/api/v1/runs", f"/api/v1/runs/{run_id}/metrics/loss"]:
            r = anon.get(path)
            assert r.status_code == 401 and r.json()["field"] == "authorization"
            assert anon.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401

    with up.client(up.token) as c:
        detail = c.get(f"/api/v1/runs/{run_id}").json()
        run = detail["run"]
        assert run["status"] == "finished" and run["experiment"] == "e2e" and run["name"] == "e2e-run"
        assert run["params"] == {"lr": "0.01", "epochs": str(STEPS)}
        assert run["tags"]["kind"] == "e2e"
        assert run["metrics"]["loss"] == 1.0 / STEPS
        assert {m["key"]: m["count"] for m in detail["metrics"]} == {"acc": STEPS, "loss": STEPS}
        assert detail["environment"], "the environment was recorded"
        assert [d["name"] for d in detail["datasets"]] == ["train-data"]
        assert detail["datasets"][0]["digest"] == hashlib.sha256(b"x,y\n1,2\n3,4\n").hexdigest()

        history = c.get(f"/api/v1/runs/{run_id}/metrics/loss").json()["points"]
        assert [(p[0], p[2]) for p in history] == [(s, 1.0 / (s + 1)) for s in range(STEPS)]
        history = c.get(f"/api/v1/runs/{run_id}/metrics/acc").json()["points"]
        assert [(p[0], p[2]) for p in history] == [(s, s / STEPS) for s in range(STEPS)]

        paths = [a["path"] for a in c.get(f"/api/v1/runs/{run_id}/artifacts").json()]
        assert "model/model.bin" in paths
        r = c.get(f"/api/v1/runs/{run_id}/artifacts/model/model.bin")
        assert r.status_code == 200 and r.content == ARTIFACT

        page = c.get("/api/v1/runs", params={"filter": "metrics.acc > 0.9 and params.lr = '0.01'"}).json()
        assert [r["id"] for r in page["runs"]] == [run_id]
        assert c.get("/api/v1/runs", params={"filter": "metrics.acc > 0.99"}).json()["total"] == 0
        r = c.get("/api/v1/runs", params={"filter": "metrics.acc >>"})
        assert r.status_code == 400 and r.json()["field"] == "filter"

    # the real server hands the path over as sent; nothing outside the store comes back
    for path in [
        f"/api/v1/runs/{run_id}/artifacts/../../../../../../etc/passwd",
        f"/api/v1/runs/{run_id}/artifacts/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/api/v1/runs/{run_id}/artifacts/..%2f..%2f..%2f..%2fetc%2fpasswd",
        f"/api/v1/runs/{run_id}/artifacts/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        f"/api/v1/runs/{run_id}/artifacts//etc/passwd",
        f"/api/v1/runs/{run_id}/artifacts/..%5c..%5cetc%5cpasswd",
    ]:
        status, body = _raw_get(up.url, path, auth)
        assert status in (400, 404), (path, status, body)
        assert b'"error"' in body and b"root:" not in body

    # DNS rebinding: a foreign Host header is refused, even with the token
    status, body = _raw_get(up.url, "/api/v1/health", {"Host": "evil.example.com:5151"})
    assert status == 403 and b'"field":"host"' in body
    status, _ = _raw_get(up.url, f"/api/v1/runs/{run_id}", {"Host": "evil.example.com", **auth})
    assert status == 403
    port = urlsplit(up.url).port
    status, _ = _raw_get(up.url, "/api/v1/health", {"Host": f"localhost:{port}"})
    assert status == 200

    started = time.monotonic()
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(timeout=15) == 0, up.log.read_text()
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"mlbox up took {elapsed:.1f} s to stop"
    assert not (up.home / "appliance.json").exists()


def test_killed_logging_process_ends_up_crashed(
    up: Up, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", DOOMED],
        env=subprocess_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read().decode() if child.stderr else ""
        run_id = int(json.loads(line)["run_id"])
        with up.client(up.token) as c:
            assert c.get(f"/api/v1/runs/{run_id}").json()["run"]["status"] == "running"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
            killed = time.monotonic()
            status = "running"
            while status == "running" and time.monotonic() - killed < 10:
                time.sleep(0.1)
                status = c.get(f"/api/v1/runs/{run_id}").json()["run"]["status"]
            assert status == "crashed", f"still {status} 10 s after the kill"
            points = c.get(f"/api/v1/runs/{run_id}/metrics/loss").json()["points"]
            assert [(p[0], p[2]) for p in points] == [(s, float(s)) for s in range(100)]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
