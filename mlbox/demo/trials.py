"""The demo's trials and how each one logs itself through the public client.

This is the part to read as an example: a training script calls
``mlbox.start_run`` and ``mlbox.log_*`` exactly as an MLflow user would. The
math lives in `mlp` and `baselines`; here it is only wired to logging. Each
trial runs in a scheduler job's process (`jobs`), where ``start_run``
attaches to the run the scheduler made for the job (``MLBOX_RUN_ID``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import mlbox
from mlbox.demo.baselines import ForestConfig, LogRegConfig, fit_logreg, grow_forest
from mlbox.demo.digits import Split, as_frame
from mlbox.demo.evaluation import Evaluation, confusion_csv
from mlbox.demo.mlp import MlpConfig, train_mlp
from mlbox.store.errors import InvalidInput

EXPERIMENT = "digits-demo"
MODEL_DIR = "model"
"""Each run's model folder (saved by `mlbox.log_model`, manifest included): registrable as is."""
MANIFEST = f"{MODEL_DIR}/mlbox-model.json"
TORCH_MODEL = f"{MODEL_DIR}/state_dict.pt"
SKLEARN_MODEL = f"{MODEL_DIR}/model.pkl"
TORCH_BUILDER = "mlbox.demo.mlp:build_classifier"
CONFUSION = "eval/confusion_matrix.csv"

Config = MlpConfig | LogRegConfig | ForestConfig
Report = Callable[[int, float], None]
"""``report(units_done, latest_val_acc)``: how a trial tells the progress bar."""


@dataclass(frozen=True)
class Trial:
    name: str
    config: Config

    @property
    def family(self) -> str:
        if isinstance(self.config, MlpConfig):
            return "torch-mlp"
        if isinstance(self.config, LogRegConfig):
            return "sklearn-logreg"
        return "sklearn-forest"

    @property
    def units(self) -> int:
        """Progress units: epochs, forest stages, or one fit."""
        if isinstance(self.config, MlpConfig):
            return self.config.epochs
        if isinstance(self.config, ForestConfig):
            return self.config.stages
        return 1

    @property
    def model_path(self) -> str:
        return TORCH_MODEL if isinstance(self.config, MlpConfig) else SKLEARN_MODEL


@dataclass(frozen=True)
class TrialResult:
    run_id: int
    name: str
    family: str
    val_acc: float
    val_loss: float
    seconds: float
    model_path: str


FAMILIES: dict[str, type[MlpConfig] | type[LogRegConfig] | type[ForestConfig]] = {
    "torch-mlp": MlpConfig,
    "sklearn-logreg": LogRegConfig,
    "sklearn-forest": ForestConfig,
}


def trial_kwargs(trial: Trial) -> dict[str, Any]:
    """The trial as JSON values: a training job's ``kwargs`` (`trial_from_kwargs` reads them back)."""
    return {"name": trial.name, "family": trial.family, "config": asdict(trial.config)}


def trial_from_kwargs(name: str, family: str, config: dict[str, Any]) -> Trial:
    if family not in FAMILIES:
        raise InvalidInput(f"unknown model family {family!r} (one of {', '.join(FAMILIES)})", field="family")
    return Trial(name, FAMILIES[family](**config))


def plan(quick: bool, seed: int = 0) -> list[Trial]:
    """A small grid per model family, one job each; ``quick`` keeps one setting per family.

    The grid stays small because every trial is a process paying torch's or
    scikit-learn's import (seconds on a busy machine); the sweep (`sweep`)
    searches the MLP's learning rate and width more finely.
    """
    if quick:
        mlps = [MlpConfig(hidden=64, lr=0.01, epochs=4, seed=seed)]
        logregs = [LogRegConfig(C=1.0)]
        forests = [ForestConfig(n_estimators=40, grow_by=10, seed=seed)]
    else:
        mlps = [MlpConfig(hidden=h, lr=lr, epochs=20, seed=seed) for h in (32, 128) for lr in (0.003, 0.01)]
        logregs = [LogRegConfig(C=c) for c in (0.1, 1.0, 10.0)]
        forests = [ForestConfig(n_estimators=100, grow_by=10, seed=seed)]
    return [
        *(Trial(f"mlp-h{c.hidden}-lr{c.lr:g}", c) for c in mlps),
        *(Trial(f"logreg-C{c.C:g}", c) for c in logregs),
        *(Trial(f"forest-t{c.n_estimators}", c) for c in forests),
    ]


