"""What the Sweeps view shows, computed from the sweep service's values: pure functions, no Textual.

Rows of the sweeps table (`sweep_rows`), of the selected sweep's trials
(`trial_rows`, the best complete trial marked) and the curves of the values
each trial reported to the study (`trial_curves`): what the pruner saw, so a
pruned trial's curve ends where it was stopped, and is drawn so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlbox.sweeps.schemas import Sweep, Trial
from mlbox.tui.views import format as fmt

TRIAL_STYLES: dict[str, str] = {
    "running": "bold #4ea1ff",
    "complete": "#3fb950",
    "pruned": "#d29922",
    "failed": "bold #f85149",
}
TRIAL_ICONS: dict[str, str] = {"running": "▶", "complete": "✔", "pruned": "✂", "failed": "✘"}
SWEEP_STYLES: dict[str, str] = {
    "running": "bold #4ea1ff",
    "stopping": "bold #d29922",
    "finished": "#3fb950",
    "stopped": "#d29922",
    "failed": "bold #f85149",
}
BEST_STYLE = "bold #3fb950"
MAX_CURVES = 40
"""Curves drawn at most (the newest trials, plus the best and the selected one): more is a blur."""
MAX_PARAMS = 60


def params_text(params: Mapping[str, Any], width: int = MAX_PARAMS) -> str:
    """``lr=0.0031 depth=4 opt=adam``, numbers in 4 significant digits, cut to ``width``."""
    parts = []
    for key, value in params.items():
        if isinstance(value, float):
            value = fmt.number(value, 4)
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def clip(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def value_text(value: float | None) -> str:
    return "-" if value is None else fmt.number(value, 5)


@dataclass(frozen=True)
class SweepRow:
    id: int
    name: str
    state: str
    trials: str
    """``7/20``: trials asked so far of the sweep's budget."""
    counts: str
    """``5✔ 1✂ 1▶``: trials per state."""
    objective: str
    """``loss ↓ last``: the metric, its direction and which value of the series counts."""
    best: str
    search: str
    """``tpe · median``: sampler and pruner."""
    created: str

    @property
    def key(self) -> str:
        return str(self.id)


def counts_text(counts: Mapping[str, int]) -> str:
    return " ".join(f"{counts[s]}{TRIAL_ICONS[s]}" for s in TRIAL_ICONS if counts.get(s)) or "-"


def sweep_rows(sweeps: Iterable[Sweep]) -> list[SweepRow]:
    rows = []
    for s in sweeps:
        spec = s.spec
        arrow = "↓" if spec.direction == "minimize" else "↑"
        best = "-" if s.best_trial is None else f"{value_text(s.best_value)} (t{s.best_trial})"
        rows.append(
            SweepRow(
                id=s.id,
                name=s.name,
                state=s.state,
                trials=f"{sum(s.counts.values())}/{spec.n_trials}",
                counts=counts_text(s.counts),
                objective=f"{spec.metric} {arrow} {spec.objective}",
                best=best,
                search=f"{spec.sampler} · {spec.pruner}",
                created=fmt.when(s.created_at),
            )
        )
    return rows


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str
    params: str
    value: str
    step: str
    """The last step reported to the study."""
    best: bool
    job_id: int | None
    run_id: int | None
    note: str

    @property
    def key(self) -> str:
        return str(self.number)


def trial_rows(trials: Iterable[Trial], best: int | None) -> list[TrialRow]:
    """Trials by number; ``best`` is the sweep's best complete trial (None while there is none)."""
    return [
        TrialRow(
            number=t.number,
            state=t.state,
            params=params_text(t.params),
            value=value_text(t.value),
            step="-" if t.last_step is None else str(t.last_step),
            best=t.number == best,
            job_id=t.job_id,
            run_id=t.run_id,
            note=t.message or "",
        )
        for t in sorted(trials, key=lambda t: t.number)
    ]


@dataclass(frozen=True)
class Curve:
    number: int
    state: str
    steps: list[int]
    values: list[float]
    best: bool
    selected: bool

    @property
    def label(self) -> str:
        """What the legend says: the best, the selected and pruned trials are named."""
        if self.best:
            return f"t{self.number} best"
        if self.state == "pruned":
            at = f"@{self.steps[-1]}" if self.steps else ""
            return f"t{self.number} pruned{at}"
        return f"t{self.number}"


