"""Profiles: per-column summaries that merge, so a day's profile is the sum of its windows'.

A reference profile fixes each numeric column's bin edges (its quantiles, plus
its min and max); a window is profiled *like* the reference (same edges, same
kinds), so two windows' profiles add up count by count and PSI or
Jensen–Shannon can be read straight off the counts. Pure functions of frames:
no I/O here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import msgspec
import numpy as np

from mlbox.monitoring import stats
from mlbox.monitoring.drift import column_kind

if TYPE_CHECKING:
    import pandas as pd

BINS = 20
MAD_SCALE = 0.6745
"""Iglewicz and Hoaglin's modified z-score: ``0.6745 * (x - median) / MAD``."""
OUTLIER_Z = 3.5


class ColumnProfile(msgspec.Struct):
    kind: Literal["numeric", "categorical"]
    dtype: str
    count: int = 0
    """Rows with a value (not missing, not NaN)."""
    missing: int = 0
    infinite: int = 0
    edges: list[float] = []
    """Inner bin edges (numeric): ``counts`` has one more entry than ``edges``."""
    counts: list[int] = []
    minimum: float | None = None
    maximum: float | None = None
    total: float = 0.0
    total_sq: float = 0.0
    below: int = 0
    """Values under the reference's minimum (a window profiled like a reference)."""
    above: int = 0
    median: float | None = None
    mad: float | None = None
    categories: dict[str, int] = {}

    @property
    def rows(self) -> int:
        return self.count + self.missing + self.infinite

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def std(self) -> float | None:
        if not self.count:
            return None
        mean = self.total / self.count
        return math.sqrt(max(self.total_sq / self.count - mean * mean, 0.0))


class Profile(msgspec.Struct):
    rows: int
    columns: dict[str, ColumnProfile]


def _numeric_values(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def profile_column(values: pd.Series, like: ColumnProfile | None = None) -> ColumnProfile:
    """One column's profile; ``like`` (the reference's) fixes the kind and bins and counts the
    values outside its range."""
    kind = like.kind if like is not None else column_kind(values)
    dtype = str(values.dtype)
    if kind == "categorical":
        counts = values.astype("string").value_counts(dropna=True)
        return ColumnProfile(
            kind,
            dtype,
            count=int(counts.sum()),
            missing=int(len(values) - counts.sum()),
            categories={str(k): int(v) for k, v in counts.items()},
        )
    try:
        a = _numeric_values(values)
    except (TypeError, ValueError):  # text where numbers were: every value is unusable
        return ColumnProfile(kind, dtype, missing=len(values), edges=like.edges if like else [], counts=[])
    nan = np.isnan(a)
    inf = np.isinf(a)
    finite = a[~nan & ~inf]
    edges = np.asarray(like.edges) if like is not None else stats.quantile_edges(finite, BINS)
    p = ColumnProfile(
        kind,
        dtype,
        count=int(finite.size),
        missing=int(nan.sum()),
        infinite=int(inf.sum()),
        edges=[float(e) for e in edges],
        counts=stats.binned(finite, edges).tolist(),
        minimum=float(finite.min()) if finite.size else None,
        maximum=float(finite.max()) if finite.size else None,
        total=float(finite.sum()),
        total_sq=float(np.square(finite).sum()),
    )
    if like is None and finite.size:
        median = float(np.median(finite))
        p.median = median
        p.mad = float(np.median(np.abs(finite - median)))
    if like is not None and like.minimum is not None and like.maximum is not None:
        p.below = int((finite < like.minimum).sum())
        p.above = int((finite > like.maximum).sum())
    return p


def profile(frame: pd.DataFrame, like: Profile | None = None) -> Profile:
    """Every column's profile (``like``'s columns that the frame has, when given)."""
    names = [str(c) for c in frame.columns]
    if like is not None:
        names = [c for c in like.columns if c in frame.columns]
    return Profile(
        rows=len(frame),
        columns={c: profile_column(frame[c], like.columns[c] if like is not None else None) for c in names},
    )


def merge_column(a: ColumnProfile, b: ColumnProfile) -> ColumnProfile:
    """The profile of both windows' rows (both profiled like the same reference)."""
    if a.kind != b.kind or (a.kind == "numeric" and a.edges != b.edges):
        raise ValueError("only profiles made like the same reference merge")
    categories = dict(a.categories)
    for k, v in b.categories.items():
        categories[k] = categories.get(k, 0) + v
    counts = (
        (np.asarray(a.counts, np.int64) + np.asarray(b.counts, np.int64)).tolist()
        if a.counts and b.counts
        else a.counts or b.counts
    )
    mins = [m for m in (a.minimum, b.minimum) if m is not None]
    maxs = [m for m in (a.maximum, b.maximum) if m is not None]
    return ColumnProfile(
        a.kind,
        a.dtype,
        count=a.count + b.count,
        missing=a.missing + b.missing,
        infinite=a.infinite + b.infinite,
        edges=a.edges,
        counts=counts,
        minimum=min(mins) if mins else None,
        maximum=max(maxs) if maxs else None,
        total=a.total + b.total,
        total_sq=a.total_sq + b.total_sq,
        below=a.below + b.below,
        above=a.above + b.above,
        categories=categories,
    )


def merge(a: Profile, b: Profile) -> Profile:
    columns = dict(a.columns)
    for name, col in b.columns.items():
        columns[name] = merge_column(columns[name], col) if name in columns else col
    return Profile(rows=a.rows + b.rows, columns=columns)


def outlier_scores(frame: pd.DataFrame, reference: Profile) -> np.ndarray:
    """Each row's largest modified z-score over the numeric columns, fitted on the reference
    (median and MAD): robust to the outliers it looks for, and cheap on millions of rows."""
    score = np.zeros(len(frame))
    for name, col in reference.columns.items():
        if col.kind != "numeric" or name not in frame.columns or col.median is None or not col.mad:
            continue
        try:
            a = _numeric_values(frame[name])
        except (TypeError, ValueError):
            continue
        z = np.abs(MAD_SCALE * (a - col.median) / col.mad)
        score = np.fmax(score, np.where(np.isfinite(z), z, 0.0))
    return score


def outlier_rate(frame: pd.DataFrame, reference: Profile, z: float = OUTLIER_Z) -> float:
    if len(frame) == 0:
        return 0.0
    return float((outlier_scores(frame, reference) > z).mean())
