"""The real MLflow client against a real ``mlbox up``: unmodified MLflow scripts log into mlbox.

MLflow (``mlflow-skinny`` with scikit-learn, pandas and skops, which its
sklearn flavor needs) lives in its own virtual environment, ``mlflow-client`` of
`tests.peer_venvs`, made on the first run (about two minutes; it needs the network
once) and reused while it imports; it never touches mlbox's own ``.venv``. The
scripts below are plain MLflow code: they learn where to log only from
``MLFLOW_TRACKING_URI`` and ``MLFLOW_TRACKING_TOKEN``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import MLBOX, stop, wait_announced
from tests.peer_venvs import ensure

REQUIREMENTS = ("mlflow-skinny", "scikit-learn", "pandas", "skops")
PROBE = "import mlflow, sklearn, pandas, skops; print(mlflow.__version__)"


@pytest.fixture(scope="module")
def mlflow_python() -> Path:
    return ensure_venv()


@functools.cache
def ensure_venv() -> Path:
    """The MLflow venv's interpreter, made once (skipped only when pip cannot reach an index)."""
    return ensure("mlflow-client", REQUIREMENTS, PROBE)


@dataclass
class Up:
    url: str
    token: str
    home: Path
    env: dict[str, str]

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30, trust_env=False
        )


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One ``mlbox up`` for the module's tests (each logs into experiments and models of its own)."""
    root = tmp_path_factory.mktemp("mlflow-up")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLBOX_RUN_ID", "MLBOX_EXPERIMENT")}
    env["MLBOX_HOME"] = str(home)
    log = root / "up.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(MLBOX), "up", "--port", "0"], env=env, cwd=root, stdout=err, stderr=err)
    try:
        url = wait_announced(home, proc, log=log)
        token = (home / "token").read_text().strip()
        yield Up(url, token, home, env)
    finally:
        stop(proc)


def run_script(
    python: Path, up: Up, script: str, cwd: Path, *, token: str | None = None
) -> dict[str, object]:
    """Run an MLflow script in its venv, pointed at ``up``; returns the JSON of its last line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLBOX_", "MLFLOW_"))}
    env.update(
        MLFLOW_TRACKING_URI=up.url,
        MLFLOW_TRACKING_TOKEN=up.token if token is None else token,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",  # an error must fail the test now, not after retries
        GIT_PYTHON_REFRESH="quiet",
    )
    path = cwd / "script.py"
    path.write_text(textwrap.dedent(script))
    done = subprocess.run(
        [str(python), str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def mlbox_cli(up: Up, *argv: str) -> str:
    done = subprocess.run(
        [str(MLBOX), *argv], env=up.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


TRACKING = """
    import json, os, tempfile
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment("mlflow-compat")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_params({"lr": 0.1, "depth": 3})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tags({"team": "search", "stage": "dev"})
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "notes.txt")
        with open(path, "w") as f:
            f.write("hello from mlflow")
        mlflow.log_artifact(path)
        mlflow.log_artifact(path, artifact_path="docs")
    with mlflow.start_run(run_name="second") as second:
        mlflow.log_param("lr", 0.5)
        mlflow.log_metric("loss", 0.9)
    run_id = run.info.run_id
    client = MlflowClient()
    from mlflow.entities import Metric, ViewType
    client.log_batch(second.info.run_id, metrics=[Metric("acc", 0.5 + s / 10, 1_700_000_000_000 + s, s)
                                                  for s in range(3)])
    batch = [(m.step, m.value, m.timestamp) for m in client.get_metric_history(second.info.run_id, "acc")]
    client.delete_run(second.info.run_id)
    deleted = list(mlflow.search_runs(run_view_type=ViewType.DELETED_ONLY)["run_id"])
    stage = client.get_run(second.info.run_id).info.lifecycle_stage
    client.restore_run(second.info.run_id)
    history = client.get_metric_history(run_id, "loss")
    found = mlflow.search_runs(
        filter_string="metrics.loss < 0.5 and params.lr = '0.1'", order_by=["metrics.loss ASC"]
    )
    everything = mlflow.search_runs(experiment_names=["mlflow-compat"], order_by=["params.lr DESC"])
    listed = sorted(a.path for a in client.list_artifacts(run_id))
    local = client.download_artifacts(run_id, "docs/notes.txt", tempfile.mkdtemp())
    finished = client.get_run(run_id)
    print(json.dumps({
        "run_id": run_id,
        "experiment_id": run.info.experiment_id,
        "history": [[m.step, m.value] for m in history],
        "found": list(found["run_id"]),
        "order": list(everything["tags.mlflow.runName"]),
        "artifacts": listed,
        "downloaded": open(local).read(),
        "status": finished.info.status,
        "params": finished.data.params,
        "tags": {k: v for k, v in finished.data.tags.items() if not k.startswith("mlflow.")},
        "second": second.info.run_id,
        "batch": batch,
        "deleted": deleted,
        "stage": stage,
    }))
