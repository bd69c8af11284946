"""`import mlbox`: the MLflow-like client, in this process and in real child processes."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import mlbox
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking.service import TrackingService

QUICK: dict[str, Any] = {"log_code": False, "log_environment": False}


@pytest.fixture
def tracking(services: Services) -> TrackingService:
    """A second view of the same home, as another process would see it."""
    return services.tracking


def test_run_as_context_manager_finishes_and_flushes(tracking: TrackingService) -> None:
    with mlbox.start_run("first", experiment="exp", tags={"k": "v"}, **QUICK) as run:
        assert mlbox.active_run() is run
        mlbox.log_params({"lr": 0.01, "layers": 3})
        mlbox.log_param("opt", "adam")
        mlbox.set_tag("stage", "dev")
        mlbox.set_tags({"owner": "ana"})
        for step in range(1000):
            mlbox.log_metric("loss", 1 / (step + 1), step=step)
        mlbox.log_metrics({"acc": 0.5, "f1": 0.4}, step=0)
        mlbox.log_text("hello", "notes/hello.txt")
    assert mlbox.active_run() is None
    got = tracking.get_run(run.id)
    assert (got.name, got.experiment, got.status) == ("first", "exp", "finished")
    assert got.end_time is not None
    assert got.params == {"lr": "0.01", "layers": "3", "opt": "adam"}
    assert got.tags == {"k": "v", "stage": "dev", "owner": "ana"}
    series = tracking.metric_series(run.id, "loss")
    assert list(series.steps) == list(range(1000))
    assert series.values[-1] == pytest.approx(1 / 1000)
    assert got.metrics == {"loss": pytest.approx(0.001), "acc": 0.5, "f1": 0.4}
    assert b"".join(tracking.read_artifact(run.id, "notes/hello.txt")) == b"hello"


def test_exception_marks_failed_and_propagates(tracking: TrackingService) -> None:
    with pytest.raises(ZeroDivisionError), mlbox.start_run(**QUICK) as run:
        mlbox.log_metric("x", 1.0)
        _ = 1 / 0
    got = tracking.get_run(run.id)
    assert got.status == "failed"
    assert got.metrics == {"x": 1.0}  # logged before the failure, still flushed
    assert mlbox.active_run() is None


def test_keyboard_interrupt_marks_killed(tracking: TrackingService) -> None:
    with pytest.raises(KeyboardInterrupt), mlbox.start_run(**QUICK) as run:
        raise KeyboardInterrupt
    assert tracking.get_run(run.id).status == "killed"


def test_one_active_run_at_a_time(tracking: TrackingService) -> None:
    run = mlbox.start_run(**QUICK)
    with pytest.raises(Conflict) as err:
        mlbox.start_run(**QUICK)
    assert err.value.field == "run" and str(run.id) in err.value.message
    ended = mlbox.end_run()
    assert ended is not None and ended.status == "finished"
    assert mlbox.end_run() is None  # nothing active: a no-op
    assert tracking.search_runs().total == 1


def test_end_run_takes_mlflows_spelling_and_refuses_a_bad_status_before_ending(
    tracking: TrackingService,
) -> None:
    run = mlbox.start_run(**QUICK)
    mlbox.log_metric("loss", 0.5)
    for bad in ("DONE", "running", 3):
        with pytest.raises(InvalidInput) as err:
            mlbox.end_run(bad)  # type: ignore[arg-type]
        assert err.value.field == "status" and "finished" in err.value.message
        active = mlbox.active_run()
        assert active is not None and active.id == run.id  # still active: nothing was dropped
    assert tracking.get_run(run.id).status == "running"
    ended = mlbox.end_run("FINISHED")  # MLflow's spelling
    assert ended is not None and ended.status == "finished"
    assert mlbox.active_run() is None
    assert [p.value for p in tracking.metric_history(run.id, "loss")] == [0.5]
    again = mlbox.start_run(**QUICK)
    assert mlbox.end_run(" Killed ") is not None and tracking.get_run(again.id).status == "killed"


@pytest.mark.parametrize(
    "call",
    [
        lambda: mlbox.log_metric("a", 1.0),
        lambda: mlbox.log_metrics({"a": 1.0}),
        lambda: mlbox.log_param("a", 1),
        lambda: mlbox.log_params({"a": 1}),
        lambda: mlbox.set_tag("a", 1),
        lambda: mlbox.set_tags({"a": 1}),
        lambda: mlbox.log_text("x", "a.txt"),
        lambda: mlbox.log_artifact(__file__),
        lambda: mlbox.log_dataset(np.zeros(3)),
    ],
    ids=[
        "log_metric",
        "log_metrics",
        "log_param",
        "log_params",
        "set_tag",
        "set_tags",
        "log_text",
        "log_artifact",
        "log_dataset",
    ],
)
def test_logging_without_a_run_is_a_conflict(home: Path, call: object) -> None:
    with pytest.raises(Conflict) as err:
        call()  # type: ignore[operator]
    assert "start_run" in err.value.message


def test_default_step_counts_per_key(tracking: TrackingService) -> None:
    with mlbox.start_run(**QUICK) as run:
        for _ in range(3):
            mlbox.log_metric("a", 1.0)
        mlbox.log_metric("b", 2.0)
        mlbox.log_metric("a", 1.0, step=10)
        mlbox.log_metric("a", 1.0)  # continues after the explicit step
        mlbox.log_metrics({"a": 1.0, "b": 2.0})
        mlbox.flush()
        assert list(tracking.metric_series(run.id, "a").steps) == [0, 1, 2, 10, 11, 12]
        assert list(tracking.metric_series(run.id, "b").steps) == [0, 1]


def test_flush_makes_points_visible_to_other_readers(tracking: TrackingService) -> None:
    with mlbox.start_run(**QUICK) as run:
        for i in range(500):
            mlbox.log_metric("m", float(i))
        mlbox.flush()
        assert len(tracking.metric_series(run.id, "m")) == 500
        assert tracking.get_run(run.id).status == "running"


@pytest.mark.parametrize("value", ["0.5", None, True, object()])
def test_bad_metric_values_are_refused_at_once(tracking: TrackingService, value: object) -> None:
    with mlbox.start_run(**QUICK) as run:
        with pytest.raises(InvalidInput) as err:
            mlbox.log_metric("val_acc", value)  # type: ignore[arg-type]
        assert err.value.field == "metrics.val_acc"
        with pytest.raises(InvalidInput):
            mlbox.log_metric("ok", 1.0, step="3")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            mlbox.log_metric("", 1.0)
        with pytest.raises(InvalidInput):
            mlbox.log_metrics([("a", 1.0)])  # type: ignore[arg-type]
        mlbox.log_metric("fine", np.float64(0.25))
    assert tracking.get_run(run.id).metrics == {"fine": 0.25}


def test_param_logged_again_with_another_value(tracking: TrackingService) -> None:
    with mlbox.start_run(**QUICK):
        mlbox.log_param("lr", 0.1)
        mlbox.log_param("lr", 0.1)
        with pytest.raises(Conflict) as err:
            mlbox.log_param("lr", 0.2)
        assert err.value.field == "lr"


def test_mlbox_run_id_attaches_to_an_existing_run(
    tracking: TrackingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tracking.create_run("jobs", "scheduled")
    monkeypatch.setenv("MLBOX_RUN_ID", str(existing.id))
    with mlbox.start_run(tags={"attempt": 1}) as run:
        assert run.id == existing.id
        mlbox.log_metric("loss", 0.5)
    got = tracking.get_run(existing.id)
    assert (got.status, got.metrics, got.tags) == ("finished", {"loss": 0.5}, {"attempt": "1"})
    assert tracking.search_runs().total == 1  # no second run was made
    monkeypatch.setenv("MLBOX_RUN_ID", "not-a-number")
    with pytest.raises(InvalidInput) as err:
        mlbox.start_run()
    assert err.value.field == "run_id"
    monkeypatch.setenv("MLBOX_RUN_ID", "999999")
    with pytest.raises(NotFound):
        mlbox.start_run()
    assert mlbox.active_run() is None


def test_inside_a_job_logging_without_start_run_goes_to_the_jobs_run(
    tracking: TrackingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tracking.create_run("jobs", "scheduled")
    monkeypatch.setenv("MLBOX_RUN_ID", str(existing.id))
    mlbox.log_metric("loss", 0.25)
    mlbox.log_param("lr", 0.1)
    mlbox.end_run()
    got = tracking.get_run(existing.id)
    assert (got.metrics, got.params) == ({"loss": 0.25}, {"lr": "0.1"})
    assert tracking.search_runs().total == 1
    monkeypatch.delenv("MLBOX_RUN_ID")
    with pytest.raises(Conflict):  # outside a job there is still no implicit run
        mlbox.log_metric("loss", 0.5)


def test_experiment_from_the_environment_and_set_experiment(
    tracking: TrackingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLBOX_EXPERIMENT", "from-env")
    with mlbox.start_run(**QUICK) as a:
        pass
    mlbox.set_experiment("chosen")
    with mlbox.start_run(**QUICK) as b:
        pass
    with pytest.raises(InvalidInput):
        mlbox.set_experiment("")
    assert tracking.get_run(a.id).experiment == "from-env"
    assert tracking.get_run(b.id).experiment == "chosen"


def test_set_home_points_the_client_elsewhere(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    client = mlbox.set_home(other)
    assert client.settings.home == other
    with mlbox.start_run(**QUICK) as run, pytest.raises(Conflict):
        mlbox.set_home(home)
    assert Services.open(Settings(home=other)).tracking.get_run(run.id).status == "finished"
    assert not (home / "mlbox.db").exists()


def test_log_dataset_versions(tracking: TrackingService, tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    p1 = tmp_path / "train.parquet"
    frame.write_parquet(p1)
    copy = tmp_path / "copy" / "train.parquet"
    copy.parent.mkdir()
    shutil.copy(p1, copy)
    p2 = tmp_path / "other.parquet"
    frame.with_columns(pl.col("x") * 2).write_parquet(p2)
    folder = tmp_path / "images"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "1.png").write_bytes(b"cat")
    (folder / "2.png").write_bytes(b"dog")
    folder_copy = tmp_path / "images-copy"
    shutil.copytree(folder, folder_copy)
    arr = np.arange(12, dtype=np.float32).reshape(4, 3)

    with mlbox.start_run(**QUICK) as run:
        file_v = mlbox.log_dataset(p1)
        copy_v = mlbox.log_dataset(copy, "train-copy")
        other_v = mlbox.log_dataset(p2, context="eval")
        folder_v = mlbox.log_dataset(folder, "images")
        folder_copy_v = mlbox.log_dataset(folder_copy, "images-copy")
        (folder_copy / "cats" / "1.png").write_bytes(b"kitten")
        folder_changed_v = mlbox.log_dataset(folder_copy, "images-changed")
        frame_v = mlbox.log_dataset(frame, "frame")
        frame_same_v = mlbox.log_dataset(frame.clone(), "frame-same")
        frame_diff_v = mlbox.log_dataset(frame.with_columns(pl.col("y").str.to_uppercase()), "frame-diff")
        arr_v = mlbox.log_dataset(arr, "arr")
        arr_same_v = mlbox.log_dataset(arr.copy(), "arr-same")
        arr_diff_v = mlbox.log_dataset(arr + 1, "arr-diff")
        arr_dtype_v = mlbox.log_dataset(arr.astype(np.float64), "arr-dtype")
        with pytest.raises(InvalidInput) as err:
            mlbox.log_dataset({"x": [1]}, "dict")
        assert err.value.field == "data"
        with pytest.raises(NotFound):
            mlbox.log_dataset(tmp_path / "missing.parquet")

    assert (file_v.name, file_v.rows, file_v.context) == ("train.parquet", 3, "training")
    assert file_v.schema == {"x": "int64", "y": "large_string"}
    assert file_v.source == str(p1.resolve())
    assert copy_v.digest == file_v.digest
    assert other_v.digest != file_v.digest and other_v.context == "eval"
    assert folder_copy_v.digest == folder_v.digest
    assert folder_changed_v.digest != folder_v.digest
    assert frame_same_v.digest == frame_v.digest and frame_v.rows == 3
    assert frame_diff_v.digest != frame_v.digest
    assert arr_same_v.digest == arr_v.digest and arr_v.rows == 4
    assert arr_diff_v.digest != arr_v.digest
    assert arr_dtype_v.digest != arr_v.digest
    stored = {d.name: d.digest for d in tracking.list_datasets(run.id)}
    assert stored["train.parquet"] == file_v.digest and stored["arr"] == arr_v.digest
    assert len(stored) == 13


# -- in child processes -------------------------------------------------------------------------


def _run_script(script: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    out = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_and_environment_are_recorded(
    tracking: TrackingService, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.yaml").write_text("lr: 0.01\n")
    (repo / "train.py").write_text(
        textwrap.dedent(
            """
            import mlbox

            with mlbox.start_run() as run:
                print(run.id)
            """
        )
    )
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    sha = _git(repo, "rev-parse", "HEAD")
    (repo / "config.yaml").write_text("lr: 0.01\nbatch: 4096\n")  # an uncommitted change

    elsewhere = tmp_path / "cwd"  # the script's folder counts, not the working directory
    elsewhere.mkdir()
    proc = _run_script(repo / "train.py", subprocess_env, elsewhere)
    assert proc.returncode == 0, proc.stderr
    run_id = int(proc.stdout.strip())

    detail = tracking.run_detail(run_id)
    assert (detail.run.git_sha, detail.run.git_dirty) == (sha, True)
    diff = b"".join(tracking.read_artifact(run_id, "code/diff.patch")).decode()
    assert "+batch: 4096" in diff and "config.yaml" in diff
    env = detail.environment
    assert env["python"] == platform.python_version()
    assert env["cpus"] == os.cpu_count()
    assert env["host"] == socket.gethostname()
    assert isinstance(env["gpus"], list)
    reqs = b"".join(tracking.read_artifact(run_id, "environment/requirements.txt")).decode().splitlines()
    assert f"mlbox=={mlbox.__version__}" in reqs
    assert any(line.startswith("polars==") for line in reqs)

    _git(repo, "commit", "-q", "-am", "second")  # clean now: no diff is kept
    proc = _run_script(repo / "train.py", subprocess_env, elsewhere)
    assert proc.returncode == 0, proc.stderr
    clean = tracking.run_detail(int(proc.stdout.strip()))
    assert (clean.run.git_sha, clean.run.git_dirty) == (_git(repo, "rev-parse", "HEAD"), False)
    assert "code/diff.patch" not in {a.path for a in clean.artifacts}


def test_interpreter_exit_flushes_and_finishes(
    tracking: TrackingService, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "no_end.py"
    script.write_text(
        textwrap.dedent(
            """
            import mlbox

            run = mlbox.start_run(log_code=False, log_environment=False)
            for step in range(20_000):
                mlbox.log_metric("loss", step * 0.5)
            print(run.id, flush=True)
            # no end_run, no flush: leaving the interpreter must do both
            """
        )
    )
    proc = _run_script(script, subprocess_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id = int(proc.stdout.strip())
    run = tracking.get_run(run_id)
    assert run.status == "finished"
    series = tracking.metric_series(run_id, "loss")
    assert list(series.steps) == list(range(20_000))
    assert series.values[-1] == 19_999 * 0.5


def test_uncaught_exception_at_top_level_fails_the_run(
    tracking: TrackingService, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "boom.py"
    script.write_text(
        textwrap.dedent(
            """
            import mlbox

            run = mlbox.start_run(log_code=False, log_environment=False)
            mlbox.log_metric("loss", 1.0)
            print(run.id, flush=True)
            raise RuntimeError("training diverged")
            """
        )
    )
    proc = _run_script(script, subprocess_env, tmp_path)
    assert proc.returncode == 1
    assert "training diverged" in proc.stderr
    run_id = int(proc.stdout.strip())
    run = tracking.get_run(run_id)
    assert run.status == "failed"
    assert run.metrics == {"loss": 1.0}
