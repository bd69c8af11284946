"""The step state machine as pure functions (the service persists what they decide).

A step run is ``pending`` until its inputs are there, ``ready`` when they are, ``running`` once
claimed, and ends ``succeeded``, ``cached`` (an earlier result reused), ``failed``, ``skipped``
(an upstream step did not produce its input) or ``cancelled``. A failure stops only the steps
downstream of it; the rest of the graph goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

STATES: tuple[str, ...] = (
    "pending",
    "ready",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cached",
    "cancelled",
)
OK: frozenset[str] = frozenset({"succeeded", "cached"})
"""Ended with a value the steps downstream can read."""
DEAD: frozenset[str] = frozenset({"failed", "skipped", "cancelled"})
"""Ended without a value: the steps downstream are skipped."""
TERMINAL: frozenset[str] = OK | DEAD
RUN_STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")


def propagate(
    order: Iterable[str], deps: Mapping[str, list[str]], states: Mapping[str, str]
) -> dict[str, str]:
    """The changes that follow from ``states``: a pending step whose inputs all exist becomes
    ``ready``, one with a dead input ``skipped``. ``order`` is topological, so one pass settles
    a chain of skips."""
    now = dict(states)
    changes: dict[str, str] = {}
    for n in order:
        if now[n] != "pending":
            continue
        ups = [now[d] for d in deps.get(n, [])]
        if any(s in DEAD for s in ups):
            now[n] = changes[n] = "skipped"
        elif all(s in OK for s in ups):
            now[n] = changes[n] = "ready"
    return changes


def run_state(states: Iterable[str]) -> str:
    """A run is ``running`` while a step is not ended; then ``succeeded`` when every step has a
    value, ``cancelled`` when it was stopped (and nothing failed), else ``failed``."""
    seen = list(states)
    if any(s not in TERMINAL for s in seen):
        return "running"
    if all(s in OK for s in seen):
        return "succeeded"
    if "failed" not in seen and "cancelled" in seen:
        return "cancelled"
    return "failed"


def downstream(deps: Mapping[str, list[str]], roots: Iterable[str]) -> set[str]:
    """``roots`` and every step that reads from them, directly or not."""
    children: dict[str, list[str]] = {}
    for n, ds in deps.items():
        for d in ds:
            children.setdefault(d, []).append(n)
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(children.get(n, []))
    return seen


def to_retry(deps: Mapping[str, list[str]], states: Mapping[str, str], node: str | None = None) -> set[str]:
    """The steps a retry sets back to ``pending``: ``node`` (or every failed or cancelled step)
    and the steps downstream that ended without a value. A step with a value is never run again."""
    if node is not None:
        roots = {node}
    else:
        roots = {n for n, s in states.items() if s in ("failed", "cancelled")}
    return {n for n in downstream(deps, roots) if states[n] in DEAD}


def retry_delay(attempt: int, retries: int, backoff_s: float) -> float | None:
    """Seconds to wait before running again after failed attempt ``attempt`` (1-based); None
    when the step's retries are used up."""
    if attempt > retries:
        return None
    return backoff_s * 2 ** (attempt - 1)