"""


MLBOX_TRACKING = textwrap.dedent(
    """
    import json
    import mlbox

    with mlbox.start_run("first-mlbox", log_code=False, log_environment=False) as run:
        mlbox.log_params({"lr": 0.1, "depth": 3})
        for step in range(5):
            mlbox.log_metric("loss", 1.0 / (step + 1), step=step)
        mlbox.set_tags({"team": "search", "stage": "dev"})
    print(json.dumps({"run_id": run.id}))
    """
)


def test_an_unmodified_mlflow_script_logs_into_mlbox(mlflow_python: Path, up: Up, tmp_path: Path) -> None:
    out = run_script(mlflow_python, up, TRACKING, tmp_path)
    assert out["history"] == [[s, 1.0 / (s + 1)] for s in range(5)]
    assert out["found"] == [out["run_id"]]
    assert out["order"] == ["second", "first"]
    assert out["artifacts"] == ["docs", "notes.txt"]
    assert out["downloaded"] == "hello from mlflow"
    assert out["status"] == "FINISHED"
    assert out["params"] == {"lr": "0.1", "depth": "3"}
    assert out["tags"] == {"team": "search", "stage": "dev"}
    assert out["batch"] == [[s, 0.5 + s / 10, 1_700_000_000_000 + s] for s in range(3)]
    assert out["deleted"] == [out["second"]] and out["stage"] == "deleted"

    # the same run, as mlbox itself shows it
    listing = mlbox_cli(up, "runs", "ls")
    assert "mlflow-compat" in listing and "first" in listing and "second" in listing
    with up.http() as http:
        detail = http.get(f"/api/v1/runs/{out['run_id']}").json()
    run = detail["run"]
    assert run["experiment"] == "mlflow-compat" and run["status"] == "finished" and run["name"] == "first"
    assert run["params"] == {"lr": "0.1", "depth": "3"} and run["metrics"] == {"loss": 0.2}
    assert {a["path"] for a in detail["artifacts"]} == {"notes.txt", "docs/notes.txt"}

    # the same logging through mlbox's own client gives the same rows
    mine = subprocess.run(
        [sys.executable, "-c", MLBOX_TRACKING],
        env={**up.env, "MLBOX_EXPERIMENT": "mlflow-compat"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert mine.returncode == 0, mine.stderr
    mine_id = json.loads(mine.stdout.strip().splitlines()[-1])["run_id"]
    with up.http() as http:
        ours = http.get(f"/api/v1/runs/{mine_id}").json()["run"]
        theirs_history = http.get(f"/api/v1/runs/{out['run_id']}/metrics/loss").json()
        ours_history = http.get(f"/api/v1/runs/{mine_id}/metrics/loss").json()
    assert ours["params"] == run["params"] and ours["metrics"] == run["metrics"]
    assert {k: ours["tags"][k] for k in ("team", "stage")} == {k: run["tags"][k] for k in ("team", "stage")}
    assert [p[0::2] for p in ours_history] == [p[0::2] for p in theirs_history]  # (step, value) rows


def test_the_token_is_required(mlflow_python: Path, up: Up, tmp_path: Path) -> None:
    script = """
        import json, mlflow
        from mlflow.exceptions import MlflowException
        try:
            mlflow.search_experiments()
        except MlflowException as exc:
            print(json.dumps({"code": exc.error_code, "message": str(exc)}))
    """
    out = run_script(mlflow_python, up, script, tmp_path, token="not-the-token")
    assert out["code"] == "UNAUTHENTICATED"
    # the "View run ... at" link MLflow prints opens a page (no token) saying how to see the run
    page = httpx.get(f"{up.url}/", trust_env=False, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "no web UI" in page.text and "mlbox runs show" in page.text


SKLEARN = """
    import json
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with mlflow.start_run(run_name="iris") as run:
        mlflow.log_param("max_iter", 500)
        mlflow.sklearn.log_model(model, name="model", input_example=X[:3])
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris")
    client = MlflowClient()
    client.set_registered_model_alias("iris", "champion", version.version)
    by_alias = client.get_model_version_by_alias("iris", "champion")
    rows = X[::10]
    print(json.dumps({
        "run_id": run.info.run_id,
        "experiment_ids": [run.info.experiment_id, client.get_experiment("0").experiment_id,
                           client.get_experiment_by_name("Default").experiment_id],
        "in_0": list(mlflow.search_runs(experiment_ids=["0"])["run_id"]),
        "version": by_alias.version,
        "rows": rows.tolist(),
        "predictions": model.predict(rows).tolist(),
        "probabilities": model.predict_proba(rows).tolist(),
    }))
