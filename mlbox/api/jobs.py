"""Training jobs and the GPU board over HTTP: submit, list, show, cancel, retry, follow logs.

Every route needs the management token (the app-wide guard). The submit body
is a `JobSpec` decoded by msgspec (unknown fields refused); the service
checks the values, so the API and the CLI refuse the same input with the same
messages. Logs are read by offset: a client follows a job by passing back
``next_offset`` until the job is terminal and the text is empty.

The environment: an HTTP client's environment cannot be known, so a body's
``env`` is what it says and ``env_policy`` (default ``appliance``) says what
it is laid over: ``appliance`` — the appliance's environment (as before the
CLI captured anything), ``clean`` — a minimal one (PATH, HOME, locale), or
``inherit`` — nothing: ``env`` is the whole environment, as the CLI and
``mlbox.submit`` send it (with ``python``, the interpreter for script and
function jobs). Whatever the policy, a variable holding the API token is
dropped before the spec is stored and again before the job starts, and the
Job says which interpreter (``python``) and env (``env_prefix``) it ran with.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.scheduler.schemas import JOB_STATES, GpuStatus, Job, JobSpec
from mlbox.scheduler.service import SchedulerService
from mlbox.store.errors import InvalidInput

MAX_LOG_OFFSET = 2**63 - 1
"""The largest file offset there is (``off_t``); a larger one is a 400, not an overflow in the answer."""


class LogChunk(msgspec.Struct, frozen=True):
    job_id: int
    offset: int
    next_offset: int
    text: str
    """The bytes from ``offset`` decoded as UTF-8 (invalid bytes replaced)."""
    state: str


class JobController(Controller):
    path = "/api/v1/jobs"
    tags = ("jobs",)

    @post(operation_id="submitJob", status_code=201, sync_to_thread=True, summary="Queue a job")
    def submit(self, scheduler: NamedDependency[SchedulerService], data: JSONBody[JobSpec]) -> Job:
        return scheduler.submit(data)

    @get(operation_id="listJobs", sync_to_thread=True, summary="Jobs, newest first")
    def list_jobs(
        self,
        scheduler: NamedDependency[SchedulerService],
        states: Annotated[list[str] | None, QueryParameter(name="state")] = None,
        owner: Annotated[str | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100_000)] = 200,
    ) -> list[Job]:
        for s in states or ():
            if s not in JOB_STATES:
                raise InvalidInput(f"state must be one of {', '.join(JOB_STATES)}; got {s!r}", field="state")
        return scheduler.list_jobs(states, owner=owner, limit=limit)

    @get("/{job_id:int}", operation_id="getJob", sync_to_thread=True, summary="One job")
    def get_job(self, scheduler: NamedDependency[SchedulerService], job_id: FromPath[int]) -> Job:
        return scheduler.get(job_id)

    @post(
        "/{job_id:int}/cancel",
        operation_id="cancelJob",
        status_code=200,
        sync_to_thread=True,
        summary="Cancel a job (a running one is stopped: SIGTERM, then SIGKILL after the grace period)",
    )
    def cancel(self, scheduler: NamedDependency[SchedulerService], job_id: FromPath[int]) -> Job:
        return scheduler.cancel(job_id)

    @post(
        "/{job_id:int}/retry",
        operation_id="retryJob",
        status_code=200,
        sync_to_thread=True,
        summary="Queue a finished job again",
    )
    def retry(self, scheduler: NamedDependency[SchedulerService], job_id: FromPath[int]) -> Job:
        return scheduler.retry(job_id)

    @get(
        "/{job_id:int}/logs",
        operation_id="getJobLogs",
        sync_to_thread=True,
        summary="Log text from an offset",
    )
    def logs(
        self,
        scheduler: NamedDependency[SchedulerService],
        job_id: FromPath[int],
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_LOG_OFFSET)] = 0,
    ) -> LogChunk:
        data, next_offset = scheduler.read_log(job_id, offset)
        state = scheduler.get(job_id).state
        return LogChunk(job_id, offset, next_offset, data.decode("utf-8", errors="replace"), state)


class GpuController(Controller):
    path = "/api/v1/gpus"
    tags = ("jobs",)

    @get(operation_id="listGpus", sync_to_thread=True, summary="The GPU board: each GPU and who holds it")
    def board(self, scheduler: NamedDependency[SchedulerService]) -> list[GpuStatus]:
        return scheduler.gpu_board()
