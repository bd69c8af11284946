"""The demo drives mlbox's scheduler itself: trials are submitted as jobs, then reconciled to the end.

No appliance needs to run: this process calls ``services.scheduler.reconcile_once()``
and ``services.sweeps.reconcile_once()`` (what the appliance's scheduler loop
calls every tick) until its jobs are done, so the jobs start, are placed
within the CPU budget and are reaped exactly as under ``mlbox up``. Each job's
process trains and logs to the tracking run the scheduler made for it;
progress and results are read back from those runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlbox.demo.jobs import THREADS_ENV
from mlbox.demo.trials import EXPERIMENT, Trial, TrialResult, trial_kwargs
from mlbox.scheduler.schemas import Job, JobSpec, Resources
from mlbox.services import Services
from mlbox.store.errors import Conflict, MlboxError, NotFound

TICK_S = 0.2
"""How often the demo reconciles while it waits (the appliance's default tick)."""
JOB_TIMEOUT_S = 600.0
"""A demo job still running after this long is stopped by the scheduler (a safety net)."""
STOP_WAIT_S = 20.0
TRAIN_FUNCTION = "mlbox.demo.jobs:train"


def job_spec(trial: Trial, data_dir: Path) -> JobSpec:
    """A function-reference job training ``trial`` on the split saved in ``data_dir``."""
    return JobSpec(
        name=trial.name,
        function=TRAIN_FUNCTION,
        kwargs={**trial_kwargs(trial), "data": str(data_dir)},
        resources=Resources(cpus=1),
        timeout_s=JOB_TIMEOUT_S,
        env=dict(THREADS_ENV),
        experiment=EXPERIMENT,
    )


def reconcile(services: Services) -> None:
    """One pass of what the appliance's scheduler loop does."""
    services.scheduler.reconcile_once()
    services.sweeps.reconcile_once()


def drive(
    services: Services,
    finished: Callable[[], bool],
    on_pass: Callable[[], None],
    *,
    timeout_s: float,
    what: str,
) -> None:
    """Reconcile every `TICK_S` (sooner when a job ends) until ``finished()``."""
    deadline = time.monotonic() + timeout_s
    while True:
        reconcile(services)
        on_pass()
        if finished():
            return
        if time.monotonic() > deadline:
            raise MlboxError(f"{what} did not finish within {timeout_s:g} s")
        services.scheduler.wait_for_work(TICK_S)


def stop_jobs(services: Services, job_ids: Sequence[int], wait_s: float = STOP_WAIT_S) -> None:
    """Cancel what is still queued or running (the demo was interrupted) and reap it, bounded."""
    scheduler = services.scheduler
    live = [j for j in job_ids if not scheduler.get(j).terminal]
    for job_id in live:
        with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile
            scheduler.cancel(job_id)
    deadline = time.monotonic() + wait_s
    while live and time.monotonic() < deadline:
        scheduler.reconcile_once()
        live = [j for j in live if not scheduler.get(j).terminal]
        if live:
            time.sleep(TICK_S)


@dataclass
class Followed:
    """One submitted trial as the demo follows it."""

    trial: Trial
    job: Job
    units_done: int = 0
    last_val_acc: float | None = None
    reported: bool = False


def poll(services: Services, followed: Followed) -> None:
    """Refresh the job's row and how far its run got (``val_acc`` points logged)."""
    followed.job = services.scheduler.get(followed.job.id)
    run_id = followed.job.run_id
    if run_id is None:
        return
    for m in services.tracking.metric_keys(run_id):
        if m.key == "val_acc":
            followed.units_done = min(m.count, followed.trial.units)
            followed.last_val_acc = m.last


def result_of(services: Services, followed: Followed) -> TrialResult:
    """A succeeded job's result, read back from its run."""
    job = followed.job
    assert job.run_id is not None and job.state == "succeeded"
    run = services.tracking.get_run(job.run_id)
    val_acc, val_loss = run.metrics.get("val_acc"), run.metrics.get("val_loss")
    if val_acc is None or val_loss is None:
        raise MlboxError(f"job {job.id} ({job.spec.name}) succeeded but its run {run.id} logged no val_acc")
    return TrialResult(
        run_id=run.id,
        name=followed.trial.name,
        family=followed.trial.family,
        val_acc=val_acc,
        val_loss=val_loss,
        seconds=(job.finished_at or 0.0) - (job.started_at or 0.0),
        model_path=followed.trial.model_path,
    )


def log_tail(services: Services, job_id: int, lines: int = 8) -> str:
    data, _ = services.scheduler.read_log(job_id)
    return "\n".join(data.decode(errors="replace").rstrip().splitlines()[-lines:])