"""


def test_a_registered_sklearn_model_is_served_under_its_alias(
    mlflow_python: Path, up: Up, tmp_path: Path
) -> None:
    out = run_script(mlflow_python, up, SKLEARN, tmp_path)
    assert out["version"] == "1"
    assert out["experiment_ids"] == ["0", "0", "0"] and out["in_0"] == [out["run_id"]]  # MLflow's Default
    with up.http() as http:
        model = http.get("/api/v1/models/iris").json()
        assert model["model"]["aliases"] == {"champion": 1}
        version = model["versions"][0]
        assert version["flavor"] == "sklearn" and version["run_id"] == int(str(out["run_id"]))
        assert version["lineage"]["source"] == f"run:{out['run_id']}/model"  # skops, converted: still its run
        assert version["signature"] is not None  # from the logged input example
        scored = http.post("/api/v1/models/iris@champion/predict", json={"inputs": out["rows"]})
    assert scored.status_code == 200, scored.text
    assert scored.json()["predictions"] == out["predictions"]
    assert "iris" in mlbox_cli(up, "models", "ls")


GAPS = """
    import json
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    client = MlflowClient()
    exp_id = client.create_experiment("gaps-draft")
    client.create_experiment("gaps-taken")
    client.rename_experiment(exp_id, "gaps-final")
    try:
        client.rename_experiment(exp_id, "gaps-taken")
        taken = None
    except MlflowException as exc:
        taken = exc.error_code
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.set_tags({"keep": "1", "drop": "2"})
        mlflow.delete_tag("drop")
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    try:
        client.delete_tag(run.info.run_id, "drop")
        missing = None
    except MlflowException as exc:
        missing = exc.error_code
    uri = f"runs:/{run.info.run_id}/model"
    try:
        mlflow.register_model(uri, "gaps-pickled")
        refused = None
    except MlflowException as exc:
        refused = [exc.error_code, exc.message]
    version = mlflow.register_model(uri, "gaps-pickled", tags={"mlbox.trust": "true"})
    print(json.dumps({
        "name": client.get_experiment(exp_id).name,
        "taken": taken,
        "tags": {k: v for k, v in client.get_run(run.info.run_id).data.tags.items() if not k.startswith("mlflow.")},
        "missing": missing,
        "refused": refused,
        "version": version.version,
        "run_id": run.info.run_id,
    }))
