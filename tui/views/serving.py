"""What the Serving screen shows, computed from counter samples: pure functions, no Textual.

The serving service keeps only running totals (requests, errors, rows,
batches) and a ring of recent latencies. Requests per second therefore come
from two samples of the totals taken a few seconds apart (`request_rates`).
Beside a running appliance the same numbers are read from its Prometheus text
(`parse_metrics`); p50/p99 are then bucket bounds of the latency histogram,
not exact values.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlbox.serving.metrics import SHED_METRIC, StatsSnapshot

WINDOW_S = 5.0
"""Requests/s is averaged over about this long: smooth enough to read, recent enough to follow load."""

ModelKey = tuple[str, int]


@dataclass(frozen=True)
class Sample:
    """The serving totals at one moment (``at`` from a monotonic clock)."""

    at: float
    stats: tuple[StatsSnapshot, ...]


def request_rates(samples: Sequence[Sample], window_s: float = WINDOW_S) -> dict[ModelKey, float]:
    """Requests/s per model version between the newest sample and the oldest one within ``window_s``.

    A version absent from the baseline (loaded since) counts from zero; a
    counter that went down (the appliance restarted) starts afresh from the
    newest value rather than giving a negative rate. Empty until two samples
    at different times exist.
    """
    if len(samples) < 2:
        return {}
    latest = samples[-1]
    baseline = next((s for s in samples[:-1] if latest.at - s.at <= window_s), samples[-2])
    elapsed = latest.at - baseline.at
    if elapsed <= 0:
        return {}
    before = {(s.model, s.version): s.requests for s in baseline.stats}
    rates = {}
    for s in latest.stats:
        key = (s.model, s.version)
        delta = s.requests - before.get(key, 0)
        rates[key] = max(delta if delta >= 0 else s.requests, 0) / elapsed
    return rates


@dataclass(frozen=True)
class ServedRow:
    model: str
    version: int
    aliases: tuple[str, ...]
    """The references routed to this version (``champion``, ``latest``, ``v3``); empty: retired."""
    rate: float | None
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    batch_avg: float | None
    queue_depth: int
    shadow: bool
    mirrored: int = 0
    """Requests mirrored to this version so far (as its model's challenger)."""

    @property
    def key(self) -> str:
        return f"{self.model}/{self.version}"


def route_labels(routes: Mapping[str, ModelKey]) -> dict[ModelKey, tuple[str, ...]]:
    """Reference -> version, turned into version -> how clients name it (``champion``, ``latest``, ``v3``)."""
    labels: dict[ModelKey, list[str]] = defaultdict(list)
    for ref, key in routes.items():
        name, at, alias = ref.partition("@")
        if at:
            labels[key].append(alias)
        elif "/" in name:
            labels[key].append(f"v{name.partition('/')[2]}")
        else:
            labels[key].append("latest")
    rank = {"champion": 0, "challenger": 1}
    return {k: tuple(sorted(set(v), key=lambda a: (rank.get(a, 2), a))) for k, v in labels.items()}


def shadowed(routes: Mapping[str, ModelKey]) -> set[ModelKey]:
    """The versions that receive a mirror of their model's champion traffic: a challenger on
    another version than the champion (when shadowing is on in the appliance)."""
    out = set()
    for ref, key in routes.items():
        name, _, alias = ref.partition("@")
        champion = routes.get(f"{name}@champion")
        if alias == "challenger" and champion is not None and champion != key:
            out.add(key)
    return out


def served_rows(
    stats: Sequence[StatsSnapshot],
    routes: Mapping[str, ModelKey],
    rates: Mapping[ModelKey, float],
    *,
    shadow: bool = True,
) -> list[ServedRow]:
    """One row per model version that has statistics, routed versions first, by name and version."""
    labels = route_labels(routes)
    shadows = shadowed(routes) if shadow else set()
    rows = [
        ServedRow(
            model=s.model,
            version=s.version,
            aliases=labels.get((s.model, s.version), ()),
            rate=rates.get((s.model, s.version)),
            requests=s.requests,
            errors=s.errors,
            p50_ms=s.p50_ms,
            p99_ms=s.p99_ms,
            batch_avg=s.rows / s.batches if s.batches and s.rows else None,
            queue_depth=s.queue_depth,
            shadow=(s.model, s.version) in shadows,
            mirrored=s.shadow,
        )
        for s in stats
    ]
    return sorted(rows, key=lambda r: (not r.aliases, r.model, -r.version))


# -- the Prometheus text of a running appliance ---------------------------------------------------

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def _quantile_ms(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (ms); None when nothing was counted."""
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return None
    for bound, count in ordered:
        if count >= q * total:
            return bound * 1000.0 if math.isfinite(bound) else None
    return None


def parse_metrics(text: str) -> list[StatsSnapshot]:
    """Per-model statistics from mlbox's ``/metrics`` text; lines it does not know are skipped."""
    requests: dict[ModelKey, float] = defaultdict(float)
    values: dict[str, dict[ModelKey, float]] = defaultdict(dict)
    buckets: dict[ModelKey, list[tuple[float, float]]] = defaultdict(list)
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m is None or line.startswith("#"):
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m["labels"] or "")}
        if "model" not in labels or not labels.get("version", "").isdigit():
            continue
        key = (labels["model"], int(labels["version"]))
        try:
            value = float(m["value"])
        except ValueError:
            continue
        name = m["name"]
        if name == "mlbox_serving_requests_total":
            requests[key] += value
        elif name == "mlbox_serving_request_duration_seconds_bucket" and "le" in labels:
            buckets[key].append((float(labels["le"]), value))
        else:
            values[name][key] = value
    keys = sorted(set(requests) | set(values["mlbox_serving_queue_depth"]))
    return [
        StatsSnapshot(
            model=key[0],
            version=key[1],
            requests=int(requests.get(key, 0)),
            errors=int(values["mlbox_serving_errors_total"].get(key, 0)),
            rows=int(values["mlbox_serving_rows_total"].get(key, 0)),
            batches=int(values["mlbox_serving_batch_size_count"].get(key, 0)),
            queue_depth=int(values["mlbox_serving_queue_depth"].get(key, 0)),
            p50_ms=_quantile_ms(buckets.get(key, []), 0.5),
            p99_ms=_quantile_ms(buckets.get(key, []), 0.99),
            shadow=int(values["mlbox_serving_shadow_requests_total"].get(key, 0)),
        )
        for key in keys
    ]


def parse_shed(text: str) -> int | None:
    """Requests the appliance refused with 503 (its ``/metrics`` text); None from an older one."""
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m is not None and m["name"] == SHED_METRIC and not m["labels"]:
            try:
                return int(float(m["value"]))
            except ValueError:
                return None
    return None


def shed_note(shed: int | None, before: int | None) -> str:
    """The summary's words for refused requests: how many, and whether it is happening now."""
    if not shed:
        return ""
    now = " (refusing now)" if before is not None and shed > before else ""
    return f" · {shed:,} refused with 503{now}"