def trial_curves(
    curves: Mapping[int, Sequence[tuple[int, float | None]]],
    trials: Iterable[Trial],
    best: int | None,
    selected: int | None = None,
    limit: int = MAX_CURVES,
) -> list[Curve]:
    """One curve per trial with reported values, drawn in this order: the others first, then
    pruned ones, then the selected and the best on top. NaN/inf points are left out."""
    states = {t.number: t.state for t in trials}
    numbers = sorted(n for n in curves if n in states)
    keep = set(numbers[-limit:]) | {n for n in (best, selected) if n in states}
    out = []
    for n in numbers:
        if n not in keep:
            continue
        points = [(s, v) for s, v in curves[n] if v is not None and math.isfinite(v)]
        if not points:
            continue
        out.append(
            Curve(
                number=n,
                state=states[n],
                steps=[s for s, _ in points],
                values=[v for _, v in points],
                best=n == best,
                selected=n == selected,
            )
        )

    def layer(c: Curve) -> tuple[int, int]:
        return (3 if c.best else 2 if c.selected else 1 if c.state == "pruned" else 0, c.number)

    return sorted(out, key=layer)


# -- analysis: parameter importance, each parameter against the objective, parallel coordinates --

IMPORTANCE_TREES = 32
"""fANOVA's forest size: Optuna's 64 takes seconds on a busy machine; 32 ranks parameters alike."""


def param_names(trials: Iterable[Trial]) -> list[str]:
    """Every parameter any trial drew, in first-seen order (a define-by-run space varies)."""
    names: dict[str, None] = {}
    for t in sorted(trials, key=lambda t: t.number):
        for key in t.params:
            names.setdefault(key, None)
    return list(names)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def objective(
    trial: Trial, curves: Mapping[int, Sequence[tuple[int, float | None]]] | None = None
) -> float | None:
    """A trial's value on the objective: its final value, or (pruned, no value) the last value it
    reported before the pruner stopped it; None when there is neither."""
    if trial.value is not None and math.isfinite(trial.value):
        return trial.value
    if trial.state == "pruned" and curves is not None:
        reported = [v for _, v in curves.get(trial.number, ()) if v is not None and math.isfinite(v)]
        if reported:
            return reported[-1]
    return None


def finished(trials: Iterable[Trial]) -> list[Trial]:
    """Complete trials with a finite value: what importance is computed from."""
    return [t for t in trials if t.state == "complete" and t.value is not None and math.isfinite(t.value)]


@dataclass(frozen=True)
class Importance:
    values: dict[str, float]
    """Parameter -> importance (they sum to 1), most important first; empty with a note."""
    note: str


def importance_note(trials: Sequence[Trial]) -> str | None:
    """Why importance cannot be computed yet (None when it can be tried)."""
    done = finished(trials)
    if len(done) < 2:
        return f"parameter importance needs 2 finished trials ({len(done)} so far)"
    if not param_names(done):
        return "the finished trials have no parameters"
    return None


def param_importances(trials: Sequence[Trial], direction: str) -> Importance:
    """Optuna's fANOVA importance over the complete trials (seeded: the same trials give the same
    bars). The distributions are read off the values drawn, so a define-by-run space works too;
    a parameter that never varied is left out."""
    note = importance_note(trials)
    if note is not None:
        return Importance({}, note)
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = finished(trials)
    names = [
        n
        for n in param_names(done)
        if all(n in t.params for t in done) and len({str(t.params[n]) for t in done}) > 1
    ]  # a parameter that never varied cannot explain anything: no bar
    dists: dict[str, BaseDistribution] = {}
    for name in names:
        values = [t.params[name] for t in done]
        if all(is_number(v) for v in values):
            low, high = min(values), max(values)
            if all(isinstance(v, int) for v in values):
                dists[name] = IntDistribution(int(low), int(high))
            else:
                dists[name] = FloatDistribution(float(low), float(high))
        else:
            dists[name] = CategoricalDistribution(sorted({str(v) for v in values}))
    if not dists:
        return Importance({}, "no parameter varied across the finished trials")
    study = optuna.create_study(direction="maximize" if direction == "maximize" else "minimize")
    for t in done:
        params = {n: t.params[n] if is_number(t.params[n]) else str(t.params[n]) for n in dists}
        study.add_trial(
            create_trial(state=TrialState.COMPLETE, value=t.value, params=params, distributions=dists)
        )
    try:
        got = optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(n_trees=IMPORTANCE_TREES, seed=0)
        )
    except (RuntimeError, ValueError) as exc:  # e.g. every parameter took a single value
        return Importance({}, f"no importance: {exc}")
    if not got:
        return Importance({}, "no parameter varied across the finished trials")
    return Importance(dict(got), f"fANOVA over {len(done)} finished trials")


