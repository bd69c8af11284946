"""Faults a new user met following README.md by hand (task H7), each pinned with real parts.

* A pipeline module in the user's own folder ran only while the CLI drove it: with `mlbox up`
  started in another folder the appliance could not import it ("No module named ...").
* The appliance kept running a user's pipeline module as it first imported it, after the
  user edited it (in-process steps and schedule-fired runs ran stale code).
* `mlbox pipelines run` printed only "failed: STEP" for a failed run, not why.
* In a job (the README's `@mlbox.step(gpus=1)` train step) `mlbox.log_model` said "no active
  run" and `register_model` found none, though `log_metric` logs to the job's run.
* A management route answered a body that is not JSON without the ``type`` every other 4xx has.
* The home is private (README: folders 0700, files 0600), but a monitoring reference's
  profile.json, the feature store's DuckDB spill folder and the notebooks' folders (a frozen
  notebook to run, the server's files and runtime) took the umask's modes.
* `@labeling_function` written bare (as `@mlbox.step` is) made no labeling function, and
  `mlbox label weak` said the file defined none.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.services import Services
from tests.helpers import MLBOX, mlbox_env, ok, run_main, wait_announced

PIPELINE_MODULE = """
import mlbox
from mlbox.pipelines.values import ModelRef


@mlbox.step
def ingest(path: str) -> int:
    with open(path) as f:
        header, *lines = f.read().splitlines()
    if "label" not in header.split(","):
        raise ValueError(f"{path} lacks the column 'label'")
    return len(lines)


@mlbox.step(job=True)
def train(rows: int) -> ModelRef:
    # the README's job step: log the model and register it with no start_run (the job's run)
    import numpy as np
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit(np.zeros((rows, 1)), np.arange(rows) % 2)
    mlbox.log_model(model, "model", example_input=np.zeros((2, 1)))
    version = mlbox.register_model("stranger-rows")
    return ModelRef("stranger-rows", version.version)


@mlbox.pipeline
def rows(path: str) -> None:
    train(ingest(path))
