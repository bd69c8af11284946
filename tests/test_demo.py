"""`mlbox demo --quick` end to end: a real subprocess builds a training set in the feature store,
trains as scheduler jobs, sweeps, registers and serves; we read it all back.

The models are checked by loading their artifact bytes and scoring them again
on the demo's validation split: the accuracy must be good and equal to the
one the run logged (the artifact is the model that produced the metrics).
The registered champion and challenger are checked the same way, loaded
through the registry as serving loads them. The jobs, the sweep and the
training-set record are read back through their services.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlbox.demo.digits import load_digits_xy, load_split, read_split
from mlbox.demo.evaluation import evaluate
from mlbox.demo.featureset import PIXELS_VIEW, STATS_VIEW, TRAINING_SET_NAME, entity_frame
from mlbox.demo.registration import CHALLENGER, CHAMPION, EXAMPLE_ROWS, MODEL_NAME
from mlbox.demo.scheduling import TRAIN_FUNCTION
from mlbox.demo.sweep import METRIC, SWEEP_EXPERIMENT, SWEEP_NAME, size, units_done
from mlbox.demo.trials import CONFUSION, EXPERIMENT, MANIFEST, plan, trial_from_kwargs, trial_kwargs
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.tracking.schemas import Run

MLBOX = Path(sys.executable).parent / "mlbox"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the quick demo once for the module; returns its home and stdout (and checks its time)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    env = dict(os.environ, MLBOX_HOME=str(home))
    env.pop("MLBOX_RUN_ID", None)
    env.pop("MLBOX_EXPERIMENT", None)
    started = time.monotonic()
    proc = subprocess.run(
        [str(MLBOX), "demo", "--quick"],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    elapsed = time.monotonic() - started
    # Sized for ~30 s on an idle 2-core machine; every job pays torch's or scikit-learn's import,
    # which takes several times longer when the machine is shared.
    assert elapsed < 150, f"mlbox demo --quick took {elapsed:.1f} s"
    return home, proc.stdout


@pytest.fixture
def services_of(demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Services:
    monkeypatch.setenv("MLBOX_HOME", str(demo[0]))
    return Services.open(Settings.from_env())


def _runs(services: Services) -> list[Run]:
    return services.tracking.search_runs("", experiments=[EXPERIMENT], limit=100).runs


def _training_set_id(services: Services) -> int:
    [record] = services.features.training_sets()
    return record.id


def test_every_planned_trial_is_a_finished_run(services_of: Services) -> None:
    runs = _runs(services_of)
    assert sorted(r.name for r in runs) == sorted(t.name for t in plan(quick=True))
    assert {r.status for r in runs} == {"finished"}
    training_set = _training_set_id(services_of)
    for r in runs:
        assert r.end_time is not None and r.end_time >= r.start_time
        assert r.params["model"] in {"torch-mlp", "sklearn-logreg", "sklearn-forest"}
        assert r.tags["demo"] == "digits"
        assert len(r.tags["train_data"]) == 12
        assert r.tags["training_set"] == str(training_set)


def test_each_trial_ran_as_a_job_that_logged_to_its_own_run(services_of: Services) -> None:
    scheduler = services_of.scheduler
    jobs = [j for j in scheduler.list_jobs() if j.spec.function == TRAIN_FUNCTION]
    runs = {r.id: r for r in _runs(services_of)}
    assert sorted(j.spec.name for j in jobs) == sorted(t.name for t in plan(quick=True))
    for job in jobs:
        assert (job.state, job.exit_code, job.attempt) == ("succeeded", 0, 1), job
        assert job.spec.owner is None and job.spec.experiment == EXPERIMENT
        assert job.spec.resources.cpus == 1
        assert job.run_id in runs and runs[job.run_id].name == job.spec.name
        assert runs[job.run_id].tags["mlbox.job_id"] == str(job.id)
        assert job.started_at is not None and job.finished_at is not None
        # the job's process, not the demo's, did the training: its run was attached to the job's pid
        assert runs[job.run_id].metrics["val_acc"] is not None
        trial = trial_from_kwargs(
            job.spec.kwargs["name"], job.spec.kwargs["family"], job.spec.kwargs["config"]
        )
        assert trial_kwargs(trial) == {k: v for k, v in job.spec.kwargs.items() if k != "data"}
        assert len(services_of.tracking.metric_series(job.run_id, "val_acc")) == trial.units


def test_metrics_have_one_validation_point_per_epoch(services_of: Services) -> None:
    tracking = services_of.tracking
    by_name = {r.name: r for r in _runs(services_of)}
    split = load_split()
    for trial in plan(quick=True):
        run = by_name[trial.name]
        val_acc = tracking.metric_series(run.id, "val_acc")
        assert len(val_acc) == trial.units, trial.name
        assert all(0.0 <= v <= 1.0 for v in val_acc.values)
        assert len(tracking.metric_series(run.id, "val_loss")) == trial.units
        if trial.family == "torch-mlp":
            batches = math.ceil(len(split.y_train) / int(run.params["batch_size"]))
            train_loss = tracking.metric_series(run.id, "train_loss")
            assert list(train_loss.steps) == list(range(trial.units * batches))
            assert int(run.params["epochs"]) == trial.units
        # the run's latest val_acc is the last epoch's
        latest = {m.key: m for m in tracking.metric_keys(run.id)}["val_acc"]
        assert (latest.last, latest.count) == (val_acc.values[-1], trial.units)
        assert run.metrics["val_acc"] == pytest.approx(latest.last, rel=1e-12)


def test_datasets_are_versioned_by_content(services_of: Services) -> None:
    split = load_split()
    digests: set[tuple[str, str]] = set()
    training_set = _training_set_id(services_of)
    for run in _runs(services_of):
        sets = {d.context: d for d in services_of.tracking.list_datasets(run.id)}
        assert set(sets) == {"training", "validation"}
        for d in sets.values():
            assert d.source.startswith(f"mlbox feature store: training set {training_set} ("), d.source
        assert sets["training"].rows == len(split.y_train)
        assert sets["validation"].rows == len(split.y_val)
        assert "label" in sets["training"].schema
        for d in sets.values():
            assert len(d.digest) == 64 and int(d.digest, 16) >= 0
            digests.add((d.context, d.digest))
        assert run.tags["train_data"] == sets["training"].digest[:12]
    # every run saw the same split: one version per context
    assert len(digests) == 2


def test_model_artifacts_load_and_reproduce_the_logged_accuracy(services_of: Services) -> None:
    import torch

    from mlbox.demo.mlp import build_mlp, predict_proba

    tracking = services_of.tracking
    split = load_split()
    by_name = {r.name: r for r in _runs(services_of)}
    for trial in plan(quick=True):
        run = by_name[trial.name]
        paths = {a.path for a in tracking.list_artifacts(run.id)}
        assert {trial.model_path, MANIFEST, CONFUSION} <= paths
        data = b"".join(tracking.read_artifact(run.id, trial.model_path))
        if trial.family == "torch-mlp":
            state = torch.load(io.BytesIO(data), weights_only=True)
            model = build_mlp(int(run.params["hidden"]))
            model.load_state_dict(state)
            proba = predict_proba(model, split.x_val)
        else:
            proba = pickle.loads(data).predict_proba(split.x_val)
        accuracy = evaluate(split.y_val, proba).accuracy
        assert accuracy > 0.8, trial.name
        assert accuracy == pytest.approx(run.metrics["val_acc"], abs=1e-9), trial.name
        confusion = b"".join(tracking.read_artifact(run.id, CONFUSION)).decode().splitlines()
        assert len(confusion) == 11
        assert sum(int(v) for line in confusion[1:] for v in line.split(",")[1:]) == len(split.y_val)


def test_stdout_summarizes_and_says_what_to_open(demo: tuple[Path, str], services_of: Services) -> None:
    home, out = demo
    runs = _runs(services_of)
    best = max(sorted(runs, key=lambda r: r.id), key=lambda r: r.metrics["val_acc"] or 0.0)  # first on ties
    for r in runs:
        assert r.name in out
    assert "★ best" in out
    assert "mlbox runs ls -e digits-demo" in out
    assert f"mlbox runs show {best.id}" in out
    assert "mlbox up" in out
    assert f'curl -H "Authorization: Bearer $(cat {home / "token"})"' in out
    assert f"/api/v1/runs/{best.id}" in out
    assert f"export MLBOX_HOME={home}" in out
    assert f"mlbox models show {MODEL_NAME}@{CHAMPION}" in out
    for command in ("mlbox jobs ls", "mlbox sweeps ls", "mlbox features ls"):
        assert command in out


def _ranked(services: Services) -> list[Run]:
    """Best val_acc first, ties to the earlier run: the demo's own order."""
    return sorted(_runs(services), key=lambda r: (-(r.metrics["val_acc"] or 0.0), r.id))