@dataclass(frozen=True)
class Axis:
    """One parameter as a plot axis: numbers as they are, other values by their sorted index."""

    name: str
    labels: list[str]
    """The category names (empty for a numeric axis)."""

    def place(self, value: Any) -> float | None:
        if value is None:
            return None
        if not self.labels:
            return float(value) if is_number(value) else None
        text = str(value)
        return float(self.labels.index(text)) if text in self.labels else None


def axis(name: str, trials: Iterable[Trial]) -> Axis:
    values = [t.params[name] for t in trials if name in t.params]
    if all(is_number(v) for v in values):
        return Axis(name, [])
    return Axis(name, sorted({str(v) for v in values}))


@dataclass(frozen=True)
class Points:
    """A parameter against the objective: finished trials and pruned ones apart."""

    axis: Axis
    done: list[tuple[float, float]]
    pruned: list[tuple[float, float]]
    """Pruned trials at the last value they reported."""
    best: tuple[float, float] | None


def param_points(
    name: str,
    trials: Sequence[Trial],
    curves: Mapping[int, Sequence[tuple[int, float | None]]],
    best: int | None,
) -> Points:
    ax = axis(name, trials)
    done: list[tuple[float, float]] = []
    pruned: list[tuple[float, float]] = []
    top = None
    for t in sorted(trials, key=lambda t: t.number):
        x, y = ax.place(t.params.get(name)), objective(t, curves)
        if x is None or y is None or t.state not in ("complete", "pruned"):
            continue
        (pruned if t.state == "pruned" else done).append((x, y))
        if t.number == best:
            top = (x, y)
    return Points(ax, done, pruned, top)


@dataclass(frozen=True)
class Line:
    """One trial across the parallel axes, each value scaled to 0–1 on its axis."""

    number: int
    state: str
    xs: list[float]
    ys: list[float]
    best: bool


def unit(value: float, low: float, high: float) -> float:
    """``value`` on 0..1 between ``low`` and ``high`` (the middle when they are equal)."""
    return 0.5 if high <= low else (value - low) / (high - low)


def parallel_lines(
    trials: Sequence[Trial],
    curves: Mapping[int, Sequence[tuple[int, float | None]]],
    best: int | None,
    limit: int = MAX_CURVES,
) -> tuple[list[str], list[Line]]:
    """The axes (the parameters, then the objective) and a line per trial, each axis scaled to
    0–1 over the trials drawn. A pruned trial's line ends at the last value it reported; one
    that reported nothing ends at its last parameter. Running and failed trials are left out."""
    shown = [t for t in trials if t.state in ("complete", "pruned")]
    shown = sorted(shown, key=lambda t: t.number)
    keep = {t.number for t in shown[-limit:]} | ({best} if best is not None else set())
    shown = [t for t in shown if t.number in keep]
    names = param_names(shown)
    axes = [axis(n, shown) for n in names]
    spans: list[tuple[float, float]] = []
    for ax in axes:
        placed = [p for p in (ax.place(t.params.get(ax.name)) for t in shown) if p is not None]
        spans.append((min(placed), max(placed)) if placed else (0.0, 0.0))
    values = [v for v in (objective(t, curves) for t in shown) if v is not None]
    span = (min(values), max(values)) if values else (0.0, 0.0)
    lines = []
    for t in shown:
        xs: list[float] = []
        ys: list[float] = []
        for i, (ax, (low, high)) in enumerate(zip(axes, spans, strict=True)):
            p = ax.place(t.params.get(ax.name))
            if p is not None:
                xs.append(float(i))
                ys.append(unit(p, low, high))
        v = objective(t, curves)
        if v is not None:
            xs.append(float(len(axes)))
            ys.append(unit(v, *span))
        if xs:
            lines.append(Line(t.number, t.state, xs, ys, t.number == best))
    lines.sort(key=lambda ln: (2 if ln.best else 0 if ln.state == "pruned" else 1, ln.number))
    return names, lines
