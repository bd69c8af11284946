"""The scheduler inside a real ``mlbox up``: kill -9 and restart, CLI and HTTP round trips."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlbox.scheduler.schemas import JobSpec, Resources
from mlbox.services import Services
from mlbox.settings import Settings
from tests.helpers import MLBOX, stop, wait_announced


@pytest.fixture
def env(subprocess_env: dict[str, str]) -> dict[str, str]:
    return {
        **subprocess_env,
        "MLBOX_GPUS": "4",
        "MLBOX_SCHEDULER_CPUS": "16",
        "MLBOX_SCHEDULER_TICK_S": "0.1",
        "MLBOX_SCHEDULER_KILL_GRACE_S": "2",
    }


class Appliance:
    def __init__(self, env: dict[str, str], home: Path, log: Path) -> None:
        self.env, self.home, self.log = env, home, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(MLBOX), "up", "--port", "0"], env=env, stdout=out, stderr=out, start_new_session=True
            )
        self.url = wait_announced(home, self.proc, log=log)
        self.token = (home / "token").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30, trust_env=False
        )

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL to the appliance only, not to the jobs' own sessions
        self.proc.wait()

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture
def appliances(env: dict[str, str], home: Path, tmp_path: Path) -> Iterator[Callable[[], Appliance]]:
    started: list[Appliance] = []

    def start() -> Appliance:
        a = Appliance(env, home, tmp_path / "up.log")
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()
    # leave no job behind
    s = Services.open(Settings.from_env(env)).scheduler
    for j in s.list_jobs(["running"]):
        if j.pid:
            with contextlib.suppress(OSError):
                os.killpg(j.pid, signal.SIGKILL)


def until(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


JOB = """
import os, sys, time
with open(os.environ["TRACE"], "a") as f:
    f.write(f"{os.environ['MLBOX_JOB_ID']} {os.environ['MLBOX_JOB_ATTEMPT']} {os.getpid()}\\n")
    f.flush()
    os.fsync(f.fileno())
while not os.path.exists(os.environ["GO"]):
    time.sleep(0.05)
