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