def _log_evaluation(ev: Evaluation, step: int) -> None:
    mlbox.log_metrics({"val_acc": ev.accuracy, "val_loss": ev.log_loss}, step=step)


def _run_mlp(config: MlpConfig, split: Split, report: Report) -> Evaluation:
    last: list[Evaluation] = []

    def on_step(step: int, loss: float) -> None:
        mlbox.log_metric("train_loss", loss, step=step)  # returns at once: a background writer commits

    def on_epoch(epoch: int, train_loss: float, val: Evaluation) -> None:
        mlbox.log_metric("train_loss_epoch", train_loss, step=epoch)
        _log_evaluation(val, epoch)
        last[:] = [val]
        report(1, val.accuracy)

    model = train_mlp(config, split, on_step=on_step, on_epoch=on_epoch)
    # The weights plus the builder that rebuilds the module around them (answering class labels).
    options = {"form": "state_dict", "class": TORCH_BUILDER, "init": {"hidden": config.hidden}}
    mlbox.log_model(model, MODEL_DIR, options=options)
    return last[-1]


def _run_logreg(config: LogRegConfig, split: Split, report: Report) -> Evaluation:
    model, val = fit_logreg(config, split)
    _log_evaluation(val, 0)
    mlbox.log_metric("train_acc", float(model.score(split.x_train, split.y_train)), step=0)
    mlbox.log_model(model, MODEL_DIR)  # sklearn flavor: pickled, predict() answers class labels
    report(1, val.accuracy)
    return val


def _run_forest(config: ForestConfig, split: Split, report: Report) -> Evaluation:
    last: list[Evaluation] = []

    def on_stage(n_trees: int, val: Evaluation) -> None:
        _log_evaluation(val, n_trees)  # the step axis counts trees
        last[:] = [val]
        report(1, val.accuracy)

    model = grow_forest(config, split, on_stage=on_stage)
    mlbox.log_model(model, MODEL_DIR)
    return last[-1]


def run_trial(trial: Trial, split: Split, report: Report) -> TrialResult:
    """One tracked run: params, data versions, metrics, model and confusion matrix."""
    started = time.monotonic()
    framework = "torch" if trial.family == "torch-mlp" else "sklearn"
    tags: dict[str, object] = {"demo": "digits", "framework": framework, "model": trial.family}
    with mlbox.start_run(trial.name, experiment=EXPERIMENT, tags=tags) as run:
        mlbox.log_params({"model": trial.family, **asdict(trial.config), "input": "x/16"})
        train = mlbox.log_dataset(
            as_frame(split.x_train, split.y_train), "digits-train", source=split.description
        )
        mlbox.set_tag("train_data", train.digest[:12])  # filter runs by data version: tags.train_data = '…'
        if split.training_set_id is not None:  # lineage: the feature-store training set the rows came from
            mlbox.set_tag("training_set", split.training_set_id)
        mlbox.log_dataset(
            as_frame(split.x_val, split.y_val), "digits-val", context="validation", source=split.description
        )
        config = trial.config
        if isinstance(config, MlpConfig):
            val = _run_mlp(config, split, report)
        elif isinstance(config, LogRegConfig):
            val = _run_logreg(config, split, report)
        else:
            val = _run_forest(config, split, report)
        mlbox.log_text(confusion_csv(val.confusion), CONFUSION)
    return TrialResult(
        run_id=run.id,
        name=trial.name,
        family=trial.family,
        val_acc=val.accuracy,
        val_loss=val.log_loss,
        seconds=time.monotonic() - started,
        model_path=trial.model_path,
    )
