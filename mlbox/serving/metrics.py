"""Per-model serving statistics and their Prometheus text exposition (format 0.0.4).

Each served deployment owns one `ModelStats`. Request counters and the
latency histogram are only written by the event loop, batch statistics only
by the model's inference thread, so plain integer fields need no lock (one
writer each; a scrape may read a value one request old). The text format is
written here by hand: a few lines of code instead of a dependency.

The TUI's serving screen reads `ModelStats.snapshot` (rates by differencing
counters, p50/p99 from the recent-latency ring).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
RECENT = 2048


SHED_METRIC = "mlbox_serving_shed_total"
"""Scoring requests refused with 503 at the door (`mlbox.serving.admission`), all models."""


@dataclass(frozen=True)
class StatsSnapshot:
    model: str
    version: int
    requests: int
    errors: int
    rows: int
    batches: int
    queue_depth: int
    p50_ms: float | None
    p99_ms: float | None
    shadow: int = 0
    """Requests mirrored to this version as its model's challenger."""


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        out = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            total += n
            out.append((_number(bound), total))
        out.append(("+Inf", self.count))
        return out


class ModelStats:
    def __init__(self, model: str, version: int, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.model = model
        self.version = version
        self.queue_depth = queue_depth
        self.responses: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS_S)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.inference = Histogram(LATENCY_BUCKETS_S)
        self.rows = 0
        self.shadow = 0
        self.shadow_errors = 0
        self.recent: deque[float] = deque(maxlen=RECENT)

    def request(self, status: int, seconds: float, rows: int = 0) -> None:
        """One answered request (event loop only)."""
        self.responses[status] = self.responses.get(status, 0) + 1
        if status < 400:
            self.latency.observe(seconds)
            self.recent.append(seconds)
            self.rows += rows

    def batch(self, rows: int, seconds: float) -> None:
        """One model call (inference thread only)."""
        self.batch_size.observe(rows)
        self.inference.observe(seconds)

    @property
    def requests(self) -> int:
        return sum(self.responses.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.responses.items() if status >= 400)

    def snapshot(self) -> StatsSnapshot:
        recent = sorted(self.recent)
        return StatsSnapshot(
            model=self.model,
            version=self.version,
            requests=self.requests,
            errors=self.errors,
            rows=self.rows,
            batches=self.batch_size.count,
            queue_depth=self.queue_depth(),
            p50_ms=_quantile(recent, 0.5),
            p99_ms=_quantile(recent, 0.99),
            shadow=self.shadow,
        )


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


def render(stats: Iterable[ModelStats], extra: dict[str, float] | None = None) -> str:
    """The Prometheus text exposition of every served model (and a few process-wide values)."""
    items = list(stats)
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    family("mlbox_serving_requests_total", "counter", "Scoring requests answered, by status code.")
    for s in items:
        base = {"model": s.model, "version": str(s.version)}
        for status, n in sorted(s.responses.items()):
            lines.append(f"mlbox_serving_requests_total{_labels({**base, 'code': str(status)})} {n}")
    family("mlbox_serving_errors_total", "counter", "Scoring requests answered with a 4xx or 5xx status.")
    for s in items:
        lines.append(
            f"mlbox_serving_errors_total{_labels({'model': s.model, 'version': str(s.version)})} {s.errors}"
        )
    family("mlbox_serving_rows_total", "counter", "Rows scored.")
    for s in items:
        lines.append(
            f"mlbox_serving_rows_total{_labels({'model': s.model, 'version': str(s.version)})} {s.rows}"
        )
    family("mlbox_serving_shadow_requests_total", "counter", "Requests mirrored to this shadow model.")
    for s in items:
        base = {"model": s.model, "version": str(s.version)}
        lines.append(f"mlbox_serving_shadow_requests_total{_labels(base)} {s.shadow}")
    family("mlbox_serving_queue_depth", "gauge", "Requests waiting for the model.")
    for s in items:
        base = {"model": s.model, "version": str(s.version)}
        lines.append(f"mlbox_serving_queue_depth{_labels(base)} {s.queue_depth()}")
    for name, attr, text in (
        ("mlbox_serving_request_duration_seconds", "latency", "Time from request body to response, seconds."),
        ("mlbox_serving_inference_duration_seconds", "inference", "Time of one model call, seconds."),
        ("mlbox_serving_batch_size", "batch_size", "Rows per model call."),
    ):
        family(name, "histogram", text)
        for s in items:
            base = {"model": s.model, "version": str(s.version)}
            hist: Histogram = getattr(s, attr)
            for le, n in hist.cumulative():
                lines.append(f"{name}_bucket{_labels({**base, 'le': le})} {n}")
            lines.append(f"{name}_sum{_labels(base)} {_number(hist.sum)}")
            lines.append(f"{name}_count{_labels(base)} {hist.count}")
    for key, value in (extra or {}).items():
        family(key, "gauge" if not key.endswith("_total") else "counter", key.replace("_", " ") + ".")
        lines.append(f"{key} {_number(value)}")
    return "\n".join(lines) + "\n"
