"""The tracking service over a real database and artifact store under tmp_path."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlbox.services import Services
from mlbox.store.errors import Conflict, IntegrityError, InvalidInput, NotFound
from mlbox.tracking.provenance import CodeVersion
from mlbox.tracking.schemas import RUN_STATUSES
from mlbox.tracking.service import TrackingService


@pytest.fixture
def svc(services: Services) -> TrackingService:
    return services.tracking


def _points(key: str, steps: list[int], values: list[float]) -> list[tuple[str, int, float, float]]:
    return [(key, s, 1000.0 + s, v) for s, v in zip(steps, values, strict=True)]


# -- experiments ---------------------------------------------------------------------------


def test_experiments(svc: TrackingService) -> None:
    exp = svc.create_experiment("digits", "hand-written digits")
    assert (exp.name, exp.description, exp.run_count) == ("digits", "hand-written digits", 0)
    assert svc.get_experiment("digits") == exp
    assert svc.get_experiment(exp.id) == exp
    with pytest.raises(Conflict) as err:
        svc.create_experiment("digits")
    assert err.value.field == "experiment" and "digits" in err.value.message
    assert svc.get_or_create_experiment("digits").id == exp.id
    svc.create_run("digits")
    svc.create_run("other")  # created on first use
    assert [(e.name, e.run_count) for e in svc.list_experiments()] == [("digits", 1), ("other", 1)]
    for unknown in ("nope", 999):
        with pytest.raises(NotFound) as nf:
            svc.get_experiment(unknown)
        assert nf.value.field == "experiment"
    for bad in ("", "  ", "a\nb", "x" * 300):
        with pytest.raises(InvalidInput):
            svc.create_experiment(bad)


# -- runs ------------------------------------------------------------------------------------


def test_run_lifecycle(svc: TrackingService) -> None:
    code = CodeVersion(sha="a" * 40, dirty=True, diff="", root="/src")
    run = svc.create_run(
        "exp",
        tags={"team": "vision"},
        host="h1",
        pid=123,
        code=code,
        environment={"python": "3.11"},
        now=50.0,
    )
    assert run.status == "running"
    assert run.name == f"run-{run.id}"
    assert (run.start_time, run.heartbeat, run.end_time) == (50.0, 50.0, None)
    assert (run.host, run.pid, run.git_sha, run.git_dirty) == ("h1", 123, "a" * 40, True)
    assert run.tags == {"team": "vision"}
    assert run.experiment == "exp"

    svc.heartbeat(run.id, now=60.0)
    assert svc.get_run(run.id).heartbeat == 60.0
    svc.set_notes(run.id, "first try")
    ended = svc.end_run(run.id, "finished", now=70.0)
    assert (ended.status, ended.end_time) == ("finished", 70.0)
    # Ending again changes nothing: a finished run stays finished.
    again = svc.end_run(run.id, "failed", now=80.0)
    assert (again.status, again.end_time) == ("finished", 70.0)
    detail = svc.run_detail(run.id)
    assert detail.notes == "first try"
    assert detail.environment == {"python": "3.11"}


@pytest.mark.parametrize("status", [s for s in RUN_STATUSES if s != "running"])
def test_end_run_statuses(svc: TrackingService, status: str) -> None:
    run = svc.create_run("exp", "named")
    assert run.name == "named"
    assert svc.end_run(run.id, status).status == status
    assert svc.search_runs(f"status = '{status}'").total == 1


@pytest.mark.parametrize("status", ["running", "done", "", "FINISHED"])
def test_end_run_refuses_unknown_statuses(svc: TrackingService, status: str) -> None:
    run = svc.create_run()
    with pytest.raises(InvalidInput) as err:
        svc.end_run(run.id, status)
    assert err.value.field == "status"
    assert svc.get_run(run.id).status == "running"


# -- params and tags ---------------------------------------------------------------------------


def test_params_are_write_once(svc: TrackingService) -> None:
    run = svc.create_run()
    svc.log_params(run.id, {"lr": 0.01, "layers": [64, 32], "opt": "adam", "none": None})
    svc.log_params(run.id, {"lr": 0.01})  # the same value again is fine
    with pytest.raises(Conflict) as err:
        svc.log_params(run.id, {"new": 1, "lr": 0.1})
    assert err.value.field == "lr"
    assert "'lr'" in err.value.message and "0.01" in err.value.message and "0.1" in err.value.message
    params = svc.get_run(run.id).params
    assert params == {"lr": "0.01", "layers": "[64, 32]", "opt": "adam", "none": "None"}
    assert "new" not in params  # the failed call wrote nothing
    with pytest.raises(InvalidInput):
        svc.log_params(run.id, {"long": "x" * 7000})
    with pytest.raises(InvalidInput):
        svc.log_params(run.id, {"": 1})
    with pytest.raises(InvalidInput) as bad:
        svc.log_params(run.id, [("a", 1)])  # type: ignore[arg-type]
    assert bad.value.field == "params"


def test_tags_overwrite(svc: TrackingService) -> None:
    run = svc.create_run(tags={"stage": "dev"})
    svc.set_tags(run.id, {"stage": "prod", "owner": "ana"})
    svc.set_tags(run.id, {"owner": 7})
    assert svc.get_run(run.id).tags == {"stage": "prod", "owner": "7"}
    with pytest.raises(InvalidInput):
        svc.set_tags(run.id, {"bad\x00key": "x"})


# -- metrics ---------------------------------------------------------------------------------


def test_nan_and_infinities_are_stored_and_read_back(svc: TrackingService) -> None:
    run = svc.create_run()
    svc.log_points(
        run.id,
        [
            *_points("loss", [0, 1, 2], [1.0, math.inf, math.nan]),
            *_points("gain", [0, 1], [math.nan, math.inf]),
            *_points("low", [0], [-math.inf]),
        ],
    )
    series = svc.metric_series(run.id, "loss")
    assert list(series.steps) == [0, 1, 2]
    assert series.values[0] == 1.0 and series.values[1] == math.inf and math.isnan(series.values[2])
    metrics = svc.get_run(run.id).metrics
    # Documented in the service: a NaN latest value shows as None, infinities as they are.
    assert metrics == {"loss": None, "gain": math.inf, "low": -math.inf}
    summary = {m.key: m for m in svc.metric_keys(run.id)}
    assert summary["loss"].last is not None and math.isnan(summary["loss"].last)
    assert summary["gain"].last == math.inf and summary["gain"].count == 2
    history = svc.metric_history(run.id, "gain")
    assert math.isnan(history[0].value) and history[1].value == math.inf  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0.5", None, True, False, object(), [1.0], b"1"])
def test_metric_values_must_be_numbers(svc: TrackingService, value: object) -> None:
    run = svc.create_run()
    with pytest.raises(InvalidInput) as err:
        svc.log_points(run.id, [("val_acc", 0, 1.0, value)])  # type: ignore[list-item]
    assert err.value.field == "metrics.val_acc"
    assert "'val_acc'" in err.value.message
    assert svc.metric_keys(run.id) == []  # nothing half-written


def test_numpy_scalars_are_numbers(svc: TrackingService) -> None:
    run = svc.create_run()
    svc.log_points(run.id, [("acc", np.int64(3), 1.0, np.float32(0.5))])  # type: ignore[list-item]
    assert svc.get_run(run.id).metrics == {"acc": 0.5}


@pytest.mark.parametrize("step", ["1", 1.5, None, True])
def test_metric_steps_must_be_integers(svc: TrackingService, step: object) -> None:
    run = svc.create_run()
    with pytest.raises(InvalidInput) as err:
        svc.log_points(run.id, [("acc", step, 1.0, 0.5)])  # type: ignore[list-item]
    assert err.value.field == "step"


@pytest.mark.parametrize("key", ["", " ", "a\tb", "k" * 251, 5])
def test_metric_keys_are_checked(svc: TrackingService, key: object) -> None:
    run = svc.create_run()
    with pytest.raises(InvalidInput) as err:
        svc.log_points(run.id, [(key, 0, 1.0, 0.5)])  # type: ignore[list-item]
    assert err.value.field == "metric"


def test_latest_metric_follows_the_largest_step(svc: TrackingService) -> None:
    run = svc.create_run()
    svc.log_points(run.id, _points("acc", [3, 7, 2], [0.3, 0.7, 0.2]))  # out of order in one batch
    assert svc.get_run(run.id).metrics == {"acc": 0.7}
    svc.log_points(run.id, _points("acc", [5], [0.5]))  # a later batch with an older step
    latest = svc.metric_keys(run.id)[0]
    assert (latest.last, latest.step, latest.count) == (0.7, 7, 4)
    svc.log_points(run.id, _points("acc", [7], [0.77]))  # the same step again: the newer point wins
    assert svc.get_run(run.id).metrics == {"acc": 0.77}
    svc.log_points(run.id, _points("acc", [8, 8], [0.8, 0.88]))
    assert svc.get_run(run.id).metrics == {"acc": 0.88}
    assert svc.search_runs("metrics.acc = 0.88").total == 1
    series = svc.metric_series(run.id, "acc")
    assert list(series.steps) == [2, 3, 5, 7, 7, 8, 8]  # step order, stable for equal steps
    assert list(series.values) == [0.2, 0.3, 0.5, 0.7, 0.77, 0.8, 0.88]


def test_metric_series_thinning_keeps_the_last_point(svc: TrackingService) -> None:
    run = svc.create_run()
    for start in range(0, 1000, 250):  # several chunks
        steps = list(range(start, start + 250))
        svc.log_points(run.id, _points("loss", steps, [float(s) for s in steps]))
    full = svc.metric_series(run.id, "loss")
    assert len(full) == 1000 and list(full.steps) == list(range(1000))
    thin = svc.metric_series(run.id, "loss", max_points=10)
    assert len(thin) == 10
    assert thin.steps[0] == 0 and thin.steps[-1] == 999 and thin.values[-1] == 999.0
    assert list(thin.steps) == sorted(thin.steps)
    assert len(svc.metric_history(run.id, "loss", max_points=5000)) == 1000
    with pytest.raises(NotFound) as err:
        svc.metric_series(run.id, "nope")
    assert err.value.field == "key"


def test_export_metrics_to_parquet(svc: TrackingService, tmp_path: Path) -> None:
    run = svc.create_run()
    svc.log_points(run.id, [*_points("a", [0, 1, 2], [1.0, math.nan, math.inf]), *_points("b", [5], [2.0])])
    out = tmp_path / "exports" / "run.parquet"
    assert svc.export_metrics(run.id, out) == 4
    frame = pl.read_parquet(out).sort("key", "step")
    assert frame.columns == ["key", "step", "timestamp", "value"]
    assert frame["key"].to_list() == ["a", "a", "a", "b"]
    assert frame["step"].to_list() == [0, 1, 2, 5]
    assert frame["timestamp"].to_list() == [1000.0, 1001.0, 1002.0, 1005.0]
    values = frame["value"].to_list()
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == math.inf and values[3] == 2.0
    empty = svc.create_run()
    assert svc.export_metrics(empty.id, tmp_path / "empty.parquet") == 0
    assert pl.read_parquet(tmp_path / "empty.parquet").height == 0


# -- search and compare ---------------------------------------------------------------------------


def test_search_filter_order_paging_experiments(svc: TrackingService) -> None:
    ids = []
    for i in range(7):
        run = svc.create_run("a" if i % 2 else "b", f"r{i}", now=100.0 + i)
        svc.log_params(run.id, {"lr": 10.0 ** -(i % 3), "i": i})
        svc.log_points(run.id, _points("acc", [0], [i / 10]))
        ids.append(run.id)
    page = svc.search_runs("metrics.acc >= 0.2", order_by=["metrics.acc DESC"], limit=2)
    assert [r.id for r in page.runs] == [ids[6], ids[5]]
    assert (page.total, page.offset, page.limit) == (5, 0, 2)
    page2 = svc.search_runs("metrics.acc >= 0.2", order_by=["metrics.acc DESC"], limit=2, offset=4)
    assert [r.id for r in page2.runs] == [ids[2]]
    assert svc.search_runs(experiments=["a"]).total == 3
    assert svc.search_runs(experiments=["a", "b"]).total == 7
    assert svc.search_runs("params.lr = 0.01").total == 2  # i = 2 (in b) and 5 (in a)
    assert [r.id for r in svc.search_runs("params.lr = 0.01", experiments=["b"]).runs] == [ids[2]]
    assert [r.name for r in svc.search_runs("params.i > 4", order_by=["params.i"]).runs] == ["r5", "r6"]
    page1 = svc.search_runs("metrics.acc < 0.5", limit=2)
    page3 = svc.search_runs("metrics.acc < 0.5", limit=2, offset=4)
    assert page1.total == 5 and [r.id for r in page1.runs] == [ids[4], ids[3]]
    assert [r.id for r in page3.runs] == [ids[0]]
    for kwargs, fieldname in (
        ({"limit": 0}, "limit"),
        ({"limit": 10**6}, "limit"),
        ({"offset": -1}, "offset"),
        ({"filter": "metrics.acc >"}, "filter"),
        ({"order_by": ["nope"]}, "order_by"),
    ):
        with pytest.raises(InvalidInput) as err:
            svc.search_runs(**kwargs)
        assert err.value.field == fieldname


def test_compare(svc: TrackingService) -> None:
    a = svc.create_run()
    b = svc.create_run()
    svc.log_params(a.id, {"lr": 0.1, "only_a": "x"})
    svc.log_params(b.id, {"lr": 0.2})
    svc.log_points(a.id, _points("acc", [0], [0.5]))
    svc.log_points(b.id, [*_points("acc", [0], [0.7]), *_points("loss", [0], [1.5])])
    cmp = svc.compare([a.id, b.id])
    assert cmp.run_ids == [a.id, b.id]
    assert cmp.params == {"lr": ["0.1", "0.2"], "only_a": ["x", None]}
    assert cmp.metrics == {"acc": [0.5, 0.7], "loss": [None, 1.5]}
    with pytest.raises(InvalidInput) as err:
        svc.compare([a.id])
    assert err.value.field == "run_ids"
    with pytest.raises(NotFound):
        svc.compare([a.id, 9999])


# -- artifacts and datasets ---------------------------------------------------------------------


def test_artifacts_files_and_folders(svc: TrackingService, tmp_path: Path) -> None:
    run = svc.create_run()
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01weights")
    assert [a.path for a in svc.log_artifact(run.id, weights)] == ["weights.bin"]
    assert [a.path for a in svc.log_artifact(run.id, weights, "models/best")] == ["models/best/weights.bin"]
    folder = tmp_path / "report"
    (folder / "plots").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>report</h1>")
    (folder / "plots" / "loss.svg").write_text("<svg/>")
    logged = svc.log_artifact(run.id, folder)
    assert sorted(a.path for a in logged) == ["report/index.html", "report/plots/loss.svg"]
    svc.log_artifact(run.id, folder, "renamed")
    info = svc.log_artifact_bytes(run.id, "notes/readme.txt", b"hello")
    assert info.size == 5
    assert [a.path for a in svc.list_artifacts(run.id)] == [
        "models/best/weights.bin",
        "notes/readme.txt",
        "renamed/index.html",
        "renamed/plots/loss.svg",
        "report/index.html",
        "report/plots/loss.svg",
        "weights.bin",
    ]
    assert b"".join(svc.read_artifact(run.id, "report/plots/loss.svg")) == b"<svg/>"
    assert b"".join(svc.read_artifact(run.id, "./models//best/weights.bin")) == b"\x00\x01weights"
    # The same content is one object, whatever its logical paths.
    a = svc.artifact(run.id, "report/index.html")
    assert svc.artifact(run.id, "renamed/index.html").sha256 == a.sha256

    # Logging again under the same path replaces the entry.
    weights.write_bytes(b"better weights")
    svc.log_artifact(run.id, weights)
    assert b"".join(svc.read_artifact(run.id, "weights.bin")) == b"better weights"

    with pytest.raises(NotFound) as nf:
        svc.artifact(run.id, "missing.txt")
    assert nf.value.field == "path"
    with pytest.raises(NotFound) as nf:
        svc.log_artifact(run.id, tmp_path / "no-such-file")
    assert nf.value.field == "local_path"
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b"):
        with pytest.raises(InvalidInput):
            svc.artifact(run.id, bad)
        with pytest.raises(InvalidInput):
            svc.log_artifact(run.id, weights, bad)
        with pytest.raises(InvalidInput):
            svc.log_artifact_bytes(run.id, bad, b"x")


def test_tampered_artifact_is_refused(svc: TrackingService) -> None:
    run = svc.create_run()
    info = svc.log_artifact_bytes(run.id, "model.bin", b"good")
    obj = svc.artifacts.root / "objects" / info.sha256[:2] / info.sha256[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"evil")
    with pytest.raises(IntegrityError):
        b"".join(svc.read_artifact(run.id, "model.bin"))


def test_datasets(svc: TrackingService) -> None:
    run = svc.create_run()
    svc.log_dataset(
        run.id, name="digits", digest="d1", source="/data/d.parquet", rows=10, schema={"x": "int64"}
    )
    svc.log_dataset(
        run.id, name="digits", digest="d2", source="/data/e.parquet", rows=5, schema={}, context="eval"
    )
    svc.log_dataset(
        run.id, name="digits", digest="d3", source="/data/d.parquet", rows=11, schema={"x": "int64"}
    )
    got = svc.list_datasets(run.id)
    assert [(d.context, d.name, d.digest, d.rows) for d in got] == [
        ("eval", "digits", "d2", 5),
        ("training", "digits", "d3", 11),
    ]
    assert got[1].schema == {"x": "int64"}
    with pytest.raises(InvalidInput):
        svc.log_dataset(run.id, name="", digest="d", source="s", rows=None, schema={})


def test_run_detail(svc: TrackingService, tmp_path: Path) -> None:
    run = svc.create_run("exp", "detailed", environment={"cpus": 8})
    svc.log_params(run.id, {"lr": 0.1})
    svc.log_points(run.id, _points("acc", [0, 1], [0.1, 0.2]))
    svc.log_artifact_bytes(run.id, "a.txt", b"a")
    svc.log_dataset(run.id, name="d", digest="x", source="s", rows=None, schema={})
    d = svc.run_detail(run.id)
    assert d.run.name == "detailed" and d.run.params == {"lr": "0.1"}
    assert d.environment == {"cpus": 8}
    assert [(m.key, m.last, m.step, m.count) for m in d.metrics] == [("acc", 0.2, 1, 2)]
    assert [a.path for a in d.artifacts] == ["a.txt"]
    assert [ds.name for ds in d.datasets] == ["d"]


# -- unknown runs -------------------------------------------------------------------------------


UNKNOWN = 424242


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s, p: s.get_run(UNKNOWN), id="get_run"),
        pytest.param(lambda s, p: s.end_run(UNKNOWN), id="end_run"),
        pytest.param(lambda s, p: s.set_notes(UNKNOWN, "x"), id="set_notes"),
        pytest.param(lambda s, p: s.heartbeat(UNKNOWN), id="heartbeat"),
        pytest.param(lambda s, p: s.log_params(UNKNOWN, {"a": 1}), id="log_params"),
        pytest.param(lambda s, p: s.set_tags(UNKNOWN, {"a": 1}), id="set_tags"),
        pytest.param(lambda s, p: s.log_points(UNKNOWN, [("a", 0, 1.0, 1.0)]), id="log_points"),
        pytest.param(lambda s, p: s.metric_keys(UNKNOWN), id="metric_keys"),
        pytest.param(lambda s, p: s.metric_series(UNKNOWN, "a"), id="metric_series"),
        pytest.param(lambda s, p: s.metric_history(UNKNOWN, "a"), id="metric_history"),
        pytest.param(lambda s, p: s.export_metrics(UNKNOWN, p / "x.parquet"), id="export_metrics"),
        pytest.param(lambda s, p: s.compare([UNKNOWN, UNKNOWN + 1]), id="compare"),
        pytest.param(lambda s, p: s.run_detail(UNKNOWN), id="run_detail"),
        pytest.param(lambda s, p: s.log_artifact(UNKNOWN, p / "f.txt"), id="log_artifact"),
        pytest.param(lambda s, p: s.log_artifact_bytes(UNKNOWN, "f.txt", b"x"), id="log_artifact_bytes"),
        pytest.param(lambda s, p: s.list_artifacts(UNKNOWN), id="list_artifacts"),
        pytest.param(lambda s, p: s.artifact(UNKNOWN, "f.txt"), id="artifact"),
        pytest.param(lambda s, p: s.read_artifact(UNKNOWN, "f.txt"), id="read_artifact"),
        pytest.param(
            lambda s, p: s.log_dataset(UNKNOWN, name="d", digest="x", source="s", rows=None, schema={}),
            id="log_dataset",
        ),
        pytest.param(lambda s, p: s.list_datasets(UNKNOWN), id="list_datasets"),
    ],
)
def test_unknown_run_is_not_found(
    svc: TrackingService, tmp_path: Path, call: Callable[[TrackingService, Path], object]
) -> None:
    (tmp_path / "f.txt").write_text("x")
    svc.create_run()  # the store is not empty
    with pytest.raises(NotFound) as err:
        call(svc, tmp_path)
    assert err.value.field == "run_id"
    assert str(UNKNOWN) in err.value.message
    assert not (tmp_path / "x.parquet").exists()


def test_metrics_for_an_unknown_run_via_log_metrics(svc: TrackingService) -> None:
    from mlbox.tracking.series import group

    with pytest.raises(NotFound):
        svc.log_metrics(UNKNOWN, group([("a", 0, 1.0, 1.0)]))


# -- crashed runs ---------------------------------------------------------------------------------


def test_reap_crashed(svc: TrackingService) -> None:
    now = 10_000.0
    alive = svc.create_run(host="here", pid=100, pid_started=500.0, now=now - 1000)
    dead = svc.create_run(host="here", pid=101, pid_started=500.0, now=now - 5)
    reused = svc.create_run(host="here", pid=102, pid_started=500.0, now=now - 5)
    legacy = svc.create_run(host="here", pid=103, pid_started=None, now=now - 5)  # start time unknown
    stale = svc.create_run(host="elsewhere", pid=200, pid_started=500.0, now=now - 61)
    fresh = svc.create_run(host="elsewhere", pid=201, pid_started=500.0, now=now - 59)
    finished = svc.create_run(host="here", pid=101, pid_started=500.0, now=now - 5)
    svc.end_run(finished.id, "finished", now=now - 4)

    starts = {100: 500.0, 102: 900.0, 103: 42.0}  # 101 is gone; 102 is another process now
    asked: list[int] = []

    def process_start(pid: int) -> float | None:
        asked.append(pid)
        return starts.get(pid)

    crashed = svc.reap_crashed(now=now, this_host="here", process_start=process_start, crash_after_s=60)
    assert sorted(crashed) == sorted([dead.id, reused.id, stale.id])
    status = {r.id: r.status for r in svc.search_runs(limit=100).runs}
    assert status == {
        alive.id: "running",  # same host, same process: alive however old its heartbeat
        dead.id: "crashed",
        reused.id: "crashed",
        legacy.id: "running",
        stale.id: "crashed",
        fresh.id: "running",
        finished.id: "finished",
    }
    # A crashed run ends at its last sign of life, not when it was found.
    assert svc.get_run(dead.id).end_time == now - 5
    assert svc.get_run(stale.id).end_time == now - 61
    assert set(asked) == {100, 101, 102, 103}  # another host's pids mean nothing here
    # A second pass finds nothing new.
    assert svc.reap_crashed(now=now, this_host="here", process_start=process_start, crash_after_s=60) == []
