"""The demo's MLflow step: an MLflow script runs on mlbox with only its import line changed,
the champion leaves as an MLflow model directory, and ``mlbox gc`` says what it would free.

Most users come with MLflow code and serve elsewhere, so the demo shows both doors
(`mlbox.mlflow`, `mlbox.registry.mlflow_format`) and the housekeeping a home needs
after weeks of such runs (`mlbox.gc`), on the demo's own data.
"""

from __future__ import annotations

import time

import numpy as np
from rich.markup import escape

from mlbox.demo.state import DemoState
from mlbox.sizefmt import size

EXPERIMENT = "mlflow-style"
MODEL = "digits-mlflow"


def _mlflow_script(state: DemoState) -> tuple[str, str, bool]:
    """What a typical MLflow training script does, as written for MLflow but for its import
    line; answers the run id, the registered version and whether the model served back by
    ``models:/NAME@champion`` predicts as the fitted one."""
    from sklearn.linear_model import LogisticRegression

    import mlbox.mlflow as mlflow

    split = state.split
    assert split is not None, "load_data runs first"
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="logreg") as run:
        mlflow.log_params({"C": 0.5, "max_iter": 200})
        model = LogisticRegression(C=0.5, max_iter=200).fit(split.x_train, split.y_train)
        for step, rows in enumerate((100, 400, len(split.y_val))):
            acc = float((model.predict(split.x_val[:rows]) == split.y_val[:rows]).mean())
            mlflow.log_metric("val_acc", acc, step=step)
        mlflow.set_tags({"demo": "digits", "style": "mlflow"})
        mlflow.sklearn.log_model(model, "model", input_example=split.x_val[:2])
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL)
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", version.version)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    same = bool(np.array_equal(np.asarray(served.predict(split.x_val)), model.predict(split.x_val)))
    return run.info.run_id, str(version.version), same


def interop(state: DemoState) -> None:
    from mlbox.gc import DAY_S, collect
    from mlbox.registry import mlflow_format

    services, console = state.services, state.console
    run_id, version, same = _mlflow_script(state)
    console.print(
        f"  [green]✓[/] an MLflow script (import mlbox.mlflow as mlflow) logged run {run_id} in"
        f" {EXPERIMENT!r} and registered {MODEL} version {version} @champion;"
        f" models:/{MODEL}@champion predicts {'as' if same else 'UNLIKE'} the fitted model"
    )
    assert state.registered is not None, "register runs first"
    ref = state.registered.champion_ref
    out = services.home.root / "demo" / f"champion-mlflow-{int(time.time())}"
    out.parent.mkdir(parents=True, exist_ok=True)
    mv, notes = mlflow_format.export(services.registry, ref, out)
    console.print(
        f"  [green]✓[/] exported {escape(ref)} (version {mv.version}, {mv.flavor}) as an MLflow model:"
        f" {escape(str(out))}"
    )
    console.print(f"    mlflow models serve -m {escape(str(out))}   (or MLServer's MLflow runtime, KServe)")
    for note in notes:
        console.print(f"    note: {escape(note)}")
    days = services.settings.retention_days
    report = collect(services, older_than_s=days * DAY_S, dry_run=True)
    console.print(
        f"  [green]✓[/] mlbox gc --dry-run: {report.objects_referenced} artifact objects in use,"
        f" {report.objects_removed} unreferenced ({size(report.freed_bytes)}) would go;"
        f" deleted runs are kept {days:g} days"
    )
