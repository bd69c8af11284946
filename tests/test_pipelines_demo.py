"""The demo's pipeline step on the digits (quick): a run, the same run all cached, a run started
by a dropped file; then lineage both ways over it, from the service, the CLI and the API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient
from rich.console import Console

import mlbox
from mlbox.api.app import create_app
from mlbox.demo.pipeline import MODEL, pipeline
from mlbox.demo.state import DemoState
from mlbox.services import Services
from mlbox.store.errors import NotFound
from tests.helpers import run_main


@pytest.fixture
def demoed(services: Services, home: Path) -> tuple[Services, str]:
    mlbox.set_home(home)
    out = io.StringIO()
    pipeline(DemoState(services=services, console=Console(file=out, width=200), quick=True))
    return services, out.getvalue()


def test_demo_step_then_lineage_both_ways(
    demoed: tuple[Services, str], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services, said = demoed
    p = services.pipelines
    first, again, dropped = sorted(p.list_runs(), key=lambda r: r.id)
    assert [r.state for r in (first, again, dropped)] == ["succeeded"] * 3, said
    assert [s.node for s in first.steps] == [s.node for s in again.steps]
    assert {s.state for s in p.get_run(again.id).steps} == {"cached"}
    assert "6 of 6 steps cached" in said and "│ingest" in said
    assert dropped.trigger == "file:digits-batch-2.csv"
    assert {s.state for s in p.get_run(dropped.id).steps} == {"succeeded"}
    assert services.registry.resolve(f"{MODEL}@champion").version == 2  # the dropped file's model
    raw1 = str(home / "demo" / "pipeline" / "raw" / "digits-batch-1.csv")
    raw2 = str(home / "demo" / "pipeline" / "inbox" / "digits-batch-2.csv")

    # forward: batch 1 went into version 1 (computed once, reused by the cached run), not version 2
    fwd = p.lineage_forward(raw1)
    ids = {n.id for n in fwd.nodes}
    assert f"model:{MODEL}/1" in ids and f"model:{MODEL}/2" not in ids
    assert any(e.what == "reused by" for e in fwd.edges)
    assert {f"pipeline:{first.id}", f"pipeline:{again.id}"} <= ids and f"pipeline:{dropped.id}" not in ids

    # a served prediction of version 2, logged by the serving service's prediction log
    log = services.serving.predlog
    assert log is not None
    log.append(("req-42", MODEL, 2, time.time(), 1.0, False, [[0.0] * 64], [3]))
    log.flush()
    back = p.lineage_back("req-42")
    ids = {n.id for n in back.nodes}
    assert f"file:{raw2}" in ids and f"file:{raw1}" not in ids
    assert f"model:{MODEL}/2" in ids and f"alias:{MODEL}@champion" in ids
    version2 = services.registry.get_version(MODEL, 2)
    assert f"run:{version2.run_id}" in ids  # the registry's provenance: the training run
    assert {n.label.split(" (")[0] for n in back.nodes if n.kind == "step"} == {
        "digits.ingest",
        "digits.features",
        "digits.train",
        "digits.evaluate",
        "digits.register",
    }  # the register step hands the version on too (as the champion), after its evaluation
    served = p.lineage_forward(raw2)
    assert any(n.id == f"served:{MODEL}/2" and "1 predictions" in n.label for n in served.nodes)
    with pytest.raises(NotFound) as err:
        p.lineage_back("nope")
    assert err.value.field == "request_id"
    with pytest.raises(NotFound) as err:
        p.lineage_forward(str(home / "never-read.csv"))
    assert err.value.field == "path"

    # the CLI and the API answer the same graph
    code, out, _ = run_main(capsys, "lineage", "--request", "req-42")
    assert code == 0 and out.startswith("request req-42") and raw2 in out and raw1 not in out
    code, out, _ = run_main(capsys, "lineage", "--file", raw1, "--json")
    assert code == 0 and json.loads(out)["root"] == f"file:{raw1}"
    code, _, err_text = run_main(capsys, "lineage")
    assert code == 2 and "exactly one" in err_text
    with TestClient(create_app(services, token="t"), base_url="http://127.0.0.1:5151") as client:
        client.headers.update({"Authorization": "Bearer t"})
        body = client.get("/api/v1/pipelines/lineage", params={"request_id": "req-42"}).json()
        assert {n["id"] for n in body["nodes"]} == {n.id for n in back.nodes}
        assert client.get("/api/v1/pipelines/lineage").status_code == 400
