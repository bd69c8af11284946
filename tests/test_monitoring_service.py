"""The monitoring service on a real home: a registered model, its predictions in the real
prediction log, a stored reference, late labels, window evaluations, monitors and alerts,
the HTML report, and the HTTP routes."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from litestar.testing import TestClient
from sklearn.linear_model import LogisticRegression

from mlbox.api.app import create_app
from mlbox.monitoring.schemas import FeedbackItem
from mlbox.services import Services
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from tests.helpers import error, ok, run_main

FEATURES = [f"input_{j}" for j in range(4)]
T0 = 1_780_000_000.0
TOKEN = "monitoring-token-7c1d"


def _proba(x: np.ndarray) -> np.ndarray:
    p1 = 1 / (1 + np.exp(-(x[:, 0] + x[:, 1])))
    return np.column_stack([1 - p1, p1])


@dataclasses.dataclass
class World:
    services: Services
    train: pd.DataFrame
    base_x: np.ndarray
    shift_x: np.ndarray
    ref_file: Path


def _log(
    services: Services, prefix: str, x: np.ndarray, start: float, shadow: bool = False, version: int = 1
) -> None:
    log = services.serving.predlog
    assert log is not None
    proba = _proba(x)
    for i in range(len(x)):
        log.append(
            (
                f"{prefix}{i}",
                "clf",
                version,
                start + i,
                1.0,
                shadow,
                x[i : i + 1],
                {"proba": proba[i : i + 1]},
            )
        )
    log.flush()


@pytest.fixture
def world(services: Services, tmp_path: Path) -> World:
    return seed(services, tmp_path)


def seed(services: Services, tmp_path: Path) -> World:
    """clf@champion (a logistic regression on 4 features), 200 ordinary and 200 shifted requests
    logged, 5 shadow ones, and its training rows in a Parquet file."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    services.registry.register("clf", model=LogisticRegression().fit(x, y), example_input=x[:2])
    services.registry.set_alias("clf", "champion", 1)
    train = pd.DataFrame(x, columns=FEATURES)
    ref_file = tmp_path / "train.parquet"
    train.to_parquet(ref_file)
    base_x = rng.normal(size=(200, 4))
    shift_x = rng.normal(size=(200, 4))
    shift_x[:, 0] += 3.0  # brighter: feature 0 shifted far past the reference's range
    _log(services, "b", base_x, T0)
    _log(services, "s", shift_x, T0 + 1000)
    _log(services, "b", base_x[:5], T0, shadow=True)  # a challenger's answers: never counted
    return World(services, train, base_x, shift_x, ref_file)