"""


def test_a_pipeline_in_the_users_folder_runs_on_an_appliance_started_elsewhere(
    home: Path, services: Services, tmp_path: Path, started: list[subprocess.Popen[Any]]
) -> None:
    work = tmp_path / "work"
    elsewhere = tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "stranger_rows.py").write_text(PIPELINE_MODULE)
    (work / "good.csv").write_text("x,label\n1,0\n2,1\n3,0\n")
    (work / "bad.csv").write_text("x\n1\n")
    env = mlbox_env(home, MLBOX_SCHEDULER_TICK_S="0.1", MLBOX_PORT="0")
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [str(MLBOX), "up"], env=env, cwd=elsewhere, stdout=out, stderr=out, start_new_session=True
        )
    started.append(up)
    wait_announced(home, up, log=log)

    def run(csv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(MLBOX),
                "pipelines",
                "run",
                "stranger_rows:rows",
                "-p",
                f"path={work / csv}",
                "--timeout",
                "60",
            ],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=90,
        )

    good = run("good.csv")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[0].split()[:4] == ["run", "1", "rows", "succeeded"]
    # the job step (a subprocess of the appliance) imported the module from the user's folder
    # too, and its log_model/register_model found the job's run without a start_run
    step = {s.node: s for s in services.pipelines.get_run(1).steps}["train"]
    assert step.state == "succeeded" and step.job_id is not None
    job_run = services.scheduler.get(step.job_id).run_id
    (version,) = services.registry.list_versions("stranger-rows")
    assert version.run_id == job_run is not None

    bad = run("bad.csv")
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[2] == "failed: ingest"
    assert lines[3] == f"  ingest: ValueError: {work / 'bad.csv'} lacks the column 'label'"
    assert lines[4] == "  (each step's log: mlbox pipelines show 2 --logs)"

    # the user edits the module: the appliance runs the edited in-process step, not the code
    # it imported first (the run's cache key is the edited code's)
    edited = PIPELINE_MODULE.replace(
        "    with open(path) as f:", '    print("ingest, edited")\n    with open(path) as f:'
    )
    (work / "stranger_rows.py").write_text(edited)
    again = run("good.csv")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ingest, edited" in services.pipelines.step_log(3, "ingest")


def test_label_weak_takes_a_bare_labeling_function(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ok(capsys, "label", "new", "reviews", "--choices", "pos,neg")
    tasks = tmp_path / "reviews.csv"
    tasks.write_text("text\ngreat film\nawful film\nfine\n")
    ok(capsys, "label", "import", "reviews", str(tasks))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(
        "from mlbox.labeling.weak import ABSTAIN, labeling_function\n"
        "@labeling_function\n"
        "def great(task):\n    return 0 if 'great' in task['text'] else ABSTAIN\n"
        "@labeling_function('awful_is_neg')\n"
        "def awful(task):\n    return 1 if 'awful' in task['text'] else ABSTAIN\n"
    )
    out = ok(capsys, "label", "weak", "reviews", str(lfs))
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[1:3]}
    assert rows == {"great": ["0", "0.333333"], "awful_is_neg": ["1", "0.333333"]}


def test_a_pipeline_module_that_raises_on_import_is_bad_input_naming_its_line(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the README's snippet copied without the ModelRef import: NameError while importing
    (tmp_path / "stranger_broken.py").write_text(
        "import mlbox\n\n\n@mlbox.step\ndef train(c: float) -> ModelRef: ...\n"
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "pipelines", "run", "stranger_broken:digits")
    assert code == 2 and out == ""
    assert err.strip() == (
        "mlbox: error: cannot load pipeline 'stranger_broken:digits': NameError: name 'ModelRef' is not"
        f" defined ({tmp_path / 'stranger_broken.py'}, line 5)"
    )


def test_a_body_that_is_not_json_is_answered_like_every_other_bad_input(services: Services) -> None:
    app = create_app(services, token="t")
    with TestClient(app, base_url="http://127.0.0.1:5151") as client:
        r = client.post(
            "/api/v1/runs",
            content=b'{"experiment":',
            headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        )
    assert r.status_code == 400
    assert r.json() == {
        "error": "malformed JSON body: Input data was truncated",
        "type": "InvalidInput",
        "field": "body",
    }


def test_monitoring_features_and_notebooks_write_private_files(
    services: Services, home: Path, tmp_path: Path
) -> None:
    import os

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mlbox.features import Entity, FeatureView, Field, ParquetSource
    from tests.test_home_modes import exposed

    old = os.umask(0o022)
    try:
        x = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
        services.registry.register(
            "m", model=LogisticRegression().fit(x, np.arange(20) % 2), example_input=x[:2]
        )
        services.monitoring.set_reference("m/1", frame=x)
        stats = tmp_path / "stats"
        stats.mkdir()
        pd.DataFrame(
            {
                "driver_id": [1, 2],
                "event_ts": pd.to_datetime(["2026-12-01", "2026-12-02"]),
                "trips": [3.0, 4.0],
            }
        ).to_parquet(stats / "a.parquet")
        driver = Entity("driver", join_keys=["driver_id"])
        view = FeatureView(
            "driver_stats",
            entities=[driver],
            source=ParquetSource(str(stats)),
            timestamp_field="event_ts",
            features=[Field("trips", "float64")],
        )
        services.features.apply([driver, view])
        entity_df = pd.DataFrame({"driver_id": [1], "event_timestamp": pd.to_datetime(["2026-12-03"])})
        services.features.get_historical_features(entity_df, ["driver_stats:trips"]).to_polars()
        notebook = tmp_path / "report.ipynb"
        notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        services.notebooks.run(notebook)
        services.notebooks.start()
    finally:
        os.umask(old)
    written = [p for p in ("monitoring", "features", "notebooks") if (home / p).exists()]
    assert written == ["monitoring", "features", "notebooks"]
    assert [e for e in exposed(home) if e.split("/")[0].split(" ")[0] in written] == []


def test_runs_export_writes_what_the_suffix_says(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import mlbox

    with mlbox.start_run("r", log_code=False, log_environment=False) as run:
        for step in range(3):
            mlbox.log_metric("loss", 1.0 / (step + 1), step=step)
    out = ok(capsys, "runs", "export", str(run.id), "-o", str(tmp_path / "new" / "m.csv"))
    assert out.strip() == f"wrote 3 points to {tmp_path / 'new' / 'm.csv'}"
    lines = (tmp_path / "new" / "m.csv").read_text().splitlines()
    assert lines[0] == "key,step,timestamp,value"
    assert [line.split(",")[:2] + line.split(",")[3:] for line in lines[1:]] == [
        ["loss", "0", "1.0"],
        ["loss", "1", "0.5"],
        ["loss", "2", "0.3333333333333333"],
    ]
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["m.csv"]  # no temporary left
    code, _, err = run_main(capsys, "runs", "export", str(run.id), "-o", str(tmp_path / "m.txt"))
    assert code == 2 and len(err.splitlines()) == 1 and "name a .parquet (or .pq) or .csv file" in err