sys.exit(int(os.environ["CODE"]))
"""


def test_kill9_restart_readopts_and_nothing_runs_twice(
    env: dict[str, str], home: Path, tmp_path: Path, appliances: Callable[[], Appliance]
) -> None:
    trace, go1, go2 = tmp_path / "trace", tmp_path / "go1", tmp_path / "go2"
    s = Services.open(Settings.from_env(env)).scheduler
    first = appliances()

    def spec(name: str, code: int, go: Path, retries: int = 0) -> JobSpec:
        return JobSpec(
            name=name,
            command=[sys.executable, "-c", JOB],
            resources=Resources(gpus=1),
            env={"TRACE": str(trace), "GO": str(go), "CODE": str(code)},
            max_retries=retries,
        )

    ends_while_down = s.submit(spec("ends-while-down", 3, go1))
    lost_while_down = s.submit(spec("lost-while-down", 0, go1, retries=1))
    adopted = s.submit(spec("adopted", 0, go2))
    cancelled = s.submit(spec("cancelled-after-restart", 0, go2))
    ids = [j.id for j in (ends_while_down, lost_while_down, adopted, cancelled)]
    until(lambda: trace.exists() and len(trace.read_text().splitlines()) == 4, what="four jobs to start")
    before = {j.id: j for j in (s.get(i) for i in ids)}
    assert all(j.state == "running" and j.pid for j in before.values())

    first.kill9()
    # the jobs live on in their own sessions
    assert all(psutil.pid_exists(j.pid) for j in before.values())
    os.killpg(before[lost_while_down.id].pid, signal.SIGKILL)  # type: ignore[arg-type]
    go1.touch()  # "ends-while-down" exits 3 with no appliance to see it
    until(lambda: not psutil.pid_exists(before[ends_while_down.id].pid), what="a job to end")

    second = appliances()
    until(lambda: s.get(ends_while_down.id).terminal, what="the exit code to be recorded")
    e = s.get(ends_while_down.id)
    assert (e.state, e.exit_code, e.attempt) == ("failed", 3, 1)
    until(lambda: s.get(lost_while_down.id).state == "succeeded", what="the lost job to be retried")
    assert s.get(lost_while_down.id).attempt == 2
    a = s.get(adopted.id)
    assert (a.state, a.attempt, a.pid) == ("running", 1, before[adopted.id].pid)

    with second.client() as http:
        r = http.post(f"/api/v1/jobs/{cancelled.id}/cancel")
        assert r.status_code == 200, r.text
    until(lambda: s.get(cancelled.id).terminal, what="cancel of an adopted job")
    assert s.get(cancelled.id).state == "cancelled"
    go2.touch()
    until(lambda: s.get(adopted.id).terminal, what="the adopted job to end")
    a = s.get(adopted.id)
    assert (a.state, a.exit_code, a.attempt) == ("succeeded", 0, 1)

    lines = [tuple(map(int, line.split())) for line in trace.read_text().splitlines()]
    starts = sorted((job, attempt) for job, attempt, _ in lines)
    assert starts == sorted([(i, 1) for i in ids] + [(lost_while_down.id, 2)]), "an attempt ran twice"
    assert len({pid for *_, pid in lines}) == len(lines)
    assert s.leases() == []


def mlbox(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MLBOX), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_without_appliance_says_it_waits(env: dict[str, str], tmp_path: Path) -> None:
    r = mlbox(env, "jobs", "submit", "--name", "later", "--", "echo", "hi", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "queued" in r.stdout and "mlbox up" in r.stderr
    bad = mlbox(env, "jobs", "submit", "--gpus", "9", "--", "echo", cwd=tmp_path)
    assert (
        bad.returncode == 2 and "resources.gpus" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    )
    none = mlbox(env, "jobs", "submit", "--gpus", "1", cwd=tmp_path)
    assert none.returncode == 2 and "exactly one" in none.stderr
    missing = mlbox(env, "jobs", "show", "999", cwd=tmp_path)
    assert missing.returncode == 2 and "no job 999" in missing.stderr


def test_cli_and_api_round_trips(
    env: dict[str, str], tmp_path: Path, appliances: Callable[[], Appliance]
) -> None:
    up = appliances()
    script = tmp_path / "hello.py"
    script.write_text("import os, sys\nprint('hello', sys.argv[1], os.environ['CUDA_VISIBLE_DEVICES'])\n")
    sub = mlbox(env, "jobs", "submit", "--gpus", "1", "--script", "hello.py", "--", "world", cwd=tmp_path)
    assert sub.returncode == 0, sub.stderr
    job_id = int(sub.stdout.split()[1])
    assert mlbox(env, "jobs", "wait", str(job_id), "--timeout", "60", cwd=tmp_path).returncode == 0
    logs = mlbox(env, "jobs", "logs", str(job_id), cwd=tmp_path)
    assert "hello world" in logs.stdout
    listed = json.loads(mlbox(env, "jobs", "ls", "--json", cwd=tmp_path).stdout)
    assert [j["id"] for j in listed] == [job_id] and listed[0]["state"] == "succeeded"
    board = mlbox(env, "gpus", cwd=tmp_path)
    assert board.returncode == 0 and board.stdout.count("free") == 4

    with up.client() as http:
        body = {
            "name": "api",
            "command": [sys.executable, "-c", "import time; print('api job'); time.sleep(60)"],
            "resources": {"gpus": 2},
        }
        r = http.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        jid = r.json()["id"]
        until(lambda: http.get(f"/api/v1/jobs/{jid}").json()["state"] == "running", what="api job to run")
        gpus = http.get("/api/v1/gpus").json()
        held = [g["gpu"]["index"] for g in gpus if g["lease"] and g["lease"]["job_id"] == jid]
        assert held == http.get(f"/api/v1/jobs/{jid}").json()["gpus"] and len(held) == 2
        until(lambda: "api job" in http.get(f"/api/v1/jobs/{jid}/logs").json()["text"], what="log text")
        chunk = http.get(f"/api/v1/jobs/{jid}/logs", params={"offset": 0}).json()
        rest = http.get(f"/api/v1/jobs/{jid}/logs", params={"offset": chunk["next_offset"]}).json()
        assert rest["text"] == "" and rest["offset"] == chunk["next_offset"]
        assert http.post(f"/api/v1/jobs/{jid}/cancel").json()["stop_reason"] == "cancel"
        until(lambda: http.get(f"/api/v1/jobs/{jid}").json()["state"] == "cancelled", what="cancel")
        assert http.post(f"/api/v1/jobs/{jid}/retry").json()["state"] == "queued"
        assert [j["id"] for j in http.get("/api/v1/jobs", params={"state": "succeeded"}).json()] == [job_id]
        http.post(f"/api/v1/jobs/{jid}/cancel")

        for bad, field in [
            ({"name": "x"}, "command"),
            ({"name": "x", "command": ["a"], "resources": {"gpus": "two"}}, None),
            ({"name": "x", "command": ["a"], "resources": {"gpus": 64}}, "resources.gpus"),
            ({"name": "x", "command": ["a"], "colour": "red"}, None),
            ({"name": "x", "command": ["a"], "timeout_s": -3}, "timeout_s"),
        ]:
            r = http.post("/api/v1/jobs", json=bad)
            assert 400 <= r.status_code < 500, r.text
            assert "error" in r.json()
            if field:
                assert r.json()["field"] == field
        assert http.get("/api/v1/jobs", params={"state": "nope"}).json()["field"] == "state"
        assert http.get("/api/v1/jobs/424242").status_code == 404
        assert http.get("/api/v1/jobs/1/logs", params={"offset": -1}).status_code == 400
    assert httpx.get(f"{up.url}/api/v1/jobs", trust_env=False).status_code == 401