def test_reference_evaluation_feedback_and_report(world: World, tmp_path: Path) -> None:
    mon = world.services.monitoring
    with pytest.raises(InvalidInput) as exc:
        mon.evaluate("clf@champion")
    assert exc.value.field == "model"  # no reference yet

    bad = tmp_path / "bad.parquet"
    world.train.assign(zzz=1.0).to_parquet(bad)
    with pytest.raises(InvalidInput) as exc:
        mon.set_reference("clf@champion", path=bad)
    assert exc.value.field == "columns" and "zzz" in exc.value.message
    assert mon.reference("clf", 1) is None and mon.references() == []

    ref = mon.set_reference("clf@champion", path=world.ref_file)
    assert (ref.rows, ref.columns) == (600, FEATURES)
    sample = mon.reference_sample("clf", 1, 50)
    assert sample is not None and sample.shape == (50, 4)
    assert mon.reference_sample("clf", 2, 5) is None

    base = mon.evaluate("clf@champion", since=T0, until=T0 + 500)
    assert base.rows == 200
    assert [v.column for v in base.drift if v.drifted] == []
    assert base.quality.problems == [] and base.outlier_rate < 0.02
    shifted = mon.evaluate("clf@champion", since=T0 + 1000, until=T0 + 2000)
    assert shifted.drift[0].column == "input_0" and [v.column for v in shifted.drift if v.drifted] == [
        "input_0"
    ]
    assert any("outside the reference's range" in p for p in shifted.quality.problems)
    assert shifted.outlier_rate > 0.15 > base.outlier_rate * 5
    # the reference was scored by the version itself: predictions drift with the inputs
    assert base.prediction_drift is not None and not base.prediction_drift.drifted
    assert shifted.prediction_drift is not None and shifted.prediction_drift.drifted
    with pytest.raises(InvalidInput) as exc:
        mon.evaluate("clf@champion", since=T0 + 5000, until=T0 + 6000)
    assert exc.value.field == "window"

    # estimated accuracy (CBPE) before any label: the mean top probability
    want_est = float(_proba(world.base_x).max(axis=1).mean())
    assert base.performance.labelled == 0 and base.performance.accuracy is None
    assert base.performance.estimated_accuracy == pytest.approx(want_est)

    # late labels, out of order, one sent twice (the last wins); a bad batch stores nothing
    truth = (world.base_x[:, 0] + world.base_x[:, 1] > 0).astype(int)
    with pytest.raises(NotFound) as nf:
        mon.add_feedback([FeedbackItem("b3", int(truth[3])), FeedbackItem("nope", 1)])
    assert nf.value.field == "labels[1].request_id"
    with pytest.raises(InvalidInput) as bad_type:
        mon.add_feedback([FeedbackItem("b3", "cat")])
    assert bad_type.value.field == "labels[0].label"
    with pytest.raises(InvalidInput) as bad_row:
        mon.add_feedback([FeedbackItem("b3", 1, row=4)])
    assert bad_row.value.field == "labels[0].row"
    assert len(mon.labels("clf")) == 0
    first = [FeedbackItem(f"b{i}", int(1 - truth[i])) for i in range(99, -1, -1)]  # wrong, newest first
    assert mon.add_feedback(first).stored == 100
    fixed = mon.add_feedback([FeedbackItem(f"b{i}", int(truth[i])) for i in range(100)])
    assert (fixed.stored, fixed.updated) == (0, 100)
    labelled = mon.evaluate("clf@champion", since=T0, until=T0 + 500)
    predicted = _proba(world.base_x[:100]).argmax(axis=1)
    assert labelled.performance.labelled == 100
    assert labelled.performance.accuracy == pytest.approx(float(np.mean(predicted == truth[:100])))
    assert labelled.performance.roc_auc is not None and labelled.performance.roc_auc > 0.9
    assert sum(b.performance.labelled for b in labelled.over_time) == 100

    # labels from a file
    labels = tmp_path / "labels.parquet"
    pd.DataFrame({"request_id": [f"b{i}" for i in range(100, 150)], "label": truth[100:150]}).to_parquet(
        labels
    )
    assert mon.import_feedback(labels).stored == 50
    pd.DataFrame({"request_id": ["b1"]}).to_parquet(tmp_path / "nolabel.parquet")
    with pytest.raises(InvalidInput) as exc:
        mon.import_feedback(tmp_path / "nolabel.parquet")
    assert exc.value.field == "label"

    html = mon.report("clf@champion", since=T0 + 1000, until=T0 + 2000)
    assert "<svg" in html and "input_0" in html and "Monitoring report" in html
    assert not re.search(r"https?://", html)
    assert not re.search(r"(src|href)\s*=", html)


