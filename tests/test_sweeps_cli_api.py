"""`mlbox sweep` / `mlbox sweeps` and ``/api/v1/sweeps`` against a real home, real jobs, real app.

With no appliance running, ``mlbox sweep`` drives the scheduler itself in the
foreground, so the CLI case runs a whole sweep end to end. The API is the real
app from `create_app`; its test drives the loop in the test process, as the
appliance would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.services import Services
from tests.helpers import MLBOX, ok, run_main
from tests.test_sweeps import MODEL_DEF, TRIAL

TOKEN = "sweep-test-token"
BASE = "http://127.0.0.1"
SPACE_YAML = """\
metric: loss
trials: 2
space:
  x: {type: float, low: 0.0, high: 1.0}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "trial.py").write_text(TRIAL)
    (folder / "model_def.py").write_text(MODEL_DEF)
    (folder / "space.yaml").write_text(SPACE_YAML)
    return folder


def test_cli_round_trip(
    home: Path, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)  # the trials' default folder is where `mlbox sweep` runs
    monkeypatch.setenv("MLBOX_SCHEDULER_TICK_S", "0.05")
    out = ok(
        capsys,
        "sweep", "space.yaml", "--parallel", "2", "--seed", "1", "--pruner", "median", "--env", "SAVE=1",
        "--", sys.executable, "trial.py", "{x}",
    )  # fmt: skip
    assert "sweep 1 'sweep-1' started: 2 trials, parallel 2" in out
    assert out.count(" complete ") == 2 and "[finished]" in out and "best: trial" in out
    listed = ok(capsys, "sweeps", "ls")
    assert "sweep-1" in listed and "finished" in listed and "2/2" in listed
    detail = json.loads(ok(capsys, "sweeps", "show", "1", "--json"))
    assert [t["state"] for t in detail["trials"]] == ["complete", "complete"]
    assert detail["sweep"]["spec"]["workdir"] == str(workdir)
    best = min(detail["trials"], key=lambda t: t["value"])
    shown = ok(capsys, "sweeps", "best", "1", "--register", "scaler")
    assert f"best trial {best['number']}" in shown and "registered scaler version 1" in shown
    assert "x = " in shown
    assert ok(capsys, "sweeps", "stop", "1").strip() == "sweep 1: finished"
    assert "TRIAL" in ok(capsys, "sweeps", "show", "1")
    # the command and settings may live in the YAML file; --detach leaves the trials queued
    (workdir / "full.yaml").write_text(SPACE_YAML + f"command: {sys.executable} trial.py {{x}}\nname: full\n")
    created = json.loads(ok(capsys, "sweep", "full.yaml", "--detach", "--json"))
    assert created["spec"]["command"] == [sys.executable, "trial.py", "{x}"] and created["name"] == "full"
    assert ok(capsys, "sweeps", "stop", str(created["id"])).strip() == f"sweep {created['id']}: stopping"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sweep", "missing.yaml", "--metric", "m", "--", "true"], "cannot read the space file"),
        (["sweep", "bad.yaml", "--", "true"], "space.x.high"),
        (["sweep", "nometric.yaml", "--", "true"], "--metric"),
        (["sweep", "space.yaml"], "give the trial command"),
        (["sweep", "odd.yaml", "--", "true"], "unknown sweep setting 'colour'"),
        (["sweep", "space.yaml", "--parallel", "0", "--", "true"], "parallel"),
        (["sweep", "space.yaml", "--sampler", "cma", "--", "true"], "--sampler"),
        (["sweep", "space.yaml", "--env", "NOEQUALS", "--", "true"], "KEY=VALUE"),
        (["sweeps", "show", "99"], "no sweep with id 99"),
        (["sweeps", "best", "99"], "no sweep with id 99"),
    ],
)
def test_cli_errors_are_one_line(
    home: Path,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(workdir)
    (workdir / "bad.yaml").write_text("metric: m\nspace:\n  x: {type: float, low: 0}\n")
    (workdir / "nometric.yaml").write_text("x: [1, 2]\n")
    (workdir / "odd.yaml").write_text("colour: red\nmetric: m\nspace:\n  x: [1, 2]\n")
    code, out, err = run_main(capsys, *args)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("mlbox: error:") and needle in err, err


def test_console_script_detached(
    home: Path, workdir: Path, subprocess_env: dict[str, str], services: Services
) -> None:
    """The installed command, as a user types it: --detach records the sweep and returns."""
    proc = subprocess.run(
        [str(MLBOX), "sweep", "space.yaml", "--detach", "--json", "--", sys.executable, "trial.py", "{x}"],
        cwd=workdir,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    created = json.loads(proc.stdout)
    assert created["state"] == "running" and created["counts"] == {"running": 1}
    assert "no appliance is running" in proc.stderr
    # its first trial waits in the queue for an appliance; stopping cancels it at once
    (trial,) = services.sweeps.trials(created["id"])
    assert trial.job_id is not None and services.scheduler.get(trial.job_id).state == "queued"
    assert services.sweeps.stop(created["id"]).state == "stopping"
    assert services.scheduler.get(trial.job_id).state == "cancelled"
    services.sweeps.reconcile_once()
    assert services.sweeps.get(created["id"]).state == "stopped"


# -- the API ------------------------------------------------------------------------


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def _body(workdir: Path, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metric": "loss",
        "command": [sys.executable, "trial.py", "{x}"],
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "n_trials": 2,
        "parallel": 2,
        "workdir": str(workdir),
        "env": {"SAVE": "1"},
    }
    body.update(extra)
    return body


def test_api_start_follow_best_register(
    client: TestClient[Litestar], services: Services, workdir: Path
) -> None:
    r = client.post("/api/v1/sweeps", json=_body(workdir, name="api"))
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while services.sweeps.get(sweep_id).state == "running":
        assert time.monotonic() < deadline
        services.scheduler.reconcile_once()
        services.sweeps.reconcile_once()
        time.sleep(0.05)
    listed = client.get("/api/v1/sweeps", params={"state": "finished"}).json()
    assert [s["name"] for s in listed] == ["api"]
    detail = client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert detail["sweep"]["counts"] == {"complete": 2} and len(detail["trials"]) == 2
    curves = client.get(f"/api/v1/sweeps/{sweep_id}/curves").json()
    assert sorted(c["number"] for c in curves) == [0, 1] and all(len(c["points"]) == 4 for c in curves)
    best = client.get(f"/api/v1/sweeps/{sweep_id}/best").json()
    assert best["value"] == min(t["value"] for t in detail["trials"])
    version = client.post(f"/api/v1/sweeps/{sweep_id}/register", json={"name": "from-api"}).json()
    assert version["name"] == "from-api" and version["run_id"] == best["run_id"]
    assert client.post(f"/api/v1/sweeps/{sweep_id}/stop").json()["state"] == "finished"


@pytest.mark.parametrize(
    ("extra", "status", "field"),
    [
        ({"space": {"x": {"type": "float", "low": 2, "high": 1}}}, 400, "space.x.low"),
        ({"space_source": "def space(t): t.suggest_float('x', 0, 1)", "space": None}, 400, "space_source"),
        ({"sampler": "cma"}, 400, "sampler"),
        ({"n_trials": 0}, 400, "n_trials"),
        ({"surprise": 1}, 400, None),
    ],
)
def test_api_bad_specs(
    client: TestClient[Litestar], workdir: Path, extra: dict[str, Any], status: int, field: str | None
) -> None:
    r = client.post("/api/v1/sweeps", json=_body(workdir, **extra))
    assert r.status_code == status, r.text
    body = r.json()
    assert "error" in body
    if field is not None:
        assert body.get("field") == field, body


def test_api_needs_the_token_and_knows_unknown_ids(client: TestClient[Litestar], services: Services) -> None:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as anon:
        assert anon.get("/api/v1/sweeps").status_code == 401
        assert anon.post("/api/v1/sweeps", json={}).status_code == 401
    r = client.get("/api/v1/sweeps/42")
    assert r.status_code == 404 and r.json()["field"] == "sweep_id"
    assert client.get("/api/v1/sweeps/42/best").status_code == 404