def test_best_two_runs_are_registered_as_champion_and_challenger(
    demo: tuple[Path, str], services_of: Services
) -> None:
    registry = services_of.registry
    best, runner_up = _ranked(services_of)[:2]
    model = registry.get_model(MODEL_NAME)
    assert (model.version_count, model.aliases) == (2, {CHAMPION: 1, CHALLENGER: 2})
    champion, challenger = registry.list_versions(MODEL_NAME)
    for mv, run in ((champion, best), (challenger, runner_up)):
        assert (mv.run_id, mv.lineage.source) == (run.id, f"run:{run.id}/model")
        assert mv.lineage.experiment == EXPERIMENT
        assert {d.context for d in mv.lineage.datasets} == {"training", "validation"}
        # registering copied nothing: the version's files are the run's logged blobs
        logged = {
            a.path.removeprefix("model/"): a.sha256 for a in services_of.tracking.list_artifacts(run.id)
        }
        assert {f.path: f.sha256 for f in mv.files}.items() <= logged.items()
        assert mv.signature is not None
        [spec] = mv.signature.inputs.tensors
        assert (spec.dtype, spec.shape) == ("float32", [-1, 64])
        assert mv.signature.outputs is not None and mv.signature.outputs.tensors[0].shape == [-1]
    moves = registry.alias_history(MODEL_NAME)
    assert [(m.alias, m.from_version, m.to_version) for m in moves] == [
        (CHAMPION, None, 1),
        (CHALLENGER, None, 2),
    ]
    out = demo[1]
    assert f"{MODEL_NAME} version 1 @{CHAMPION}" in out and f"{MODEL_NAME} version 2 @{CHALLENGER}" in out
    assert f"{CHAMPION} = version 1 (run {best.id}), {CHALLENGER} = version 2 (run {runner_up.id})" in out


