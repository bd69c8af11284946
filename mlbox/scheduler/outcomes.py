"""What an ended attempt means for its job: a pure decision over values.

A stop asked for (cancel, timeout, preemption) wins over the exit code; an
attempt that never started (its appliance died between claiming and
spawning) is queued again without using a retry; a non-zero exit or a
process that vanished without an exit status uses one retry while any is left.
"""

from __future__ import annotations

from dataclasses import dataclass


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
) -> Outcome:
    if stop_reason == "cancel":
        return Outcome("cancelled", "cancelled", "cancelled", retries_used, False)
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
    if retries_used < max_retries:
        used = retries_used + 1
        return Outcome(
            "queued", outcome, f"attempt {attempt} failed ({why}); retry {used} of {max_retries}", used, True
        )
    return Outcome("failed", outcome, f"attempt {attempt} failed ({why})", retries_used, False)
