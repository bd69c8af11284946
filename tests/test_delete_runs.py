"""Deleting, restoring and purging runs and experiments in the tracking service, over a real
SQLite file: what listings hide, what a restore brings back, what the purge removes and what
it keeps (running runs, runs something registered a need for since)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbox.services import Services
from mlbox.store import ArtifactStore, Database
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking.service import TrackingService

DAY = 86_400.0


@pytest.fixture
def tracking(tmp_path: Path) -> TrackingService:
    return TrackingService(Database(tmp_path / "db.sqlite"), ArtifactStore(tmp_path / "artifacts"))


def _run(tracking: TrackingService, experiment: str = "exp", *, end: bool = True) -> int:
    run = tracking.create_run(experiment)
    tracking.log_params(run.id, {"lr": 0.1})
    if end:
        tracking.end_run(run.id)
    return run.id


def test_a_deleted_run_leaves_default_listings_and_comes_back(tracking: TrackingService) -> None:
    a, b = _run(tracking), _run(tracking)
    deleted = tracking.delete_run(a, now=1000.0)
    assert deleted.deleted_at == 1000.0
    assert [r.id for r in tracking.search_runs().runs] == [b]
    assert [r.id for r in tracking.search_runs(lifecycle="deleted").runs] == [a]
    assert sorted(r.id for r in tracking.search_runs(lifecycle="all").runs) == [a, b]
    assert tracking.get_experiment("exp").run_count == 1
    assert tracking.get_run(a).params == {"lr": "0.1"}  # still readable by id
    assert tracking.delete_run(a, now=2000.0).deleted_at == 1000.0  # again: nothing changes
    assert tracking.restore_run(a).deleted_at is None
    assert tracking.search_runs().total == 2
    with pytest.raises(InvalidInput) as err:
        tracking.search_runs(lifecycle="gone")  # type: ignore[arg-type]
    assert err.value.field == "lifecycle"
    with pytest.raises(NotFound):
        tracking.delete_run(999)


def test_an_experiment_restores_with_the_runs_deleted_with_it(tracking: TrackingService) -> None:
    alone, a, b = _run(tracking), _run(tracking), _run(tracking)
    tracking.delete_run(alone, now=100.0)
    exp = tracking.delete_experiment("exp", now=200.0)
    assert exp.deleted_at == 200.0 and exp.run_count == 2
    assert [e.name for e in tracking.list_experiments()] == []
    assert [e.name for e in tracking.list_experiments("deleted")] == ["exp"]
    assert tracking.search_runs().total == 0
    with pytest.raises(Conflict, match="restore the experiment"):
        tracking.restore_run(a)
    with pytest.raises(Conflict, match="is deleted"):
        tracking.create_run("exp")
    with pytest.raises(Conflict, match="deleted: restore it"):
        tracking.create_experiment("exp")
    tracking.restore_experiment("exp")
    assert sorted(r.id for r in tracking.search_runs().runs) == [a, b]  # not the one deleted alone
    assert tracking.get_run(alone).deleted_at == 100.0
    tracking.get_or_create_experiment("Default")
    with pytest.raises(Conflict, match="Default"):
        tracking.delete_experiment("Default")


def test_dependents_refuse_a_deletion_and_name_themselves(tracking: TrackingService) -> None:
    needed, free = _run(tracking), _run(tracking)
    tracking.run_dependents.add("test", lambda ids: [f"record 7 names run {i}" for i in ids if i == needed])
    with pytest.raises(Conflict) as err:
        tracking.delete_run(needed)
    assert err.value.message == f"cannot delete run {needed}: record 7 names run {needed}"
    assert err.value.field == "run_id"
    with pytest.raises(Conflict, match=f"cannot delete experiment 'exp': record 7 names run {needed}"):
        tracking.delete_experiment("exp")
    assert tracking.get_experiment("exp").deleted_at is None  # nothing half done
    assert tracking.get_run(free).deleted_at is None
    tracking.delete_run(free)


def test_purge_removes_what_the_retention_let_go(tracking: TrackingService, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("hello")
    old, recent, running = _run(tracking, "a"), _run(tracking, "a"), _run(tracking, "a", end=False)
    tracking.log_artifact(old, tmp_path / "f.txt")
    gone_exp_run = _run(tracking, "b")
    tracking.delete_run(old, now=0.0)
    tracking.delete_run(running, now=0.0)
    tracking.delete_run(recent, now=29 * DAY)
    tracking.delete_experiment("b", now=0.0)
    assert tracking.referenced_objects() != set()
    dry = tracking.purge_deleted(older_than_s=30 * DAY, now=31 * DAY, dry_run=True)
    assert (dry.runs, dry.experiments) == ([old, gone_exp_run], [tracking.get_experiment("b").id])
    assert tracking.get_run(old).id == old  # a dry run removes nothing
    done = tracking.purge_deleted(older_than_s=30 * DAY, now=31 * DAY)
    assert done == dry
    assert done.kept == [f"run {running} is still running"]
    for gone in (old, gone_exp_run):
        with pytest.raises(NotFound):
            tracking.get_run(gone)
    with pytest.raises(NotFound):
        tracking.get_experiment("b")
    assert tracking.referenced_objects() == set()
    assert tracking.get_run(recent).deleted_at == 29 * DAY
    tracking.run_dependents.add("late", lambda ids: ["a record made since"] if recent in ids else [])
    later = tracking.purge_deleted(older_than_s=30 * DAY, now=60 * DAY)
    assert later.runs == [] and f"run {recent}: a record made since" in later.kept
    with pytest.raises(InvalidInput):
        tracking.purge_deleted(older_than_s=-1)


def test_a_feature_training_set_keeps_its_run(services: Services, tmp_path: Path) -> None:
    """The composition root wires the feature store's check: its records name their run."""
    import datetime as dt

    import polars as pl

    from tests.test_features_delete import T0, definitions

    fs, tracking = services.features, services.tracking
    fs.apply(definitions(tmp_path))  # type: ignore[arg-type]
    run = tracking.create_run("train")
    entity = pl.DataFrame({"customer_id": [1, 2], "event_timestamp": [T0 + dt.timedelta(hours=6)] * 2})
    ts = fs.get_historical_features(entity, ["stats:spend"], run_id=run.id).training_set_id
    with pytest.raises(Conflict) as err:
        tracking.delete_run(run.id)
    assert err.value.message == f"cannot delete run {run.id}: training set {ts} was built for run {run.id}"
    assert tracking.delete_run(tracking.create_run("train").id).deleted_at is not None