def test_registered_models_load_and_predict_the_validation_set(services_of: Services) -> None:
    split = load_split()
    best, runner_up = _ranked(services_of)[:2]
    for ref, run in ((f"{MODEL_NAME}@{CHAMPION}", best), (f"{MODEL_NAME}@{CHALLENGER}", runner_up)):
        loaded = services_of.registry.load(ref)
        labels = np.asarray(loaded.predict(split.x_val))
        assert labels.shape == (len(split.y_val),) and labels.dtype.kind == "i", ref
        assert float((labels == split.y_val).mean()) == pytest.approx(run.metrics["val_acc"], abs=1e-9), ref
        # float64 rows (what JSON gives) are cast by the signature check, and predict the same
        assert np.array_equal(
            loaded.predict(split.x_val[:EXAMPLE_ROWS].astype(np.float64)), labels[:EXAMPLE_ROWS]
        )


def test_every_run_model_folder_is_registrable(services_of: Services) -> None:
    """Not only the two registered: each run's ``model/`` loads through the registry, torch included."""
    split = load_split()
    registry = services_of.registry
    families = set()
    for run in _runs(services_of):
        mv = registry.register("every-run", run_id=run.id, example_input=split.x_val[:2])
        labels = np.asarray(registry.load(mv).predict(split.x_val))
        assert float((labels == split.y_val).mean()) == pytest.approx(run.metrics["val_acc"], abs=1e-9)
        families.add((mv.flavor, mv.manifest.get("form")))
    assert families == {("pytorch", "state_dict"), ("sklearn", None)}


