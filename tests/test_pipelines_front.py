"""``mlbox pipelines`` and ``/api/v1/pipelines`` over a home under tmp_path (the CLI drives the
run itself when no appliance is up)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.pipelines.dagtext import draw
from mlbox.services import Services
from tests import test_pipelines_defs as defs
from tests.helpers import error, run_main

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PREFIX = "/api/v1/pipelines"
SMALL = "tests.test_pipelines_defs:small"


@pytest.fixture(autouse=True)
def _reset() -> None:
    defs.FAIL.clear()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url="http://127.0.0.1:5151") as client:
        client.headers.update(AUTH)
        yield client


def test_cli_run_show_retry(services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "pipelines", "run", SMALL, "-p", "n=4")
    assert code == 0, err
    assert out.startswith("run 1  small  succeeded  trigger cli")
    assert "│load" in out and "✓ succeeded" in out and "▶│featurize" in out
    code, out, _ = run_main(capsys, "pipelines", "run", SMALL, "-p", "n=4", "--json")
    run = json.loads(out)
    assert {s["node"]: s["state"] for s in run["steps"]}["load"] == "cached"
    code, out, _ = run_main(capsys, "pipelines", "show", "2")
    assert code == 0 and "↺ cached" in out
    code, out, _ = run_main(capsys, "pipelines", "ls")
    assert out.splitlines()[0].split()[:3] == ["ID", "PIPELINE", "STATE"] and len(out.splitlines()) == 3

    defs.FAIL.add("count")
    code, out, _ = run_main(capsys, "pipelines", "run", SMALL, "-p", "n=5")
    assert code == 1 and "failed: count" in out and "✗ failed" in out and "- skipped" in out
    code, out, _ = run_main(capsys, "pipelines", "show", "3", "--step", "count")
    assert "count was told to fail" in out and "\nRuntimeError: count was told to fail" in out
    defs.FAIL.clear()
    code, out, _ = run_main(capsys, "pipelines", "retry", "3")
    assert code == 0 and out.strip() == "run 3 retrying: count, report"
    assert services.pipelines.wait(3, timeout_s=30).state == "succeeded"


def test_cli_bad_input_is_one_line_exit_2(services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "pipelines", "run", SMALL, "-p", "colour=red")
    assert code == 2 and "no parameter 'colour'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "pipelines", "run", "tests.test_pipelines_defs:missing_one")
    assert code == 2 and "cannot load pipeline" in err
    code, _, err = run_main(capsys, "pipelines", "run", SMALL, "-p", "novalue")
    assert code == 2 and "key=value" in err
    code, _, err = run_main(capsys, "pipelines", "schedule", "add", SMALL, "--cron", "0 99 * * *")
    assert code == 2 and "hour" in err
    code, _, err = run_main(capsys, "pipelines", "schedule", "add", SMALL)
    assert code == 2 and "exactly one" in err
    code, _, err = run_main(capsys, "pipelines", "show", "99")
    assert code == 2 and "does not exist" in err
    assert services.pipelines.list_runs() == []


def test_cli_backfill_and_schedules(services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        capsys,
        "pipelines",
        "backfill",
        "tests.test_pipelines_defs:daily",
        "2026-11-01",
        "2026-11-03",
        "--parallel",
        "1",
    )
    assert code == 0, err
    assert out.strip() == "3 runs queued (1..3), 1 at a time"
    code, out, _ = run_main(
        capsys, "pipelines", "schedule", "add", "tests.test_pipelines_defs:daily", "--cron", "0 3 * * *"
    )
    assert code == 0 and out.startswith("schedule 1: cron 0 3 * * *")
    code, out, _ = run_main(capsys, "pipelines", "schedule", "ls")
    assert "0 3 * * *" in out
    code, out, _ = run_main(capsys, "pipelines", "schedule", "rm", "1")
    assert code == 0 and services.pipelines.schedules() == []
    code, out, _ = run_main(
        capsys,
        "pipelines",
        "schedule",
        "add",
        "tests.test_pipelines_defs:on_dataset",
        "--dataset",
        "ingest/raw",
    )
    assert code == 0 and out.startswith("schedule 1: dataset ingest/raw"), out
    code, out, _ = run_main(
        capsys,
        "pipelines",
        "schedule",
        "add",
        "tests.test_pipelines_defs:on_training_set",
        "--training-set",
        "churn",
    )
    assert code == 0 and out.startswith("schedule 2: training_set churn"), out
    code, _, err = run_main(
        capsys,
        "pipelines",
        "schedule",
        "add",
        "tests.test_pipelines_defs:on_dataset",
        "--dataset",
        "a",
        "--cron",
        "x",
    )
    assert code == 2 and "exactly one of" in err


def test_api_round_trip(services: Services, client: TestClient[Litestar]) -> None:
    r = client.post(f"{PREFIX}/runs", json={"pipeline": SMALL, "params": {"n": 3}})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    done = services.pipelines.wait(run_id, timeout_s=30)
    assert done.state == "succeeded"
    body = client.get(f"{PREFIX}/runs/{run_id}").json()
    assert {s["node"] for s in body["steps"]} == {"load", "featurize", "summarize", "count", "report"}
    assert client.get(f"{PREFIX}/runs").json()[0]["id"] == run_id
    assert client.get(PREFIX).json() == ["small"]
    log = client.get(f"{PREFIX}/runs/{run_id}/steps/load/log").json()
    assert "attempt 1: succeeded" in log["text"]
    # bad input names the field; nothing is written
    error(client.post(f"{PREFIX}/runs", json={"pipeline": SMALL, "params": {"m": 1}}), 400, "params.m")
    error(client.post(f"{PREFIX}/runs", json={"pipeline": SMALL, "colour": 1}), 400)
    error(client.post(f"{PREFIX}/runs/{run_id}/retry", json={}), 409, "run_id")
    error(client.post(f"{PREFIX}/runs/{run_id}/cancel"), 409, "run_id")
    error(client.get(f"{PREFIX}/runs/999"), 404, "run_id")
    error(
        client.post(f"{PREFIX}/schedules", json={"pipeline": SMALL, "kind": "cron", "spec": "x"}), 400, "cron"
    )
    assert len(client.get(f"{PREFIX}/runs").json()) == 1
    r = client.post(
        f"{PREFIX}/backfills",
        json={"pipeline": "tests.test_pipelines_defs:daily", "start": "2026-01-01", "end": "2026-01-02"},
    )
    assert r.status_code == 201 and [x["partition"] for x in r.json()] == ["2026-01-01", "2026-01-02"]
    # the token guards every route
    assert client.get(PREFIX, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_dag_drawing_joins_every_edge() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c", "a"]}
    lines, placed = draw(deps, {n: (n, "✓") for n in deps}, box_w=8)
    text = "\n".join(lines)
    assert [p.node for p in sorted(placed, key=lambda p: (p.col, p.row))] == ["a", "b", "c", "d"]
    assert text.count("▶") == 3  # one arrowhead per box with inputs (edges into it merge)
    assert "├─▶│b" in text and "└─▶│c" in text and "─▶│d" in text
    assert "┌──────┐" in text and "│a     │" in text


def test_training_sets_and_prediction_segments_know_what_made_them(
    services: Services,
    client: TestClient[Litestar],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from mlbox.pipelines.values import PredictionsRef

    raw = tmp_path / "raw.csv"
    raw.write_text("u,x\n1,2\n")
    p = services.pipelines
    run = p.wait(p.submit(defs.made, {"path": str(raw), "ts_id": 7}).id, timeout_s=30)
    assert run.state == "succeeded"
    by_node = {s.node: s for s in run.steps}
    (ts,) = p.made_by("training_set", "7")
    assert (ts.step_run_id, ts.pipeline_run_id, ts.node) == (by_node["build_set"].id, run.id, "build_set")
    assert ts.code_hash == by_node["build_set"].code_hash and ts.code_hash
    assert [(i.name, i.source) for i in ts.inputs] == [("path", "param"), ("ts_id", "param")]
    assert ts.files == [f"{raw.resolve()} (sha256 {hashlib.sha256(raw.read_bytes()).hexdigest()[:12]})"]
    segment = PredictionsRef("tiny", 1, 100.0, 200.0, rows=7).ref
    (pred,) = p.made_by("predictions", segment)
    assert pred.node == "score" and pred.inputs[1].value.startswith("build_set (output ")
    code, out, _ = run_main(capsys, "lineage", "--made-by", "training_set", "7")
    assert code == 0 and f"made by step run {ts.step_run_id} (made.build_set" in out and "read " in out
    body = client.get(f"{PREFIX}/lineage/made-by", params={"kind": "predictions", "ref": segment}).json()
    assert body[0]["step_run_id"] == pred.step_run_id and body[0]["pipeline_run_id"] == run.id
    error(client.get(f"{PREFIX}/lineage/made-by", params={"kind": "nope", "ref": "x"}), 400, "kind")
    error(client.get(f"{PREFIX}/lineage/made-by", params={"kind": "training_set", "ref": "99"}), 404, "ref")
    code, _, err = run_main(capsys, "lineage", "--made-by", "training_set", "7", "--file", "x")
    assert code == 2 and "exactly one of" in err


def test_api_step_log_holds_what_the_step_printed(services: Services, client: TestClient[Litestar]) -> None:
    p = services.pipelines
    run = p.wait(p.submit(defs.two_chatty, {"seconds": 0.0}).id, timeout_s=30)
    left = run.steps[0].node
    text = client.get(f"{PREFIX}/runs/{run.id}/steps/{left}/log").json()["text"]
    assert "left line 2" in text and "WARNING chatty: left logged" in text and "right" not in text
