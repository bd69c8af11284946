"""What the Pipelines screen shows, as pure functions of the service's answers."""

from __future__ import annotations

from dataclasses import dataclass

from mlbox import timefmt
from mlbox.pipelines.dagtext import STATE_MARKS
from mlbox.pipelines.schemas import PipelineRun, Schedule, StepRun

STATE_STYLES = {
    "queued": "dim",
    "pending": "dim",
    "ready": "#4ea1ff",
    "running": "bold #d29922",
    "succeeded": "#3fb950",
    "cached": "#58a6ff",
    "failed": "bold #f85149",
    "skipped": "dim",
    "cancelled": "#d29922",
}
RUN_MARKS = {"queued": "·", "running": "▶", "succeeded": "✓", "failed": "✗", "cancelled": "⊘"}


@dataclass(frozen=True)
class RunRow:
    key: str
    id: int
    pipeline: str
    state: str
    trigger: str
    partition: str
    created: str


@dataclass(frozen=True)
class StepRow:
    key: str
    node: str
    state: str
    duration: str
    attempt: int
    note: str


def run_rows(runs: list[PipelineRun]) -> list[RunRow]:
    return [
        RunRow(
            f"r{r.id}", r.id, r.pipeline, r.state, r.trigger, r.partition or "", timefmt.when(r.created_at)
        )
        for r in runs
    ]


def step_rows(steps: list[StepRun], now: float) -> list[StepRow]:
    rows: list[StepRow] = []
    for s in steps:
        if s.state == "running" and s.started_at is not None:
            took: float | None = max(0.0, now - s.started_at)
        else:
            took = s.duration_s if s.state in ("succeeded", "failed") else None
        if s.state == "cached":
            note = f"cache hit (step run {s.cached_from})"
        elif s.as_job and s.job_id is not None:
            note = f"job {s.job_id}" + (f" · {s.message}" if s.message else "")
        else:
            note = s.message or ""
        rows.append(
            StepRow(
                f"s{s.id}", s.node, s.state, "" if took is None else timefmt.duration(took), s.attempt, note
            )
        )
    return rows


def summary(runs: list[PipelineRun]) -> str:
    if not runs:
        return ""
    live = sum(1 for r in runs if r.state in ("queued", "running"))
    failed = sum(1 for r in runs if r.state == "failed")
    return f"{len(runs)} runs · {live} running or queued · {failed} failed  ·  r: retry  c: cancel  (after a confirmation)"


def step_mark(state: str) -> str:
    return f"{STATE_MARKS.get(state, '?')} {state}"


_KIND_WORDS = {
    "cron": "cron (UTC)",
    "folder": "files arriving in",
    "alias": "model alias moves:",
    "dataset": "dataset changes:",
    "training_set": "training set changes:",
}


def schedule_lines(schedules: list[Schedule]) -> list[str]:
    """One line per trigger: what fires it, the pipeline it starts, its parameters."""
    if not schedules:
        return ["no triggers: add one with  mlbox pipelines schedule add REF --cron '0 3 * * *'"]
    out: list[str] = []
    for s in schedules:
        when = _KIND_WORDS.get(s.kind, s.kind)
        extra = f" · catch-up {s.catchup}" if s.kind == "cron" else ""
        params = f" · {s.params}" if s.params else ""
        off = "" if s.enabled else " · disabled"
        out.append(f"#{s.id} {when} {s.spec} → {s.ref}{extra}{params}{off}")
    return out