def test_quick_plan_is_a_subset_sized_for_a_smoke_run() -> None:
    quick, full = plan(quick=True), plan(quick=False)
    assert sum(t.units for t in quick) < sum(t.units for t in full) / 4
    assert {t.family for t in quick} == {t.family for t in full}
    assert len({t.name for t in full}) == len(full)


def test_serving_step_scored_the_champion_over_http_and_logged_it(
    demo: tuple[Path, str], services_of: Services
) -> None:
    from mlbox.demo.serving import INSTANCES_PER_REQUEST, OIP_REQUESTS_QUICK
    from mlbox.serving.predlog import read_predictions

    home, out = demo
    best = _ranked(services_of)[0]
    ref = f"{MODEL_NAME}@{CHAMPION}"
    assert f"served accuracy {best.metrics['val_acc']:.4f} on the validation set" in out
    assert "requests/s, p50" in out and "ms, p99" in out
    assert (
        f"curl -s -X POST http://127.0.0.1:5151/api/v1/models/{ref}/predict "
        "-H 'Content-Type: application/json' -d '{\"instances\": [[" in out
    )
    logged = read_predictions(home / "tables" / "predictions", MODEL_NAME)
    champion = logged.filter(~logged["shadow"])
    shadow = logged.filter(logged["shadow"])
    requests = OIP_REQUESTS_QUICK + 1 + math.ceil(len(load_split().y_val) / INSTANCES_PER_REQUEST)
    # the serve step's requests, each mirrored to the challenger and logged beside it (the
    # monitoring step scores a shifted batch afterwards: the log holds that too)
    assert f"{2 * requests} predictions logged ({requests} of them shadow copies" in out
    assert champion.height >= requests and set(champion["version"]) == {1}
    assert shadow.height == champion.height and set(shadow["version"]) == {2}


def test_training_set_was_built_in_the_feature_store(demo: tuple[Path, str], services_of: Services) -> None:
    """One point-in-time join over both views, a row per entity row, split as `load_split` splits."""
    features = services_of.features
    [record] = features.training_sets()
    entities = entity_frame(load_digits_xy()[1])
    assert record.name == TRAINING_SET_NAME
    assert record.entity_rows == record.row_count == entities.height == 1797
    assert {(v.name, v.version) for v in record.views} == {(PIXELS_VIEW, 1), (STATS_VIEW, 1)}
    assert len(record.features) == 66 and all("@v1" in f for f in record.features)
    assert record.columns[:3] == ["image_id", "event_timestamp", "label"]
    # what the jobs trained on is exactly the reference split (same rows, same order)
    saved = read_split(demo[0] / "demo" / "training-sets" / str(record.id))
    reference = load_split()
    assert saved.training_set_id == record.id
    for got, want in (
        (saved.x_train, reference.x_train),
        (saved.y_train, reference.y_train),
        (saved.x_val, reference.x_val),
        (saved.y_val, reference.y_val),
    ):
        assert np.array_equal(got, want)
    # materialized: every image is online, and the lookup shown on stdout agrees with the store
    fresh = {f.view: f.rows for f in features.freshness()}
    assert fresh == {PIXELS_VIEW: 1797, STATS_VIEW: 1797}
    online = features.get_online_features([{"image_id": 1}], [f"{STATS_VIEW}:ink"])
    out = demo[1]
    assert f"training set {record.id}: 1797 rows (entity frame 1797) from 2 views" in out
    assert f"image_id 1: ink {online['ink'][0]:.3f}" in " ".join(out.split())
    # the on-demand view reads the request's gain: computed at lookup time, never materialized
    on_demand = features.get_online_features([{"image_id": 1, "gain": 2.0}], ["scan_quality:ink_at_gain"])
    assert on_demand["ink_at_gain"][0] == pytest.approx(2 * online["ink"][0], rel=1e-6)
    assert f"ink_at_gain {1.5 * online['ink'][0]:.3f}" in " ".join(out.split())


