"""The idle decision for a notebook server: pure, over what was observed, clock passed in.

A server is culled only when *all* of these held for longer than its idle
timeout: no browser or API activity (Jupyter's own ``last_activity``), no
kernel busy (a long-running cell keeps its server alive however long it
runs), and no work on the GPUs it leased. A server that does not answer is
never culled on that ground alone: no answer is no evidence of idleness.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

BUSY_KERNEL_STATES = frozenset({"busy", "starting", "restarting", "autorestarting"})
"""Kernel states that count as work in progress (``idle`` and ``dead`` do not)."""

GPU_BUSY_PERCENT = 5.0
"""NVML utilization (percent) at or above which a leased GPU counts as working."""


@dataclass(frozen=True)
class KernelActivity:
    execution_state: str
    last_activity: float | None


@dataclass(frozen=True)
class ServerActivity:
    """What one poll of a Jupyter server said (``/api/status`` and ``/api/kernels``)."""

    last_activity: float | None
    kernels: tuple[KernelActivity, ...] = ()


@dataclass(frozen=True)
class IdleVerdict:
    last_activity: float
    """The newest moment anything happened: what the next decision starts from."""
    busy: bool
    cull: bool
    reason: str


def parse_time(value: object) -> float | None:
    """Jupyter's ISO-8601 timestamps (``2024-05-01T10:00:00.123456Z``) as epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def gpu_busy(utilizations: Sequence[float | None]) -> bool:
    """Any leased GPU working; simulated GPUs (and GPUs NVML cannot read) report None: idle."""
    return any(u is not None and u >= GPU_BUSY_PERCENT for u in utilizations)


def decide(
    *,
    now: float,
    since: float,
    server: ServerActivity | None,
    gpu_utilization: Sequence[float | None],
    timeout_s: float,
) -> IdleVerdict:
    """Whether to cull a server now.

    ``since`` is the last activity already known (the server's start, or the
    previous verdict's ``last_activity``), so activity seen once is never
    forgotten even when a later poll reports an older time.
    """
    if gpu_busy(gpu_utilization):
        return IdleVerdict(now, busy=True, cull=False, reason="GPU work")
    if server is None:
        return IdleVerdict(since, busy=False, cull=False, reason="server not answering")
    busy = [k for k in server.kernels if k.execution_state in BUSY_KERNEL_STATES]
    if busy:
        return IdleVerdict(now, busy=True, cull=False, reason=f"{len(busy)} kernel(s) busy")
    times = [since, server.last_activity, *(k.last_activity for k in server.kernels)]
    last = max(t for t in times if t is not None)
    idle_for = max(0.0, now - last)
    if idle_for > timeout_s:
        return IdleVerdict(last, busy=False, cull=True, reason=f"idle {idle_for:.0f}s > {timeout_s:g}s")
    return IdleVerdict(last, busy=False, cull=False, reason=f"idle {idle_for:.0f}s")