def test_monitor_raises_an_alert_once_and_clears_it(world: World, tmp_path: Path) -> None:
    mon = world.services.monitoring
    with pytest.raises(InvalidInput) as exc:
        mon.create_monitor("clf@champion")
    assert exc.value.field == "model" and "reference" in exc.value.message
    mon.set_reference("clf@champion", path=world.ref_file)
    with pytest.raises(InvalidInput) as exc:
        mon.create_monitor("clf@champion", checks=["drift", "vibes"])
    assert exc.value.field == "checks"
    with pytest.raises(InvalidInput) as exc:
        mon.create_monitor("clf", window_s=10)
    assert exc.value.field == "model"
    marker = tmp_path / "alerts.txt"
    command = f"{sys.executable} -c \"import os; open({str(marker)!r}, 'a').write(os.environ['MLBOX_ALERT_CHECK'] + chr(10))\""
    m = mon.create_monitor(
        "clf@champion",
        window_s=900,
        every_s=60,
        checks=["drift", "outliers"],
        thresholds={"drift": 0.2},
        command=command,
    )
    with pytest.raises(Conflict):
        mon.create_monitor("clf@champion")

    # the window ending after the shifted traffic: both checks breach, two alerts, the command runs
    run = mon.run_monitor(m.id, now=T0 + 1300)
    assert {a.check for a in run.raised} == {"drift", "outliers"}
    assert sorted(marker.read_text().split()) == ["drift", "outliers"]
    again = mon.run_monitor(m.id, now=T0 + 1310)  # still breached: nothing new
    assert again.raised == [] and again.cleared == []
    assert len(mon.alerts(open_only=True)) == 2 and mon.monitor(m.id).open_alerts == 2
    assert "input_0" in next(a.message for a in mon.alerts() if a.check == "drift")

    # the loop runs it only when due
    assert mon.reconcile_once(now=T0 + 1320) == {}
    # the clean window: both clear
    clean = mon.run_monitor(m.id, now=T0 + 300)
    assert {a.check for a in clean.cleared} == {"drift", "outliers"}
    assert mon.alerts(open_only=True) == [] and len(mon.alerts()) == 2
    assert len(marker.read_text().split()) == 2
    assert mon.reconcile_once(now=T0 + 1300 + 61)["monitors_ran"] == [m.id]
    assert len(mon.alerts(open_only=True)) == 2  # breached again: raised again, once
    # an empty window is recorded on the monitor, not an alert
    empty = mon.run_monitor(m.id, now=T0 + 90_000)
    assert empty.evaluation is None and mon.monitor(m.id).last_error is not None
    assert len(mon.history(m.id)) == 4


def _client(services: Services) -> TestClient[Any]:
    client = TestClient(create_app(services, token=TOKEN), base_url="http://127.0.0.1:5151")
    client.headers.update({"Authorization": f"Bearer {TOKEN}"})
    return client


def test_http_routes(world: World) -> None:
    with _client(world.services) as client:
        r = client.post("/api/v1/monitors", json={"model": "clf@champion"})
        error(r, 400, "model")
        r = client.post("/api/v1/monitors/references/clf@champion", json={"path": str(world.ref_file)})
        assert r.status_code == 201, r.text
        assert r.json()["columns"] == FEATURES
        error(
            client.post("/api/v1/monitors/references/clf@champion", json={"path": "/nope.parquet"}),
            404,
            "path",
        )
        r = client.post("/api/v1/feedback", json={"labels": [{"request_id": "b1", "label": 1}]})
        assert r.status_code == 200 and r.json() == {"stored": 1, "updated": 0}
        error(
            client.post("/api/v1/feedback", json={"labels": [{"request_id": "zz", "label": 1}]}),
            404,
            "labels[0].request_id",
        )
        error(client.post("/api/v1/feedback", json={"labels": [{"request_id": "b2", "label": [1]}]}), 400)
        error(
            client.post("/api/v1/feedback", json={"labels": [{"request_id": "b2", "label": 1, "x": 1}]}), 400
        )
        r = client.post(
            "/api/v1/monitors", json={"model": "clf@champion", "window_s": 1e9, "checks": ["drift"]}
        )
        assert r.status_code == 201, r.text
        monitor_id = r.json()["id"]
        r = client.post(f"/api/v1/monitors/{monitor_id}/run")
        assert r.status_code == 200 and r.json()["evaluation"]["rows"] == 400
        assert [m["id"] for m in client.get("/api/v1/monitors").json()] == [monitor_id]
        r = client.get("/api/v1/monitors/evaluate/clf@champion", params={"since": T0 + 1000})
        assert r.status_code == 200 and r.json()["drift"][0]["column"] == "input_0"
        r = client.get("/api/v1/monitors/report/clf@champion")
        assert r.status_code == 200, r.text
        assert r.json()["html"].startswith("<!doctype html>") and not re.search(
            r"https?://", r.json()["html"]
        )
        assert client.get("/api/v1/monitors/alerts", params={"open": True}).status_code == 200
        error(client.get("/api/v1/monitors/999"), 404)
        assert client.delete(f"/api/v1/monitors/{monitor_id}").status_code == 204
    with TestClient(create_app(world.services, token=TOKEN), base_url="http://127.0.0.1:5151") as anonymous:
        assert anonymous.post("/api/v1/feedback", json={"labels": []}).status_code == 401