def test_sweep_ran_its_trials_as_jobs(demo: tuple[Path, str], services_of: Services) -> None:
    sweeps, tracking = services_of.sweeps, services_of.tracking
    [sweep] = sweeps.list_sweeps()
    want = size(quick=True)
    assert (sweep.name, sweep.state, sweep.experiment) == (SWEEP_NAME, "finished", SWEEP_EXPERIMENT)
    assert (sweep.spec.n_trials, sweep.spec.pruner, sweep.spec.metric) == (want.n_trials, "asha", METRIC)
    trials = sweeps.trials(sweep.id)
    assert len(trials) == want.n_trials
    assert {t.state for t in trials} <= {"complete", "pruned"} and "complete" in {t.state for t in trials}
    for t in trials:
        assert t.job_id is not None and t.run_id is not None
        job = services_of.scheduler.get(t.job_id)
        assert job.spec.owner == f"sweep:{sweep.id}" and job.run_id == t.run_id
        run = tracking.get_run(t.run_id)
        assert run.experiment == SWEEP_EXPERIMENT
        assert float(run.params["lr"]) == t.params["lr"] and int(run.params["hidden"]) == t.params["hidden"]
        series = tracking.metric_series(t.run_id, METRIC)
        if t.state == "complete":
            assert (job.state, job.exit_code) == ("succeeded", 0)
            assert len(series) == want.epochs and t.value == series.values[-1]
        else:  # pruned: the pruner stopped the job before its last epoch
            assert job.state == "pruned" and t.last_step is not None and t.last_step < want.epochs - 1
    best = max((t for t in trials if t.state == "complete"), key=lambda t: (t.value or 0.0, -t.number))
    assert (sweep.best_trial, sweep.best_value) == (best.number, best.value)
    out = " ".join(demo[1].split())
    assert f"best: trial {best.number}, {METRIC} {best.value:.4f}" in out
    assert (
        f"sweep {sweep.id} {SWEEP_NAME}: {want.n_trials} trials of the MLP, up to {want.epochs} epochs" in out
    )
    assert "✓ complete ★ best" in out


def test_sweep_progress_counts_finished_trials_whole() -> None:
    from mlbox.sweeps.schemas import Trial

    def trial(number: int, state: str, last_step: int | None) -> Trial:
        return Trial(1, number, state, {}, None, None, None, last_step, 0.0, None, None)  # type: ignore[arg-type]

    trials = [
        trial(0, "complete", 5),
        trial(1, "pruned", 1),
        trial(2, "running", 2),
        trial(3, "running", None),
    ]
    assert units_done(trials, epochs=6) == 6 + 6 + 3 + 0


