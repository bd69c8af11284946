"""``import mlbox.mlflow as mlflow``: an MLflow training script, changed only in its import line.

The script (`SCRIPT`) is written against MLflow's documented API; the test
swaps its ``import mlflow`` line, runs it in a subprocess on a temporary
``MLBOX_HOME``, and reads what landed in mlbox's own stores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlbox.mlflow.state import state_for
from mlbox.services import Services
from mlbox.settings import Settings

SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import tempfile

    import mlflow
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    X, y = datasets.load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    params = {"solver": "lbfgs", "max_iter": 1000, "random_state": 8888}

    exp_id = mlflow.create_experiment("quickstart-base")
    assert mlflow.get_experiment_by_name("quickstart-base").experiment_id == exp_id
    mlflow.set_experiment("MLflow Quickstart")

    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params(params)
        lr = LogisticRegression(**params).fit(X_train, y_train)
        accuracy = accuracy_score(y_test, lr.predict(X_test))
        mlflow.log_metric("accuracy", accuracy)
        for epoch in range(3):
            mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch, timestamp=1_700_000_000_000 + epoch)
        mlflow.set_tag("Training Info", "Basic LR model for iris data")
        mlflow.log_dict({"classes": [0, 1, 2]}, "meta/classes.json")
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, "a.txt"), "w") as f:
            f.write("a")
        os.makedirs(os.path.join(folder, "sub"))
        with open(os.path.join(folder, "sub", "b.txt"), "w") as f:
            f.write("b")
        mlflow.log_artifacts(folder, artifact_path="extra")
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        mlflow.log_figure(fig, "plots/line.png")
        dataset = mlflow.data.from_numpy(X_train, targets=y_train, name="iris-train")
        mlflow.log_input(dataset, context="training")
        with mlflow.start_run(run_name="child", nested=True, experiment_id=exp_id) as child:
            mlflow.log_param("child", True)
        model_info = mlflow.sklearn.log_model(
            sk_model=lr, name="iris_model", input_example=X_train[:5], registered_model_name="tracking-quickstart"
        )

    client = mlflow.MlflowClient()
    client.set_registered_model_alias("tracking-quickstart", "champion", 1)
    loaded = mlflow.pyfunc.load_model("models:/tracking-quickstart@champion")
    from_run = mlflow.pyfunc.load_model(model_info.model_uri)
    predictions = loaded.predict(X_test)
    version = mlflow.register_model(model_info.model_uri, "tracking-quickstart")

    runs = mlflow.search_runs(filter_string="metrics.accuracy > 0.5", order_by=["metrics.accuracy DESC"])
    history = client.get_metric_history(parent.info.run_id, "loss")

    mlflow.autolog()
    with mlflow.start_run(run_name="auto") as auto:
        LogisticRegression(max_iter=300).fit(X_train, y_train)

    run = mlflow.start_run(run_name="ends-failed")
    mlflow.end_run("FAILED")

    print(json.dumps({
        "parent": parent.info.run_id,
        "child": child.info.run_id,
        "auto": auto.info.run_id,
        "failed": run.info.run_id,
        "exp_id": exp_id,
        "predictions": predictions.tolist(),
        "from_run": from_run.predict(X_test).tolist(),
        "expected": lr.predict(X_test).tolist(),
        "version": version.version,
        "frame_columns": sorted(c for c in runs.columns if c.startswith(("metrics.", "params."))),
        "frame_ids": list(runs["run_id"]),
        "history": [[m.step, m.value, m.timestamp] for m in history],
        "status": mlflow.get_run(parent.info.run_id).info.status,
    }))
    """
)