"""


def test_rename_delete_tag_and_trusted_pickles_through_mlflows_client(
    mlflow_python: Path, up: Up, tmp_path: Path
) -> None:
    out = run_script(mlflow_python, up, GAPS, tmp_path)
    assert out["name"] == "gaps-final" and out["taken"] == "RESOURCE_ALREADY_EXISTS"
    assert out["tags"] == {"keep": "1"} and out["missing"] == "RESOURCE_DOES_NOT_EXIST"
    refused = out["refused"]
    assert isinstance(refused, list) and refused[0] == "INVALID_PARAMETER_VALUE"
    assert "mlbox.trust" in refused[1] and "--trust" in refused[1]
    assert out["version"] == "1"
    assert "gaps-final" in mlbox_cli(up, "experiments", "ls")
    with up.http() as http:
        version = http.get("/api/v1/models/gaps-pickled").json()["versions"][0]
    assert version["flavor"] == "sklearn" and version["run_id"] == int(str(out["run_id"]))


ASYNC_AND_SEARCH = """
    import json, os
    os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"  # the queue merges calls into log-batch requests
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    ops = []
    with mlflow.start_run(run_name="async-search") as run:  # MLflow's Default, "0"
        for step in range(300):
            ops.append(mlflow.log_metric("loss", 1.0 / (step + 1), step=step, synchronous=False))
            if step % 100 == 0:
                ops.append(mlflow.log_param(f"p{step}", step, synchronous=False))
                ops.append(mlflow.set_tag(f"t{step}", "x", synchronous=False))
        ops.append(mlflow.log_metrics({"a": 1.0, "b": 2.0}, step=1, synchronous=False))
        for op in ops:
            op.wait()  # raises what the server answered a refused batch with
    client = MlflowClient()
    rid = run.info.run_id
    got = client.get_run(rid)
    everywhere = [e.experiment_id for e in client.search_experiments()]

    def ids(text, **kw):
        return [r.info.run_id for r in client.search_runs(everywhere, text, **kw)]

    def refused(text):
        try:
            ids(text)
        except MlflowException as exc:
            return [exc.error_code, exc.message]

    mine = "tags.t0 = 'x'"
    print(json.dumps({
        "run_id": rid,
        "points": [(m.step, m.value) for m in client.get_metric_history(rid, "loss")],
        "metrics": got.data.metrics,
        "params": got.data.params,
        "tags": sorted(k for k in got.data.tags if k.startswith("t")),
        "in_0": ids(f"attributes.experiment_id = '0' and {mine}"),
        "not_0": ids(f"experiment_id != '0' and {mine}"),
        "in_list": ids(f"attributes.experiment_id IN ('0', '12345') and {mine}"),
        "fluent_0": list(mlflow.search_runs(filter_string=f"experiment_id = '0' and {mine}")["run_id"]),
        "present": ids("params.p100 IS NOT NULL and run.run_name = 'async-search'"),
        "absent": ids(f"params.nope IS NULL and parameters.p200 = '200' and {mine}"),
        "user": ids(f"attributes.user_id = '{got.info.user_id}' and {mine}"),
        "created": ids(f"attributes.created >= {got.info.start_time} and {mine}", order_by=["created DESC"]),
        "dataset": refused("dataset.name = 'train'"),
        "artifact_uri": refused("attributes.artifact_uri LIKE 'mlflow-artifacts:%'"),
        "bad_grammar": refused("metrics.loss >"),
    }))
"""


def test_async_logging_and_mlflow_filters_through_mlflows_client(
    mlflow_python: Path, up: Up, tmp_path: Path
) -> None:
    """MLflow's asynchronous logging merges metrics, params and tags into one log-batch request (the
    queue's buffering); every one lands. Its search filters, including ``experiment_id = '0'``
    (MLflow's Default), answer the runs they name or MLflow's INVALID_PARAMETER_VALUE naming the part."""
    out = run_script(mlflow_python, up, ASYNC_AND_SEARCH, tmp_path)
    rid = out["run_id"]
    assert out["points"] == [[s, 1.0 / (s + 1)] for s in range(300)]
    assert out["metrics"] == {"loss": 1.0 / 300, "a": 1.0, "b": 2.0}
    assert out["params"] == {"p0": "0", "p100": "100", "p200": "200"}
    assert out["tags"] == ["t0", "t100", "t200"]
    assert out["in_0"] == [rid] and out["not_0"] == [] and out["in_list"] == [rid]
    assert out["fluent_0"] == [rid]
    assert out["present"] == [rid] and out["absent"] == [rid]
    assert out["user"] == [rid] and out["created"] == [rid]
    refusals = {key: list(out[key]) for key in ("dataset", "artifact_uri", "bad_grammar")}  # type: ignore[call-overload]
    assert all(code == "INVALID_PARAMETER_VALUE" for code, _ in refusals.values()), refusals
    assert "dataset.name" in refusals["dataset"][1] and "artifact_uri" in refusals["artifact_uri"][1]
