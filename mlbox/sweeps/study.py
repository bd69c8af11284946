"""Optuna's side of a sweep: samplers, pruners, and the study rebuilt from mlbox's tables.

The study lives in mlbox's SQLite database (`mlbox.sweeps.migrations`), not in
an Optuna storage: each trial's params, distributions, system attributes
(where pruners and the grid sampler keep their state) and reported values are
rows written in the same transaction as the trial's job. A driving process
rebuilds an in-memory Optuna study from those rows (`rebuild`) and keeps it
while the sweep's ``revision`` says nobody else moved it on. Nothing here
touches the database: records in, Optuna objects out.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlbox.store.errors import InvalidInput
from mlbox.sweeps.schemas import SweepSpec
from mlbox.sweeps.space import Space

if TYPE_CHECKING:
    import optuna

STATES = {"running": "RUNNING", "complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclass
class TrialRecord:
    """One trial as the tables hold it."""

    number: int
    state: str
    params: dict[str, Any]
    distributions: dict[str, str]
    """Each parameter's distribution as Optuna's JSON (``distribution_to_json``)."""
    system_attrs: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    values: dict[int, float] = field(default_factory=dict)
    """Intermediate values reported so far, by step."""


def sampler_seed(seed: int | None, n_trials: int) -> int | None:
    """The seed of a sampler rebuilt over ``n_trials`` existing trials (pure).

    A sampler's random state is not stored, so a study rebuilt with the spec's
    seed would draw its first values again and repeat trials; seeding it from
    (seed, trials so far) keeps it deterministic without repeating. With no
    trial yet it is the spec's seed, so an uninterrupted sweep samples as plain
    Optuna with that seed does.
    """
    if seed is None or n_trials == 0:
        return seed
    return (seed * 1_000_003 + n_trials * 7_919) % 2**32


def make_sampler(spec: SweepSpec, space: Space, *, n_trials: int = 0) -> optuna.samplers.BaseSampler:
    optuna = _optuna()
    args = dict(spec.sampler_args)
    seed = sampler_seed(spec.seed, n_trials)
    try:
        if spec.sampler == "grid":
            return _grid_sampler_class()(space.grid(), seed=seed, **args)
        if spec.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed, **args)
        return optuna.samplers.TPESampler(seed=seed, **args)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"sampler {spec.sampler}: {exc}", field="sampler_args") from None


@functools.cache
def _grid_sampler_class() -> type[optuna.samplers.GridSampler]:
    from optuna.samplers import GridSampler

    class SweepGridSampler(GridSampler):
        """Optuna's grid sampler without its ``study.stop()`` once the grid is used up: that
        works only inside ``optimize`` (ask and tell raise); a sweep caps its trials at the
        grid's size instead."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return SweepGridSampler


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    optuna = _optuna()
    classes = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "asha": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
    }
    try:
        return classes[spec.pruner](**spec.pruner_args)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"pruner {spec.pruner}: {exc}", field="pruner_args") from None


def new_study(study_name: str, spec: SweepSpec, space: Space, *, n_trials: int = 0) -> optuna.Study:
    """An empty in-memory study (to hold ``n_trials`` rebuilt trials); its name is stable
    (Hyperband derives brackets from it)."""
    optuna = _optuna()
    return optuna.create_study(
        study_name=study_name,
        direction=spec.direction,
        sampler=make_sampler(spec, space, n_trials=n_trials),
        pruner=make_pruner(spec),
    )


def rebuild(study_name: str, spec: SweepSpec, space: Space, records: list[TrialRecord]) -> optuna.Study:
    """The study as the records describe it; trial numbers equal the records' numbers."""
    optuna = _optuna()
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState, create_trial

    study = new_study(study_name, spec, space, n_trials=len(records))
    for i, r in enumerate(sorted(records, key=lambda r: r.number)):
        if r.number != i:
            raise ValueError(f"sweep trials are not numbered 0..n-1 (found {r.number} at {i})")
        state = TrialState[STATES[r.state]]
        value = r.value if state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        if value is not None and not math.isfinite(value):
            value = None
        if state == TrialState.COMPLETE and value is None:
            state = TrialState.FAIL
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=r.params,
                distributions={k: json_to_distribution(v) for k, v in r.distributions.items()},
                intermediate_values=dict(r.values),
                system_attrs=dict(r.system_attrs),
            )
        )
    assert isinstance(study, optuna.Study)
    return study


@dataclass(frozen=True)
class Asked:
    """A new trial: what the job gets and what the row keeps."""

    number: int
    params: dict[str, Any]
    distributions: dict[str, str]
    system_attrs: dict[str, Any]


def ask(study: optuna.Study, space: Space) -> Asked:
    """Ask the sampler for the next trial (a declared space, or the define-by-run function)."""
    from optuna.distributions import distribution_to_json

    if space.is_function:
        trial = study.ask()
        try:
            space.function()(trial)
        except Exception:
            study.tell(trial, state=_optuna().trial.TrialState.FAIL)
            raise
    else:
        trial = study.ask(space.distributions())
    frozen = study.trials[trial.number]
    return Asked(
        number=trial.number,
        params=dict(trial.params),
        distributions={k: distribution_to_json(d) for k, d in frozen.distributions.items()},
        system_attrs=json_safe(frozen.system_attrs),
    )


def report(
    study: optuna.Study, number: int, points: list[tuple[int, float]], *, may_prune: bool = True
) -> tuple[list[tuple[int, float]], bool]:
    """Report new intermediate values in step order, asking the pruner after each one as
    Optuna's own loop does (successive halving records its rungs at exactly those steps).

    Returns the points reported and whether the pruner said stop; with ``may_prune``
    reporting ends at the first stop, as a pruned trial reports nothing more.
    """
    optuna = _optuna()
    frozen = study.trials[number]
    trial = optuna.Trial(study, frozen._trial_id)
    done: list[tuple[int, float]] = []
    prune = False
    for step, value in points:
        if step in frozen.intermediate_values:
            continue
        trial.report(value, step)
        done.append((step, value))
        if trial.should_prune():
            prune = True
            if may_prune:
                break
    return done, prune


def tell(study: optuna.Study, number: int, state: str, value: float | None = None) -> float | None:
    """Finish a trial (``complete``, ``pruned`` or ``failed``); returns the value Optuna kept."""
    optuna = _optuna()
    ts = optuna.trial.TrialState
    if state == "complete":
        study.tell(number, value)
    else:
        study.tell(number, state=ts.PRUNED if state == "pruned" else ts.FAIL)
    return study.trials[number].value


def system_attrs(study: optuna.Study, number: int) -> dict[str, Any]:
    return json_safe(study.trials[number].system_attrs)


def json_safe(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """System attributes as JSON keeps them (tuples become lists, as Optuna's own storages do)."""
    return dict(json.loads(json.dumps(dict(attrs), default=str)))


def objective_value(values: list[float], objective: str, direction: str) -> float | None:
    """A finished trial's value from its metric series (step order): the last or the best point."""
    finite = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    if objective == "last":
        return values[-1]
    if not finite:
        return math.nan
    return min(finite) if direction == "minimize" else max(finite)