def test_hand_written_adam_matches_torch() -> None:
    """The jobs skip torch.optim (its first use imports torch._dynamo); the update must be Adam's."""
    import torch

    from mlbox.demo.mlp import Adam

    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    reference = torch.optim.Adam(a.parameters(), lr=0.01, weight_decay=1e-4)
    ours = Adam(list(b.parameters()), lr=0.01, weight_decay=1e-4)
    for _ in range(30):
        x = torch.randn(8, 5)
        for model, opt in ((a, reference), (b, ours)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert not torch.equal(a.weight, torch.nn.Linear(5, 3).weight)


def test_trial_kwargs_round_trip_and_refuse_unknown_families() -> None:
    from mlbox.store.errors import InvalidInput

    for trial in plan(quick=False):
        kwargs = trial_kwargs(trial)
        assert trial_from_kwargs(**kwargs) == trial
    with pytest.raises(InvalidInput) as err:
        trial_from_kwargs("x", "xgboost", {})
    assert err.value.field == "family"


def test_failed_jobs_fail_the_step_with_their_exit_codes_and_logs(services: Services) -> None:
    """The split the jobs read is gone: each job fails, the step names them and shows their logs."""
    import shutil

    from rich.console import Console

    from mlbox.demo.featureset import build_training_set
    from mlbox.demo.runner import DemoState, train_all
    from mlbox.store.errors import MlboxError

    out = io.StringIO()
    state = DemoState(services=services, console=Console(file=out, width=200), quick=True)
    state.features = build_training_set(services.features, services.home.root / "demo")
    state.split = state.features.split
    state.trials = plan(quick=True)[:2]
    shutil.rmtree(state.features.data_dir)
    with pytest.raises(MlboxError) as err:
        train_all(state)
    assert "2 training job(s) failed" in err.value.message
    text = out.getvalue()
    jobs = {j.spec.name: j for j in services.scheduler.list_jobs(owner=None)}
    for trial in state.trials:
        job = jobs[trial.name]
        assert (job.state, job.exit_code) == ("failed", 1)
        assert f"job {job.id}" in err.value.message
        assert f"✗ job {job.id}" in text
    assert "FileNotFoundError" in text  # the tail of the job's log
    # the sweep beside them failed its trials the same way, and ended without a best trial
    [sweep] = services.sweeps.list_sweeps()
    assert sweep.state in ("finished", "failed") and sweep.best_trial is None
    assert {t.state for t in services.sweeps.trials(sweep.id)} == {"failed"}


def test_mlflow_step_logs_registers_and_exports(
    demo: tuple[Path, str], services_of: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MLflow-style script's run and model are mlbox's own; the champion's export is an
    MLflow model directory that imports into another home and predicts as the champion."""
    import yaml

    from mlbox.demo.interop import EXPERIMENT as MLFLOW_EXPERIMENT
    from mlbox.demo.interop import MODEL
    from mlbox.registry import mlflow_format

    [run] = services_of.tracking.search_runs("", experiments=[MLFLOW_EXPERIMENT], limit=10).runs
    assert run.params == {"C": "0.5", "max_iter": "200"} and run.tags["style"] == "mlflow"
    assert len(services_of.tracking.metric_series(run.id, "val_acc")) == 3
    mv = services_of.registry.resolve(f"{MODEL}@champion")
    assert (mv.flavor, mv.run_id) == ("sklearn", run.id)
    [out] = (demo[0] / "demo").glob("champion-mlflow-*")
    assert "python_function" in yaml.safe_load((out / "MLmodel").read_text())["flavors"]
    assert out.name in demo[1] and "mlbox gc --dry-run" in demo[1]
    monkeypatch.setenv("MLBOX_HOME", str(tmp_path / "elsewhere"))
    elsewhere = Services.open(Settings.from_env())
    copied = mlflow_format.import_dir(elsewhere.registry, out, "copied", trust=True)
    x = load_split().x_val[:50]
    champion = services_of.registry.load(f"{MODEL_NAME}@{CHAMPION}").predict(x)
    np.testing.assert_array_equal(
        np.asarray(elsewhere.registry.load(f"copied/{copied.version}").predict(x)), champion
    )


def test_the_demo_leaves_its_home_private(demo: tuple[Path, str]) -> None:
    # README: everything in the home is private (folders 0700, files 0600), the example data the
    # demo writes there (raw CSVs, feature Parquet, an MLflow export, a report) included
    from tests.test_home_modes import exposed

    home, _ = demo
    assert exposed(home) == [], "\n".join(exposed(home))
