"""Value objects of the scheduler, shared by the service, the client, the API, the CLI and the TUI.

The contract other services code against (sweeps and notebooks submit jobs
and read them back), so names and fields here change only additively.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from mlbox.scheduler.environment import EnvPolicy

JobState = Literal[
    "queued", "running", "succeeded", "failed", "cancelled", "preempted", "timed_out", "pruned"
]
JOB_STATES: tuple[str, ...] = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "preempted",
    "timed_out",
    "pruned",
)
TERMINAL_STATES: tuple[str, ...] = ("succeeded", "failed", "cancelled", "timed_out", "pruned")
"""A job in one of these states never changes again unless retried by hand. ``pruned``: a sweep's
pruner stopped the trial early (not a failure, not a user's cancel); its run says ``pruned`` too."""
WAITING_STATES: tuple[str, ...] = ("queued", "preempted")
"""A preempted job waits like a queued one; it keeps its age, so it runs again first."""

Launcher = Literal["none", "torchrun"]


class Resources(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gpus: int = 0
    gpu_memory_mb: int = 0
    """Memory each leased GPU must have (total, in MiB); 0 means any GPU will do."""
    cpus: float = 1.0


class JobSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to run and with what; exactly one of ``command``, ``script`` or ``function``."""

    name: str
    command: list[str] | None = None
    script: str | None = None
    script_args: list[str] = []
    function: str | None = None
    """``package.module:function``, called with ``kwargs`` (JSON values) in the job's process."""
    kwargs: dict[str, Any] = {}
    resources: Resources = Resources()
    priority: int = 0
    max_retries: int = 0
    timeout_s: float | None = None
    env: dict[str, str] = {}
    env_policy: EnvPolicy = "appliance"
    """What ``env`` is laid over (`mlbox.scheduler.environment`): ``inherit`` (``env`` is the whole
    environment, captured from the submitter: the CLI's and ``mlbox.submit``'s default), ``clean``
    (a minimal base) or ``appliance`` (the appliance's environment: the API's default)."""
    python: str | None = None
    """The interpreter of a script, function or torchrun job (the submitter's); None: the
    appliance's own under the ``appliance`` policy, else ``python`` on the job's PATH."""
    workdir: str | None = None
    launcher: Launcher = "none"
    preemptible: bool = False
    experiment: str = "jobs"
    owner: str | None = None
    """Who drives the job: None for a user job, ``sweep:<id>``, ``notebook:<id>``."""


class Job(msgspec.Struct, frozen=True):
    id: int
    spec: JobSpec
    state: JobState
    attempt: int
    """How many times a process was started for the job (0 while it never ran)."""
    gpus: list[int]
    """The leased GPUs while running; the last leased ones afterwards."""
    pid: int | None
    run_id: int | None
    exit_code: int | None
    """The last attempt's exit code; negative: killed by that signal (as `subprocess` reports it)."""
    created_at: float
    started_at: float | None
    finished_at: float | None
    message: str | None
    log_path: str
    retries_used: int = 0
    checkpoint_dir: str = ""
    stop_reason: str | None = None
    """``cancel``, ``timeout``, ``preempt`` or ``prune`` while the process is being stopped."""
    python: str | None = None
    """The interpreter the last attempt ran with: a script's or function's, else ``python``
    resolved on the job's PATH (None before the first start)."""
    env_prefix: str | None = None
    """The virtualenv or conda env the last attempt's environment activated (VIRTUAL_ENV, CONDA_PREFIX)."""
    executor_job_id: str | None = None
    """The Ray submission id of the last attempt; None for a job run by the local executor."""
    node: str | None = None
    """The Ray node the last attempt ran on (None: this machine)."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class Attempt(msgspec.Struct, frozen=True):
    """One started process of a job, kept after it ended (``mlbox jobs show``)."""

    job_id: int
    attempt: int
    pid: int | None
    gpus: list[int]
    started_at: float
    finished_at: float | None
    exit_code: int | None
    outcome: str


class Gpu(msgspec.Struct, frozen=True):
    index: int
    name: str
    memory_mb: int | None
    simulated: bool


class Lease(msgspec.Struct, frozen=True):
    gpu: int
    job_id: int | None
    """None for a lease held outside jobs (a served model); then owner and job_name are its holder."""
    owner: str | None
    job_name: str
    since: float


class GpuStatus(msgspec.Struct, frozen=True):
    gpu: Gpu
    lease: Lease | None
    utilization: float | None
    memory_used_mb: int | None
