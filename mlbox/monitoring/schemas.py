"""Value objects of the monitoring service (the API encodes them as they are)."""

from __future__ import annotations

import msgspec

from mlbox.monitoring.compare import Bias, Comparison
from mlbox.monitoring.drift import Verdict
from mlbox.monitoring.performance import Performance
from mlbox.monitoring.quality import Quality

CHECKS: tuple[str, ...] = (
    "drift",
    "prediction_drift",
    "quality",
    "outliers",
    "accuracy",
    "estimated_accuracy",
    "rmse",
    "bias",
)
DEFAULT_CHECKS: tuple[str, ...] = ("drift", "quality", "outliers", "accuracy")
DEFAULT_THRESHOLDS: dict[str, float] = {
    "drift": 0.3,  # the share of features drifted
    "prediction_drift": 0.5,
    "quality": 0.0,
    "outliers": 0.05,
    "accuracy": 0.8,
    "estimated_accuracy": 0.8,
    "rmse": 1.0,
    "bias": 0.1,  # fairlearn's demographic-parity difference
}


class Reference(msgspec.Struct, frozen=True):
    id: int
    model: str
    version: int
    source: str
    rows: int
    columns: list[str]
    created_at: float


class Bucket(msgspec.Struct, frozen=True):
    """Performance of one slice of a window (for the chart over time)."""

    start: float
    end: float
    performance: Performance


class Evaluation(msgspec.Struct, frozen=True):
    """Every check of one window of a model version's traffic against its reference."""

    model: str
    version: int
    since: float | None
    until: float | None
    rows: int
    drift: list[Verdict]
    drift_share: float
    prediction_drift: Verdict | None
    quality: Quality
    outlier_rate: float
    performance: Performance
    over_time: list[Bucket] = []
    challenger: Comparison | None = None
    """The shadow traffic of the model's ``challenger`` alias beside this window's (an alias other
    than ``challenger`` evaluated; None without paired rows)."""
    bias: Bias | None = None


class ColumnTest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One column's drift test (``ks``, ``wasserstein``, ``psi``, ``chi2``, ``jensenshannon``)
    and/or its threshold, for a monitor."""

    test: str | None = None
    threshold: float | None = None


class Monitor(msgspec.Struct, frozen=True):
    id: int
    model: str
    alias: str
    window_s: float
    every_s: float
    checks: list[str]
    thresholds: dict[str, float]
    command: str | None
    created_at: float
    last_run: float | None
    last_error: str | None
    open_alerts: int = 0
    segment: str | None = None
    """A column whose groups the ``bias`` check compares."""
    column_tests: dict[str, ColumnTest] = {}
    """Per-column drift test and/or threshold, in place of the defaults."""


class Alert(msgspec.Struct, frozen=True):
    id: int
    monitor_id: int
    model: str
    alias: str
    check: str
    message: str
    value: float | None
    threshold: float | None
    raised_at: float
    cleared_at: float | None


class CheckResult(msgspec.Struct, frozen=True):
    check: str
    breached: bool
    value: float | None
    threshold: float
    message: str


class MonitorRun(msgspec.Struct, frozen=True):
    monitor: Monitor
    ran_at: float
    results: list[CheckResult]
    raised: list[Alert]
    cleared: list[Alert]
    evaluation: Evaluation | None


class FeedbackItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One label: for ``request_id``'s row ``row`` (0 for a one-row request)."""

    request_id: str
    label: int | float | str
    row: int = 0


class FeedbackResult(msgspec.Struct, frozen=True):
    stored: int
    """New labels."""
    updated: int
    """Labels that replaced an earlier one for the same row (the last one wins)."""
