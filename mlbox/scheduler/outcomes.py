"""What an ended attempt means for its job: a pure decision over values.

A stop asked for (cancel, timeout, preemption, a sweep's pruner) wins over the exit code; an
attempt that never started (its appliance died between claiming and
spawning) is queued again without using a retry; a non-zero exit or a
process that vanished without an exit status uses one retry while any is left.
A failed attempt's message carries why, read from the end of its log
(`failure_reason`), so ``jobs ls`` says it where the user looks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REASON = 240
REASON_MARK = "): "
"""Between a failed attempt's exit status and its reason: ``attempt 1 failed (exit code 1): ValueError: x``."""
_CANNOT_START = re.compile(r"^mlbox: (cannot start .*)$")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)|[A-Z]\w*Error)\b(: .*)?$")


@dataclass(frozen=True)
class Outcome:
    state: str
    """The job's next state: terminal, or ``queued``/``preempted`` to run again."""
    outcome: str
    """What the attempt itself did (kept in ``job_attempts``)."""
    message: str | None
    retries_used: int
    requeued: bool


def decide(
    *,
    stop_reason: str | None,
    exit_code: int | None,
    started: bool,
    attempt: int,
    retries_used: int,
    max_retries: int,
    timeout_s: float | None,
    reason: str | None = None,
) -> Outcome:
    """``reason``: why the attempt failed in its own words (`failure_reason`), if it said."""
    if stop_reason == "cancel":
        return Outcome("cancelled", "cancelled", "cancelled", retries_used, False)
    if stop_reason == "prune":
        return Outcome("pruned", "pruned", "pruned by its sweep", retries_used, False)
    if stop_reason == "timeout":
        text = f"timed out after {timeout_s:g} s" if timeout_s else "timed out"
        return Outcome("timed_out", "timed_out", text, retries_used, False)
    if stop_reason == "preempt":
        text = f"preempted in attempt {attempt}; waits to run again"
        return Outcome("preempted", "preempted", text, retries_used, True)
    if exit_code == 0:
        return Outcome("succeeded", "succeeded", None, retries_used, False)
    if not started and exit_code is None:
        return Outcome("queued", "never started", "start interrupted; queued again", retries_used, True)
    why = f"exit code {exit_code}" if exit_code is not None else "its process vanished without an exit status"
    outcome = "failed" if exit_code is not None else "lost"
    said = f": {reason}" if reason else ""
    if retries_used < max_retries:
        used = retries_used + 1
        text = f"attempt {attempt} failed ({why}; retry {used} of {max_retries}){said}"
        return Outcome("queued", outcome, text, used, True)
    return Outcome("failed", outcome, f"attempt {attempt} failed ({why}){said}", retries_used, False)


def reason_of(message: str | None) -> str | None:
    """The failure reason a message written by `decide` carries (what a sweep's trial repeats)."""
    if not message or not message.startswith("attempt "):
        return None
    _, sep, reason = message.partition(REASON_MARK)
    return reason or None if sep else None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def failure_reason(log_tail: str) -> str | None:
    """Why an attempt failed, from the end of its output: the scheduler's own "cannot start"
    line, else the exception line that ends a Python traceback (``ModuleNotFoundError: No
    module named 'mlbox'``), else the last line the job printed; None when it printed nothing."""
    lines = [line.rstrip() for line in log_tail.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("--- mlbox: job ")]
    for line in reversed(lines):
        started = _CANNOT_START.match(line)
        if started:
            return _clip(started.group(1))
    traceback_at = max(
        (i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")), default=-1
    )
    if traceback_at >= 0:
        for line in reversed(lines[traceback_at + 1 :]):
            if _EXCEPTION.match(line.strip()):
                return _clip(line.strip())
    return _clip(lines[-1]) if lines else None