def test_an_mlflow_script_runs_on_mlbox_with_one_changed_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = SCRIPT.replace("\nimport mlflow\n", "\nimport mlbox.mlflow as mlflow\n")
    assert script.count("\n") == SCRIPT.count("\n") and script != SCRIPT
    (tmp_path / "train.py").write_text(script)
    env = {"MLBOX_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["predictions"] == out["expected"] == out["from_run"]
    assert out["version"] == "2"  # registered_model_name= made version 1
    assert out["status"] == "FINISHED"
    assert out["frame_ids"] == [out["parent"]]
    assert out["frame_columns"] == [
        "metrics.accuracy",
        "metrics.loss",
        "params.max_iter",
        "params.random_state",
        "params.solver",
    ]
    assert out["history"] == [[s, 1.0 / (s + 1), 1_700_000_000_000 + s] for s in range(3)]

    services = Services.open(Settings.from_env({"MLBOX_HOME": str(home)}))
    tracking = services.tracking
    parent = tracking.get_run(int(out["parent"]))
    assert parent.experiment == "MLflow Quickstart" and parent.status == "finished"
    assert parent.params == {"solver": "lbfgs", "max_iter": "1000", "random_state": "8888"}
    assert parent.tags["Training Info"] == "Basic LR model for iris data"
    paths = {a.path for a in tracking.list_artifacts(parent.id)}
    assert {"meta/classes.json", "extra/a.txt", "extra/sub/b.txt", "plots/line.png"} <= paths
    assert any(p.startswith("iris_model/") for p in paths)
    assert [d.name for d in tracking.list_datasets(parent.id)] == ["iris-train"]
    child = tracking.get_run(int(out["child"]))
    assert child.experiment == "quickstart-base" and child.tags["mlflow.parentRunId"] == out["parent"]
    assert child.params == {"child": "True"}
    auto = tracking.get_run(int(out["auto"]))
    assert auto.params["max_iter"] == "300" and 0.5 < (auto.metrics["training_score"] or 0) <= 1.0
    assert any(a.path.startswith("model/") for a in tracking.list_artifacts(auto.id))
    assert tracking.get_run(int(out["failed"])).status == "failed"

    version = services.registry.resolve("tracking-quickstart@champion")
    assert version.version == 1 and version.flavor == "sklearn" and version.run_id == parent.id
    assert version.signature is not None
    x = np.asarray([[5.1, 3.5, 1.4, 0.2]])
    assert services.registry.load(version).predictor.predict(x).tolist() == [0]


def test_mlflow_meanings_where_mlbox_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's meaning wins under mlbox.mlflow: step 0 by default, a second run needs nested=True."""
    import mlbox.mlflow as mlflow
    from mlbox.store.errors import Conflict, InvalidInput
    from mlbox.tracking import client as tracking_client

    monkeypatch.setattr(tracking_client, "_default", None)
    mlflow.set_tracking_uri(str(tmp_path / "home"))
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
        mlflow.log_metric("m", 2.0)
        with pytest.raises(Conflict, match="nested=True"):
            mlflow.start_run()
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "m")
    assert [m.step for m in history] == [0, 0]
    # names MLflow scripts use beside the list
    with mlflow.start_run() as other:
        mlflow.log_image(np.zeros((4, 5, 3)), "img/black.png")
        mlflow.log_table({"a": [1, 2], "b": ["x", "y"]}, "tables/t.json")
        mlflow.set_experiment_tags({"team": "vision"})
        assert mlflow.get_artifact_uri("img") == f"runs:/{other.info.run_id}/img"
    client = mlflow.MlflowClient()
    assert sorted(f.path for f in client.list_artifacts(other.info.run_id)) == ["img", "tables"]
    assert mlflow.get_experiment(other.info.experiment_id).tags == {"team": "vision"}
    client.create_registered_model("draft")
    client.set_registered_model_tag("draft", "stage", "wip")
    assert client.rename_registered_model("draft", "final").name == "final"
    assert [m.name for m in client.search_registered_models()] == ["final"]
    client.delete_registered_model("final")
    assert client.search_registered_models() == []
    with pytest.raises(InvalidInput, match="status"):
        mlflow.end_run("DONE")
    with pytest.raises(InvalidInput, match="MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri("http://tracking.example.com:5000")
    mlflow.set_tracking_uri("http://127.0.0.1:8080")  # this machine's server: logging stays in its home
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:8080"
    assert mlflow.active_run() is None and mlflow.last_active_run() is not None


TORCH_LOOP = textwrap.dedent(
    """
    import json

    import mlflow
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    X = torch.randn(256, 4)
    y = (X.sum(1, keepdim=True) > 0).float()
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(X[:64], y[:64]), batch_size=32)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loss_fn = nn.BCEWithLogitsLoss()

    mlflow.pytorch.autolog()


    @mlflow.pytorch.autolog
    def train_step(xb, yb):
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss


    with mlflow.start_run(run_name="torch-loop") as run:
        for epoch in range(3):
            model.train()
            for xb, yb in loader:
                train_step(xb, yb)
            scheduler.step()
            model.eval()
            with torch.no_grad():
                val = sum(loss_fn(model(xb), yb).item() for xb, yb in val_loader)
            mlflow.log_metric("val_loss", val, step=epoch)
    pred = model(X[:3]).detach().numpy().tolist()  # the model as logged when the run ended

    mlflow.pytorch.autolog(disable=True)
    with mlflow.start_run(run_name="not-logged") as quiet:
        train_step(X[:8], y[:8])

    mlflow.log_metric("left_open", 1.0)  # starts a run that the script never ends
    print(json.dumps({
        "run_id": run.info.run_id,
        "quiet": quiet.info.run_id,
        "open": mlflow.active_run().info.run_id,
        "rows": X[:3].tolist(),
        "pred": pred,
    }))
    """
)


def test_pytorch_autolog_follows_a_plain_training_loop(tmp_path: Path) -> None:
    """Optimizer settings, the wrapped step's loss, epoch means, lr, and the trained model."""
    pytest.importorskip("torch")
    home = tmp_path / "home"
    script = TORCH_LOOP.replace("\nimport mlflow\n", "\nimport mlbox.mlflow as mlflow\n")
    assert script != TORCH_LOOP
    (tmp_path / "train.py").write_text(script)
    env = {"MLBOX_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    services = Services.open(Settings.from_env({"MLBOX_HOME": str(home)}))
    tracking = services.tracking
    rid = int(out["run_id"])
    run = tracking.get_run(rid)
    assert run.status == "finished"
    assert {k: run.params[k] for k in ("optimizer_name", "lr", "momentum", "weight_decay")} == {
        "optimizer_name": "SGD",
        "lr": "0.1",
        "momentum": "0.9",
        "weight_decay": "0",
    }
    steps = [p.step for p in tracking.metric_history(rid, "loss")]
    assert steps == list(range(24))  # 3 epochs of 8 batches
    epochs = tracking.metric_history(rid, "loss_epoch")
    first, last = epochs[0].value, epochs[-1].value
    assert [p.step for p in epochs] == [0, 1, 2] and first is not None and last is not None and last < first
    assert [p.value for p in tracking.metric_history(rid, "lr")] == pytest.approx([0.1, 0.05, 0.025])
    assert [p.step for p in tracking.metric_history(rid, "val_loss")] == [0, 1, 2]

    import mlbox.mlflow as mlflow
    from mlbox.tracking import client as tracking_client

    old = tracking_client._default
    try:
        tracking_client._default = None
        mlflow.set_tracking_uri(str(home))
        loaded = mlflow.pyfunc.load_model(f"runs:/{rid}/model")
        pred = loaded.predict(np.asarray(out["rows"], dtype=np.float32))
    finally:
        tracking_client._default = old
    assert np.allclose(np.asarray(pred).reshape(-1), np.asarray(out["pred"]).reshape(-1), atol=1e-5)

    quiet = tracking.get_run(int(out["quiet"]))
    assert "optimizer_name" not in quiet.params and quiet.metrics == {}
    left = tracking.get_run(int(out["open"]))  # MLflow ends a run left open when the script exits
    assert left.status == "finished" and left.metrics == {"left_open": 1.0}


# MLflow's "5 minute tracking quickstart" (docs/getting-started/intro-quickstart), as published
QUICKSTART = textwrap.dedent(
    """
    import pandas as pd
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(uri="http://127.0.0.1:8080")

    # Load the Iris dataset
    X, y = datasets.load_iris(return_X_y=True)

    # Split the data into training and test sets
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)

    # Define the model hyperparameters
    params = {
        "solver": "lbfgs",
        "max_iter": 1000,
        "random_state": 8888,
    }

    # Train the model
    lr = LogisticRegression(**params)
    lr.fit(X_train, y_train)

    # Predict on the test set
    y_pred = lr.predict(X_test)

    # Calculate metrics
    accuracy = accuracy_score(y_test, y_pred)

    # Create a new MLflow Experiment
    mlflow.set_experiment("MLflow Quickstart")

    # Start an MLflow run
    with mlflow.start_run():
        # Log the hyperparameters
        mlflow.log_params(params)

        # Log the loss metric
        mlflow.log_metric("accuracy", accuracy)

        # Infer the model signature
        signature = infer_signature(X_train, lr.predict(X_train))

        # Log the model, which inherits the parameters and metric
        model_info = mlflow.sklearn.log_model(
            sk_model=lr,
            name="iris_model",
            signature=signature,
            input_example=X_train,
            registered_model_name="tracking-quickstart",
        )

        # Set a tag that we can use to remind ourselves what this model was for
        mlflow.set_logged_model_tags(
            model_info.model_id, {"Training Info": "Basic LR model for iris data"}
        )

    # Load the model back for predictions as a generic Python Function model
    loaded_model = mlflow.pyfunc.load_model(model_info.model_uri)

    predictions = loaded_model.predict(X_test)

    iris_feature_names = datasets.load_iris().feature_names

    result = pd.DataFrame(X_test, columns=iris_feature_names)
    result["actual_class"] = y_test
    result["predicted_class"] = predictions

    result[:4]
    """
)


def test_mlflows_quickstart_runs_with_its_import_lines_changed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = QUICKSTART.replace("\nimport mlflow\n", "\nimport mlbox.mlflow as mlflow\n").replace(
        "\nfrom mlflow.models import", "\nfrom mlbox.mlflow.models import"
    )
    changed = [a for a, b in zip(QUICKSTART.splitlines(), script.splitlines(), strict=True) if a != b]
    assert changed == ["import mlflow", "from mlflow.models import infer_signature"]
    script += textwrap.dedent(
        """
        import json
        print(json.dumps({"ok": bool((result["actual_class"] == result["predicted_class"]).mean() > 0.9),
                          "uri": model_info.model_uri, "model_id": model_info.model_id}))
        """
    )
    (tmp_path / "quickstart.py").write_text(script)
    env = {"MLBOX_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "quickstart.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ok"]

    services = Services.open(Settings.from_env({"MLBOX_HOME": str(home)}))
    versions = services.registry.list_versions("tracking-quickstart")
    assert [v.version for v in versions] == [1] and versions[0].signature is not None
    assert versions[0].run_id is not None
    run = services.tracking.get_run(versions[0].run_id)
    assert run.experiment == "MLflow Quickstart" and run.status == "finished"
    assert run.params["solver"] == "lbfgs" and 0.9 < (run.metrics["accuracy"] or 0) <= 1.0
    state = state_for(services.tracking.db)
    logged = state.logged_model(out["model_id"])
    assert logged.run_id == run.id and logged.artifact_path == "iris_model"
    assert logged.tags == {"Training Info": "Basic LR model for iris data"}