def test_cli(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "monitor", "add", "clf@champion")
    assert code == 2 and "reference" in err
    bad = tmp_path / "bad.csv"
    world.train.assign(extra=1).to_csv(bad, index=False)
    code, _, err = run_main(capsys, "monitor", "reference", "clf@champion", str(bad))
    assert code == 2 and "extra" in err
    assert "600 rows, 4 columns" in ok(capsys, "monitor", "reference", "clf@champion", str(world.ref_file))
    out = ok(capsys, "monitor", "run", "clf@champion")
    assert "clf version 1: 400 rows" in out and "input_0" in out and "estimated" in out
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["b0", "b1", "b1"], "label": [0, 1, 1]}).to_csv(labels, index=False)
    assert "2 labels stored, 1 replaced" in ok(capsys, "feedback", "import", str(labels))
    assert "label replaced" in ok(capsys, "feedback", "add", "b0", "1")
    code, _, err = run_main(capsys, "feedback", "add", "nope", "1")
    assert code == 2 and "nope" in err
    out = ok(
        capsys,
        "monitor",
        "add",
        "clf@champion",
        "--window",
        "2d",
        "--check",
        "drift",
        "--threshold",
        "drift=0.1",
    )
    assert out.startswith("monitor 1: clf@champion")
    code, _, err = run_main(capsys, "monitor", "add", "clf@champion", "--window", "soon")
    assert code == 2 and "--window" in err
    assert "clf@champion" in ok(capsys, "monitor", "ls")
    report = tmp_path / "report.html"
    assert "wrote" in ok(capsys, "monitor", "report", "clf@champion", "-o", str(report))
    html = report.read_text()
    assert "<svg" in html and not re.search(r"https?://", html)
    assert "no alerts" in ok(capsys, "monitor", "alerts")


def _as_json_segment(rows_file: Path) -> None:
    """Rewrite a typed rows file of the fixture's requests (one row each: ``input_<j>`` and
    ``out:proba_<k>``) as the JSON segment an older log wrote in its place."""
    import polars as pl

    from mlbox.serving.predlog import schema
    from mlbox.store.tables import write_parquet

    rows = pl.read_parquet(rows_file)
    assert rows["row"].to_list() == [0] * rows.height
    inputs = rows.select(FEATURES).to_numpy()
    proba = rows.select(["out:proba_0", "out:proba_1"]).to_numpy()
    table = (
        pl.DataFrame(
            {
                "request_id": rows["request_id"],
                "model": ["clf"] * rows.height,
                "version": rows["version"],
                "ts": rows["ts"],
                "latency_ms": rows["latency_ms"],
                "shadow": rows["shadow"],
                "inputs": [json.dumps([list(map(float, x))]) for x in inputs],
                "outputs": [json.dumps({"proba": [list(map(float, p))]}) for p in proba],
            }
        )
        .to_arrow()
        .cast(schema())
    )
    write_parquet(table, rows_file.with_name("seg-" + rows_file.name[len("rows-") :]))
    rows_file.unlink()


