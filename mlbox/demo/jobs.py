"""What the demo's jobs run, each in its own process started by the scheduler.

``train`` is a function-reference job (``JobSpec(function="mlbox.demo.jobs:train",
kwargs=...)``); ``sweep_trial`` is the command every trial of the sweep runs
(``python -m mlbox.scheduler.entry mlbox.demo.jobs:sweep_trial``), reading its
parameters with `mlbox.trial_params`. Either way the scheduler created a
tracking run for the job and put its id in ``MLBOX_RUN_ID``, so the
``mlbox.start_run()`` inside `trials.run_trial` attaches to that run: the
code is the same a user would run by hand.

Kept light to import (numpy, and mlbox's client): a job pays for torch or
scikit-learn only when its model needs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlbox
from mlbox.demo.digits import read_split
from mlbox.store.errors import InvalidInput

DATA_ENV = "MLBOX_DEMO_DATA"
"""The folder of the split (`digits.save_split`) a sweep trial reads."""
EPOCHS_ENV = "MLBOX_DEMO_EPOCHS"
SWEEP_DEFAULTS: dict[str, Any] = {"lr": 0.003, "hidden": 64}
THREADS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""One thread per job: the scheduler gives each job one core, and these models are too small
to gain from more (on a busy machine spinning threads made them several times slower)."""


def _silent(done: int, val_acc: float) -> None:
    """The demo follows a job through its run's metrics, so nothing is reported in-process."""


def train(name: str, family: str, config: dict[str, Any], data: str) -> None:
    """One trial of the demo's grid (`trials.plan`) as a job."""
    from mlbox.demo.trials import run_trial, trial_from_kwargs

    trial = trial_from_kwargs(name, family, config)
    split = read_split(Path(data))  # first: a missing split fails before torch is imported
    if family == "torch-mlp":
        from mlbox.demo.mlp import limit_threads

        limit_threads(1)
    run_trial(trial, split, _silent)


def sweep_trial() -> None:
    """One trial of the demo's sweep: an MLP with the sampled ``lr`` and ``hidden``.

    Its ``val_acc`` per epoch is what the sweep's pruner (ASHA) watches; a trial
    the pruner stops is cancelled by the scheduler mid-training.
    """
    from mlbox.demo.mlp import MlpConfig, limit_threads
    from mlbox.demo.trials import Trial, run_trial

    data = os.environ.get(DATA_ENV)
    if not data:
        raise InvalidInput(f"{DATA_ENV} is not set: where is the demo's split?", field=DATA_ENV)
    p = mlbox.trial_params(SWEEP_DEFAULTS)
    config = MlpConfig(
        hidden=int(p["hidden"]), lr=float(p["lr"]), epochs=int(os.environ.get(EPOCHS_ENV, "8"))
    )
    split = read_split(Path(data))
    limit_threads(1)
    run_trial(Trial(f"mlp-h{config.hidden}-lr{config.lr:.2g}", config), split, _silent)
