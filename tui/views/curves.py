"""How a metric curve is drawn: the x axis, EMA smoothing, log y and the min/max/last marks. Pure.

Smoothing is TensorBoard's: an exponential moving average debiased at the
start (so the first points are not pulled towards zero), its weight stepped
by a key like a slider. The x axis is the step, the wall-clock time, or the
time since the run's first point (relative), in hours when that reads
better than seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

XAxis = Literal["step", "wall", "relative"]
X_AXES: tuple[XAxis, ...] = ("step", "relative", "wall")
SMOOTHING: tuple[float, ...] = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
"""The weights the smoothing key steps through (0: off)."""


@dataclass(frozen=True)
class CurveOptions:
    x: XAxis = "step"
    smoothing: float = 0.0
    log_y: bool = False

    def next_x(self) -> CurveOptions:
        return replace(self, x=X_AXES[(X_AXES.index(self.x) + 1) % len(X_AXES)])

    def step_smoothing(self, by: int) -> CurveOptions:
        """The next weight up (``by`` 1) or down (-1), stopping at the ends."""
        i = min(range(len(SMOOTHING)), key=lambda k: abs(SMOOTHING[k] - self.smoothing))
        return replace(self, smoothing=SMOOTHING[max(0, min(len(SMOOTHING) - 1, i + by))])

    def toggle_log(self) -> CurveOptions:
        return replace(self, log_y=not self.log_y)

    def describe(self) -> str:
        """The options as one line for the plot's title, e.g. ``x relative (s) · EMA 0.9 · log y``."""
        parts = [f"x {self.x}"]
        if self.smoothing:
            parts.append(f"EMA {self.smoothing:g}")
        if self.log_y:
            parts.append("log y")
        return " · ".join(parts)


def ema(values: Sequence[float], weight: float) -> list[float]:
    """The debiased exponential moving average of ``values`` (``weight`` 0: the values)."""
    if not weight:
        return list(values)
    out: list[float] = []
    last = 0.0
    for i, v in enumerate(values, start=1):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight**i))
    return out


def x_values(steps: Sequence[int], ts: Sequence[float], axis: XAxis, t0: float | None = None) -> list[float]:
    """The x of each point: its step, its time (Unix seconds), or seconds since ``t0`` (the first point)."""
    if axis == "step":
        return [float(s) for s in steps]
    if axis == "wall":
        return list(ts)
    start = t0 if t0 is not None else (ts[0] if ts else 0.0)
    return [t - start for t in ts]


def x_label(axis: XAxis, span_s: float) -> tuple[str, float]:
    """The x axis's label and the divisor of its values: relative time in s, min or h."""
    if axis == "step":
        return "step", 1.0
    if axis == "wall":
        return "time (unix s)", 1.0
    if span_s >= 3 * 3600:
        return "hours since start", 3600.0
    if span_s >= 3 * 60:
        return "minutes since start", 60.0
    return "seconds since start", 1.0


def log_safe(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points a log y axis can place (y > 0)."""
    kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0 and math.isfinite(y)]
    return [x for x, _ in kept], [y for _, y in kept]


@dataclass(frozen=True)
class Marks:
    """Where a curve is lowest, highest and last: (x, y) of each."""

    low: tuple[float, float]
    high: tuple[float, float]
    last: tuple[float, float]


def marks(xs: Sequence[float], ys: Sequence[float]) -> Marks | None:
    if not ys:
        return None
    lo = min(range(len(ys)), key=ys.__getitem__)
    hi = max(range(len(ys)), key=ys.__getitem__)
    return Marks((xs[lo], ys[lo]), (xs[hi], ys[hi]), (xs[-1], ys[-1]))
