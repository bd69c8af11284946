"""Pure views of the Monitor screen: one row per monitored alias, drift rows by severity,
performance series for the chart, alert lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlbox.monitoring.drift import Verdict, severity
from mlbox.monitoring.schemas import Alert, Evaluation


@dataclass(frozen=True)
class Target:
    """A served alias and what its latest window says (``evaluation`` None: ``note`` says why)."""

    ref: str
    version: int
    evaluation: Evaluation | None
    note: str = ""

    @property
    def key(self) -> str:
        return self.ref


def pct(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1%}"


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def target_cells(t: Target, open_alerts: int) -> tuple[str, ...]:
    """model@alias, version, rows, drifted, realised / estimated accuracy, alerts."""
    ev = t.evaluation
    if ev is None:
        return (t.ref, str(t.version), "–", t.note, "–", "–", str(open_alerts) if open_alerts else "")
    drifted = sum(v.drifted for v in ev.drift)
    p = ev.performance
    return (
        t.ref,
        str(t.version),
        f"{ev.rows:,}",
        f"{drifted}/{len(ev.drift)}",
        num(p.accuracy),
        num(p.estimated_accuracy),
        str(open_alerts) if open_alerts else "",
    )


def drift_cells(v: Verdict) -> tuple[str, ...]:
    """column, test, statistic, p-value, verdict (a bar of severity up to 6 cells)."""
    level = severity(v)
    bar = "█" * max(1, min(6, round(level * 3))) if math.isfinite(level) else "█" * 6
    return (
        v.column,
        v.test,
        f"{v.statistic:.3g}",
        "–" if v.p_value is None else f"{v.p_value:.2g}",
        ("DRIFT " if v.drifted else "ok    ") + bar,
    )


def sorted_drift(ev: Evaluation) -> list[Verdict]:
    return sorted(ev.drift, key=severity, reverse=True)


def performance_series(ev: Evaluation) -> tuple[list[float], list[float], list[float]]:
    """x (bucket index), realised accuracy and estimated accuracy (NaN where unknown)."""
    xs = [float(i + 1) for i in range(len(ev.over_time))]
    real = [math.nan if b.performance.accuracy is None else b.performance.accuracy for b in ev.over_time]
    est = [
        math.nan if b.performance.estimated_accuracy is None else b.performance.estimated_accuracy
        for b in ev.over_time
    ]
    return xs, real, est


def alert_lines(alerts: Sequence[Alert], ref: str | None = None) -> list[str]:
    """Open alerts, the selected alias's first."""
    chosen = sorted(alerts, key=lambda a: (f"{a.model}@{a.alias}" != ref, -a.raised_at))
    return [f"● {a.model}@{a.alias} · {a.check}: {a.message}" for a in chosen]


def summary(targets: Sequence[Target], alerts: Sequence[Alert]) -> str:
    evaluated = [t for t in targets if t.evaluation is not None]
    drifting = sum(
        1 for t in evaluated if t.evaluation is not None and any(v.drifted for v in t.evaluation.drift)
    )
    if not targets:
        return "no served model: give a registered model an alias, then store its reference (mlbox monitor reference)"
    return (
        f"{len(targets)} served alias{'' if len(targets) == 1 else 'es'} · {len(evaluated)} with a reference and traffic"
        f" · {drifting} drifting · {len(alerts)} open alert{'' if len(alerts) == 1 else 's'}"
    )


def shap_bars(values: dict[str, float], k: int = 8, width: int = 24) -> list[tuple[str, float, str]]:
    """The ``k`` largest attributions (by size) as (feature, value, bar): the bar's length is the
    value's share of the largest, ``+`` pushing the prediction up and ``-`` down."""
    ranked = sorted(values.items(), key=lambda kv: -abs(kv[1]))[:k]
    top = max((abs(v) for _, v in ranked), default=0.0) or 1.0
    return [(f, v, ("+" if v >= 0 else "-") * max(1, round(width * abs(v) / top))) for f, v in ranked]
