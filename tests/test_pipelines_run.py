"""Pipelines on the scheduler and in a real appliance: job steps, kill -9 and resume, triggers
(cron catch-up, file arrival) and backfills."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlbox.pipelines import triggers
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from tests import test_pipelines_defs as defs
from tests.helpers import MLBOX, mlbox_env, stop, wait_announced

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def job_loop(gpu_services: Services) -> Iterator[Services]:
    """The appliance's job loop (scheduler, then pipelines) in a thread."""
    halt = threading.Event()

    def run() -> None:
        while not halt.is_set():
            gpu_services.scheduler.reconcile_once()
            gpu_services.pipelines.reconcile_once()
            gpu_services.scheduler.wait_for_work(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield gpu_services
    halt.set()
    thread.join(timeout=10)
    gpu_services.pipelines.close()


def test_a_job_step_runs_through_the_scheduler_with_its_own_run(job_loop: Services) -> None:
    p = job_loop.pipelines
    run = p.submit(defs.with_job, {"n": 3})
    done = p.wait(run.id, timeout_s=90, drive=False)
    assert done.state == "succeeded", (done, p.step_log(run.id, "in_job"))
    job_step = next(s for s in done.steps if s.node == "in_job")
    assert job_step.as_job and job_step.job_id is not None
    job = job_loop.scheduler.get(job_step.job_id)
    assert job.state == "succeeded" and job.run_id is not None and job.spec.owner == f"pipeline:{run.id}"
    assert p.output(run.id, "in_job") == 21 and p.output(run.id, "plus_one") == 22
    assert "json output stored" in p.step_log(run.id, "in_job")


def _wait(predicate: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill9_of_the_appliance_resumes_the_run_without_rerunning_finished_steps(
    services: Services, home: Path, tmp_path: Path, started: list[subprocess.Popen[Any]]
) -> None:
    folder = tmp_path / "counts"
    folder.mkdir()
    run = services.pipelines.submit(defs.marks, {"folder": str(folder), "seconds": 3.0})
    env = mlbox_env(home, PYTHONPATH=str(ROOT), MLBOX_SCHEDULER_TICK_S="0.1")
    log = tmp_path / "up.log"

    def up() -> subprocess.Popen[Any]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(MLBOX), "up", "--port", "0"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        started.append(proc)
        wait_announced(home, proc, log=log)
        return proc

    first = up()
    # a, b and c are running (their bodies began) when the appliance is killed
    _wait(lambda: all((folder / f"{n}.count").exists() for n in "abc"))
    running = {s.node for s in services.pipelines.get_run(run.id).steps if s.state == "running"}
    assert running == {"slow_mark", "slow_mark_2", "slow_mark_3"}
    first.kill()
    first.wait()
    assert services.pipelines.get_run(run.id).state == "running"

    second = up()
    _wait(lambda: services.pipelines.get_run(run.id).state != "running", 90)
    done = services.pipelines.get_run(run.id)
    assert done.state == "succeeded", (done, log.read_text())
    # the killed bodies ran once more (never two at once: one claim per live process), and the
    # step that was not started ran once
    assert {n: (folder / f"{n}.count").read_text() for n in "abc"} == {"a": "xx", "b": "xx", "c": "xx"}
    attempts = {s.node: s.attempt for s in done.steps}
    assert attempts == {"slow_mark": 2, "slow_mark_2": 2, "slow_mark_3": 2, "both": 1}
    # a third start finds nothing to do: finished steps are never run again
    stop(second)
    third = up()
    time.sleep(1.0)
    stop(third)
    assert {n: (folder / f"{n}.count").read_text() for n in "abc"} == {"a": "xx", "b": "xx", "c": "xx"}
    assert services.pipelines.get_run(run.id).steps == done.steps


# -- triggers ---------------------------------------------------------------------------------


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def test_cron_parsing_and_ticks() -> None:
    assert triggers.ticks_between("*/15 * * * *", _at("2026-12-01T00:00"), _at("2026-12-01T01:00")) == [
        _at("2026-12-01T00:15"),
        _at("2026-12-01T00:30"),
        _at("2026-12-01T00:45"),
        _at("2026-12-01T01:00"),
    ]
    # day of month OR day of week when both are restricted (2026-12-06 is a Sunday)
    sundays_or_first = triggers.ticks_between("0 0 1 * 0", _at("2026-11-30T12:00"), _at("2026-12-14T00:00"))
    assert sundays_or_first == [_at("2026-12-01T00:00"), _at("2026-12-06T00:00"), _at("2026-12-13T00:00")]
    for bad, word in (
        ("* * *", "5 fields"),
        ("61 * * * *", "minute"),
        ("* * * 13 *", "month"),
        ("a * * * *", "minute"),
    ):
        with pytest.raises(InvalidInput, match=word) as err:
            triggers.parse_cron(bad)
        assert err.value.field == "cron"


@pytest.mark.parametrize(("catchup", "expected"), [("all", 3), ("latest", 1), ("none", 0)])
def test_cron_catch_up_after_downtime(services: Services, catchup: str, expected: int) -> None:
    p = services.pipelines
    created = _at("2026-12-01T12:00")
    sch = p.add_schedule("tests.test_pipelines_defs:daily", "cron", "0 3 * * *", catchup=catchup, now=created)
    # the appliance was down for three 03:00 ticks
    ids = p.fire_triggers(_at("2026-12-04T12:00"))
    assert len(ids) == expected
    runs = [p.get_run(i) for i in ids]
    if catchup == "all":
        assert [r.partition for r in runs] == ["2026-12-02", "2026-12-03", "2026-12-04"]
        assert runs[0].params == {"partition": "2026-12-02"}
    if catchup == "latest":
        assert runs[0].partition == "2026-12-04"
    assert p.fire_triggers(_at("2026-12-04T12:30")) == []  # handled once
    assert p.get_schedule(sch.id).last_tick == _at("2026-12-04T03:00")
    assert len(p.fire_triggers(_at("2026-12-05T03:00"))) == 1  # a tick on time always fires


def test_bad_schedules_are_refused(services: Services, tmp_path: Path) -> None:
    p = services.pipelines
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:daily", "cron", "0 25 * * *")
    assert err.value.field == "cron"
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:on_file", "folder", str(tmp_path / "absent"))
    assert err.value.field == "folder"
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:small", "folder", str(tmp_path))
    assert err.value.field == "pipeline"  # it has no 'path' parameter
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:nope", "cron", "* * * * *")
    assert err.value.field == "pipeline"
    assert p.schedules() == []


def test_one_run_per_arriving_file_after_it_stopped_growing(services: Services, tmp_path: Path) -> None:
    p = services.pipelines
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sch = p.add_schedule("tests.test_pipelines_defs:on_file", "folder", str(inbox))
    f = inbox / "batch-1.csv"
    f.write_bytes(b"a,b\n")
    now = time.time()
    assert p.fire_triggers(now + 5) == []  # first sighting
    with open(f, "ab") as out:  # still growing
        out.write(b"1,2\n")
    assert p.fire_triggers(now + 10) == []
    (inbox / ".hidden").write_text("x")
    (inbox / "upload.part").write_text("x")
    (ids,) = [p.fire_triggers(now + 15)]
    assert len(ids) == 1
    assert p.fire_triggers(now + 20) == []  # handled once
    run = p.wait(ids[0], timeout_s=30)
    assert run.state == "succeeded" and run.params == {"path": str(f)} and run.trigger == "file:batch-1.csv"
    assert p.output(run.id, "read_file") == 8
    (inbox / "batch-2.csv").write_bytes(b"x")
    assert p.fire_triggers(now + 25) == []
    assert len(p.fire_triggers(now + 30)) == 1
    p.remove_schedule(sch.id)
    assert p.schedules() == []


def test_backfill_runs_one_run_per_day_with_bounded_parallelism(services: Services) -> None:
    p = services.pipelines
    runs = p.backfill("tests.test_pipelines_defs:daily", "2026-11-01", "2026-11-05", parallel=2)
    assert [r.partition for r in runs] == [f"2026-11-0{i}" for i in range(1, 6)]
    assert {r.state for r in runs} == {"queued"}
    peak = 0
    deadline = time.monotonic() + 60
    while True:
        p.advance()
        current = [p.get_run(r.id).state for r in runs]
        peak = max(peak, current.count("running"))
        if all(s == "succeeded" for s in current):
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert 1 <= peak <= 2
    assert p.output(runs[2].id, "day_rows") == "rows of 2026-11-03"
    with pytest.raises(InvalidInput) as err:
        p.backfill("tests.test_pipelines_defs:daily", "2026-11-05", "2026-11-01")
    assert err.value.field == "end"
    with pytest.raises(InvalidInput) as err:
        p.backfill("tests.test_pipelines_defs:small", "2026-11-01", "2026-11-02")
    assert err.value.field == "pipeline"


def test_folder_of_the_trigger_must_be_absolute() -> None:
    with pytest.raises(InvalidInput, match="absolute"):
        triggers.check_folder(os.path.join("relative", "inbox"))


def test_a_run_each_time_a_model_alias_moves(services: Services, home: Path) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import mlbox

    mlbox.set_home(home)
    p = services.pipelines
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(x, [0, 0, 1, 1])
    v1 = mlbox.register_model("tiny", model=model, example_input=x[:2])
    v2 = mlbox.register_model("tiny", model=model, example_input=x[:2])
    sch = p.add_schedule("tests.test_pipelines_defs:on_alias", "alias", "tiny@champion")
    assert p.fire_triggers() == []  # the alias points nowhere yet
    services.registry.set_alias("tiny", "champion", v1.version)
    (first,) = p.fire_triggers()
    assert p.fire_triggers() == []  # one run per move
    services.registry.set_alias("tiny", "champion", v2.version)
    (second,) = p.fire_triggers()
    runs = [p.wait(i, timeout_s=30) for i in (first, second)]
    assert [r.params for r in runs] == [{"model": "tiny/1"}, {"model": "tiny/2"}]
    assert runs[1].trigger == "alias:tiny@champion" and p.output(second, "describe") == "model tiny/2"
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:on_alias", "alias", "no-alias")
    assert err.value.field == "spec"
    p.remove_schedule(sch.id)


def test_a_run_each_time_a_logged_datasets_content_changes(services: Services) -> None:
    p, tracking = services.pipelines, services.tracking

    def log(digest: str) -> None:
        run = tracking.create_run("ingest")
        tracking.log_dataset(run.id, name="raw", digest=digest, source="raw.csv", rows=3, schema={})

    sch = p.add_schedule("tests.test_pipelines_defs:on_dataset", "dataset", "ingest/raw")
    assert p.fire_triggers() == []  # nothing logged yet
    log("aaa")
    (first,) = p.fire_triggers()
    log("aaa")  # logged again, same content: no run
    assert p.fire_triggers() == []
    log("bbb")
    (second,) = p.fire_triggers()
    runs = [p.wait(i, timeout_s=30) for i in (first, second)]
    assert [r.params for r in runs] == [{"dataset": "aaa"}, {"dataset": "bbb"}]
    assert runs[1].trigger == "dataset:ingest/raw" and p.output(second, "note") == "upstream bbb"
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:on_dataset", "dataset", "no-experiment")
    assert err.value.field == "spec"
    with pytest.raises(InvalidInput) as err:
        p.add_schedule("tests.test_pipelines_defs:on_dataset", "lake", "x")
    assert err.value.field == "kind"
    p.remove_schedule(sch.id)


def test_a_run_each_time_a_training_set_changes(services: Services, tmp_path: Path) -> None:
    import polars as pl

    from mlbox.features import Entity, FeatureView, Field, ParquetSource

    t0 = dt.datetime(2024, 3, 1)
    pl.DataFrame({"u": [1, 2], "ts": [t0, t0], "x": [1.0, 2.0], "z": [5, 6]}).write_parquet(
        tmp_path / "s.parquet"
    )
    fs, p = services.features, services.pipelines
    fs.apply(
        [
            Entity("user", "u"),
            FeatureView("fv", ["user"], ParquetSource(tmp_path / "s.parquet"), "ts", [Field("x")]),
        ]
    )
    ent = pl.DataFrame({"u": [1, 2], "event_timestamp": [t0 + dt.timedelta(hours=1)] * 2})
    sch = p.add_schedule("tests.test_pipelines_defs:on_training_set", "training_set", "churn")
    assert p.fire_triggers() == []
    first_ts = fs.get_historical_features(ent, ["fv:x"], name="churn").training_set_id
    (first,) = p.fire_triggers()
    fs.get_historical_features(ent, ["fv:x"], name="churn").to_polars()  # rebuilt, same content
    assert p.fire_triggers() == []
    fs.get_historical_features(ent, ["fv:x"], name="other").to_polars()  # another name
    assert p.fire_triggers() == []
    ent2 = pl.DataFrame({"u": [1], "event_timestamp": [t0 + dt.timedelta(hours=2)]})
    second_ts = fs.get_historical_features(ent2, ["fv:x"], name="churn").training_set_id
    (second,) = p.fire_triggers()
    runs = [p.wait(i, timeout_s=30) for i in (first, second)]
    assert [r.params for r in runs] == [{"training_set": str(first_ts)}, {"training_set": str(second_ts)}]
    assert runs[1].trigger == "training_set:churn"
    p.remove_schedule(sch.id)
