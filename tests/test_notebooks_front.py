"""`mlbox notebook` and ``/api/v1/notebooks`` over a home under tmp_path.

No Jupyter server starts here (no scheduler pass runs, so started servers
stay queued); the one notebook that runs is a failing one, through
``mlbox notebook run --wait``, which drives the scheduler itself when no
appliance is running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.cli.notebooks import parse_duration
from mlbox.services import Services
from tests.helpers import run_main

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"
PREFIX = "/api/v1/notebooks"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as client:
        client.headers.update(AUTH)
        yield client


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "30m", "1.5h", "2d")] == [90, 90, 1800, 5400, 172800]


def test_cli_start_detached_list_stop(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_main(capsys, "notebook", "ls")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "STATE", "GPUS"]
    assert out.splitlines()[1].startswith("no notebook servers")
    code, out, err = run_main(
        capsys,
        "notebook",
        "start",
        "--detach",
        "--idle-timeout",
        "30m",
        "--root-dir",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    nb = json.loads(out)
    assert (nb["state"], nb["idle_timeout_s"], nb["root_dir"]) == (
        "starting",
        1800.0,
        str(tmp_path.resolve()),
    )
    code, out, _ = run_main(capsys, "notebook", "ls")
    assert code == 0 and out.splitlines()[1].split()[:2] == [str(nb["id"]), "starting"]
    code, out, _ = run_main(capsys, "notebook", "stop", str(nb["id"]))
    assert (code, out) == (0, f"notebook {nb['id']} stopped\n")
    assert services.scheduler.get(nb["job_id"]).state == "cancelled"
    code, out, _ = run_main(capsys, "notebook", "ls", "--all", "--json")
    assert [n["state"] for n in json.loads(out)] == ["stopped"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["notebook", "start", "--detach", "--idle-timeout", "soon"], "--idle-timeout"),
        (["notebook", "start", "--detach", "--gpus", "-1"], "gpus"),
        (["notebook", "stop", "42"], "no notebook 42"),
        (["notebook", "url", "42"], "no notebook 42"),
        (["notebook", "run", "missing.ipynb"], "not a notebook file"),
        (["notebook", "run", "missing.ipynb", "-p", "novalue"], "not key=value"),
    ],
)
def test_cli_errors_are_one_line(
    services: Services, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("mlbox: error:") and needle in err and err.count("\n") == 1


def test_cli_run_wait_drives_a_failing_notebook(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("threshold = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('threshold is', threshold)"),
        nbformat.v4.new_code_cell("assert threshold < 1, 'threshold too high'"),
    ]
    path = tmp_path / "check.ipynb"
    nbformat.write(nb, str(path))
    code, out, err = run_main(capsys, "notebook", "run", str(path), "-p", "threshold=5", "--wait")
    assert code == 1, err
    # The cell's exception, where the user looks: one line on stderr naming it and its cell.
    assert err.splitlines()[-1] == (
        "mlbox: notebook failed: AssertionError: threshold too high"
        " (in the cell: assert threshold < 1, 'threshold too high')"
    ), err
    lines = out.splitlines()
    assert lines[0].startswith("job ") and lines[0].endswith("failed (exit code 1)")
    assert [line.split()[-3] for line in lines[1:]] == ["notebook/check.html", "notebook/check.ipynb"]
    job = services.scheduler.list_jobs()[0]
    assert job.run_id is not None
    executed = b"".join(services.tracking.read_artifact(job.run_id, "notebook/check.ipynb")).decode()
    cells = nbformat.reads(executed, as_version=4).cells
    assert cells[2].outputs[0]["text"] == "threshold is 5\n"
    assert cells[3].outputs[0]["evalue"] == "threshold too high"
    assert services.tracking.get_run(job.run_id).status == "failed"


def test_api_start_get_stop_and_run(client: TestClient[Litestar], services: Services, tmp_path: Path) -> None:
    assert client.get(PREFIX).json() == []
    started = client.post(PREFIX, json={"gpus": 0, "idle_timeout_s": 120, "root_dir": str(tmp_path)})
    assert started.status_code == 201, started.text
    nb = started.json()
    assert (nb["state"], nb["idle_timeout_s"], nb["url"]) == ("starting", 120.0, None)
    assert client.get(f"{PREFIX}/{nb['id']}").json()["job_id"] == nb["job_id"]
    assert [n["id"] for n in client.get(PREFIX, params={"state": "starting"}).json()] == [nb["id"]]
    stopped = client.post(f"{PREFIX}/{nb['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert services.scheduler.get(nb["job_id"]).state == "cancelled"

    path = tmp_path / "ok.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), str(path))
    ran = client.post(f"{PREFIX}/runs", json={"path": str(path), "params": {"n": 3}})
    assert ran.status_code == 201, ran.text
    assert ran.json()["state"] == "queued" and ran.json()["spec"]["experiment"] == "notebooks"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", PREFIX, {"gpus": -1}, 400, "gpus"),
        ("post", PREFIX, {"idle_timeout_s": -5}, 400, "idle_timeout_s"),
        ("post", PREFIX, {"root_dir": "/no/such/folder"}, 400, "root_dir"),
        ("post", PREFIX, {"colour": "red"}, 400, None),
        ("get", f"{PREFIX}/9", None, 404, "notebook_id"),
        ("post", f"{PREFIX}/9/stop", None, 404, "notebook_id"),
        ("post", f"{PREFIX}/runs", {"path": "/no/such.ipynb"}, 400, "path"),
        ("post", f"{PREFIX}/runs", {"path": "/no/such.ipynb", "params": {"a b": 1}}, 400, "params"),
        ("get", f"{PREFIX}?state=sleeping", None, 400, "state"),
    ],
)
def test_api_errors_name_the_field(
    client: TestClient[Litestar], method: str, path: str, body: object, status: int, field: str | None
) -> None:
    response = client.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert "error" in payload
    if field is not None:
        assert payload["field"] == field


def test_api_needs_the_token(services: Services) -> None:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as anon:
        assert anon.get(PREFIX).status_code == 401
        assert anon.post(PREFIX, json={}).status_code == 401