def test_typed_rows_and_older_json_segments_read_the_same(world: World) -> None:
    """The typed layout and the JSON of older segments give one frame: with half the typed files
    removed (an older log), and with all of them, the evaluation is the same."""
    from mlbox.monitoring.logframe import read_window

    mon = world.services.monitoring
    mon.set_reference("clf@champion", path=world.ref_file)
    mon.add_feedback([FeedbackItem(f"s{i}", i % 2) for i in range(0, 200, 3)])
    root = world.services.home.tables / "predictions"
    mv = world.services.registry.resolve("clf@champion")
    typed = read_window(root, "clf", mv.signature)
    ev = mon.evaluate("clf@champion")
    rows_files = sorted(root.rglob("rows-*.parquet"))
    assert len(rows_files) == 3  # one per flush of the fixture
    assert not list(root.rglob("seg-*.parquet")) and not list(root.rglob("json-*.parquet"))
    _as_json_segment(rows_files[0])
    mixed = read_window(root, "clf", mv.signature)
    for f in rows_files[1:]:
        _as_json_segment(f)
    old = read_window(root, "clf", mv.signature)
    assert not list(root.rglob("rows-*.parquet"))
    for frame in (mixed, old):
        assert list(frame.columns) == list(typed.columns)
        assert frame["request_id"].tolist() == typed["request_id"].tolist()
        assert np.allclose(frame[FEATURES].to_numpy(float), typed[FEATURES].to_numpy(float))
        assert np.allclose(
            frame[["proba_0", "proba_1"]].to_numpy(float), typed[["proba_0", "proba_1"]].to_numpy(float)
        )
        assert frame["prediction"].astype(int).tolist() == typed["prediction"].astype(int).tolist()
    again = mon.evaluate("clf@champion")
    assert [(v.column, v.statistic) for v in again.drift] == [(v.column, v.statistic) for v in ev.drift]
    assert again.performance == ev.performance


def test_monitor_overrides_the_drift_test_of_single_columns(world: World, capsys: Any) -> None:
    from mlbox.monitoring.schemas import ColumnTest

    mon = world.services.monitoring
    mon.set_reference("clf@champion", path=world.ref_file)
    for bad, field in (
        ({"nope": ColumnTest("psi")}, "column_tests.nope"),
        ({"input_0": ColumnTest("vibes")}, "column_tests.input_0"),
        ({"input_0": ColumnTest(None, -1.0)}, "column_tests.input_0"),
        ({"input_0": ColumnTest()}, "column_tests.input_0"),
    ):
        with pytest.raises(InvalidInput) as exc:
            mon.create_monitor("clf@champion", column_tests=bad)
        assert exc.value.field == field
    assert mon.list() == []  # nothing stored half-way
    m = mon.create_monitor(
        "clf@champion", window_s=900, checks=["drift"], column_tests={"input_0": ColumnTest("psi", 50.0)}
    )
    assert mon.monitor(m.id).column_tests == {"input_0": ColumnTest("psi", 50.0)}
    run = mon.run_monitor(m.id, now=T0 + 1300)
    assert run.evaluation is not None
    by = {v.column: v for v in run.evaluation.drift}
    assert (by["input_0"].test, by["input_0"].threshold, by["input_0"].drifted) == ("psi", 50.0, False)
    assert by["input_1"].test == "ks" and by["input_1"].threshold == 0.05
    mon.delete_monitor(m.id)

    with _client(world.services) as client:
        r = client.post(
            "/api/v1/monitors",
            json={"model": "clf@champion", "column_tests": {"input_0": {"test": "psi", "bins": 3}}},
        )
        assert r.status_code == 400 and "bins" in r.text
        r = client.post(
            "/api/v1/monitors",
            json={"model": "clf@champion", "column_tests": {"input_1": {"threshold": 0.5}}},
        )
        assert r.status_code == 201, r.text
        assert r.json()["column_tests"] == {"input_1": {"threshold": 0.5}}
        client.delete(f"/api/v1/monitors/{r.json()['id']}")
    code, _, err = run_main(capsys, "monitor", "add", "clf@champion", "--column-test", "input_0=psi:x")
    assert code == 2 and "--column-test" in err
    assert "monitor" in ok(capsys, "monitor", "add", "clf@champion", "--column-test", "input_0=psi:0.3")
