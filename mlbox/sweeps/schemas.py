"""What a sweep is asked to do (`SweepSpec`) and what it has done (`Sweep`, `Trial`)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from mlbox.scheduler.environment import EnvPolicy

Direction = Literal["minimize", "maximize"]
SamplerName = Literal["tpe", "random", "grid"]
PrunerName = Literal["none", "median", "asha", "hyperband"]
Objective = Literal["last", "best"]
SweepState = Literal["running", "stopping", "finished", "stopped", "failed"]
TrialState = Literal["running", "complete", "pruned", "failed"]

SAMPLERS: tuple[str, ...] = ("tpe", "random", "grid")
PRUNERS: tuple[str, ...] = ("none", "median", "asha", "hyperband")
LIVE_SWEEP_STATES = ("running", "stopping")


class SweepSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A sweep as submitted (the API's body; the CLI builds the same).

    ``space`` is a declared space (see `mlbox.sweeps.space`); ``space_source``
    is Python source defining ``space`` instead (give one of the two). The
    trial ``command`` may hold ``{param}`` placeholders; every trial also gets
    ``MLBOX_TRIAL_PARAMS`` (JSON) in its environment. ``objective`` says which
    value of the metric series a finished trial is judged by: its ``last`` or
    its ``best`` point.
    """

    metric: str
    command: list[str]
    space: dict[str, Any] | None = None
    space_source: str | None = None
    space_filename: str = "<space>"
    name: str | None = None
    direction: Direction = "minimize"
    objective: Objective = "last"
    n_trials: int = 20
    parallel: int = 1
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "none"
    seed: int | None = None
    sampler_args: dict[str, Any] = {}
    pruner_args: dict[str, Any] = {}
    gpus_per_trial: int = 0
    cpus_per_trial: float = 1.0
    env: dict[str, str] = {}
    env_policy: EnvPolicy = "appliance"
    """What each trial's ``env`` is laid over, as `JobSpec.env_policy`: ``mlbox sweep`` captures
    the submitter's environment (``inherit``); an API body's ``env`` is laid over the appliance's."""
    workdir: str | None = None
    experiment: str | None = None
    timeout_s: float | None = None
    trial_timeout_s: float | None = None


class Trial(msgspec.Struct, frozen=True):
    sweep_id: int
    number: int
    state: TrialState
    params: dict[str, Any]
    value: float | None
    job_id: int | None
    run_id: int | None
    last_step: int | None
    started_at: float
    finished_at: float | None
    message: str | None


class Sweep(msgspec.Struct, frozen=True):
    id: int
    name: str
    state: SweepState
    spec: SweepSpec
    experiment: str
    created_at: float
    finished_at: float | None
    message: str | None
    counts: dict[str, int] = {}
    """Trials per state (running, complete, pruned, failed)."""
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] | None = None


class SweepDetail(msgspec.Struct, frozen=True):
    sweep: Sweep
    trials: list[Trial]