def test_a_running_sweep_keeps_its_trials_runs(gpu_services: Services, loop: None, tmp_path: Path) -> None:
    """The composition root wires the sweeps' check: a live sweep's trial runs stay."""
    import sys
    import time

    from mlbox.sweeps.schemas import SweepSpec

    sweeps, tracking = gpu_services.sweeps, gpu_services.tracking
    sweep = sweeps.create(
        SweepSpec(
            metric="loss",
            command=[sys.executable, "-c", "import time; time.sleep(60)", "{x}"],
            space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
            n_trials=1,
            parallel=1,
            workdir=str(tmp_path),
        )
    )
    deadline = time.monotonic() + 60
    while (run_id := sweeps.trials(sweep.id)[0].run_id) is None:
        assert time.monotonic() < deadline, "the trial never got its run"
        time.sleep(0.05)
    with pytest.raises(Conflict, match=f"trial 0 of running sweep {sweep.id} logs to run {run_id}"):
        tracking.delete_run(run_id)
    sweeps.stop(sweep.id)


def test_a_label_export_keeps_the_run_that_records_its_dataset(services: Services, tmp_path: Path) -> None:
    """The composition root wires labeling's check: an export's run holds its dataset's lineage."""
    lab, tracking = services.labeling, services.tracking
    lab.create_project("pets", {"choices": ["cat", "dog"]})
    lab.add_tasks("pets", [{"text": "a cat"}])
    (task,) = lab.next_tasks("pets", "ann")
    lab.annotate(task.id, "ann", {"label": "cat"})
    result = lab.export("pets", tmp_path / "pets.parquet")
    assert result.run_id is not None
    with pytest.raises(
        Conflict, match=f"label export 1 of project 'pets' .* is recorded in run {result.run_id}"
    ):
        tracking.delete_run(result.run_id)
