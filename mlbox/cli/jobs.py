"""``mlbox jobs`` and ``mlbox gpus``: the job queue from the shell.

``mlbox jobs submit --gpus 2 -- python train.py --lr 0.1`` queues a command;
``--script file.py`` and ``--function pkg.mod:fn`` queue the other kinds. The
appliance (``mlbox up`` or the TUI) starts queued jobs; without one, submit
says so and the job waits in the queue.
"""

from __future__ import annotations

import codecs
import sys
import time

import click

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx, print_table, when
from mlbox.scheduler.client import spec_for
from mlbox.scheduler.schemas import JOB_STATES, GpuStatus, Job
from mlbox.store import Home
from mlbox.store.errors import Conflict, InvalidInput
from mlbox.textsafe import visible

WAIT_CHECK_S = 2.0
"""How often `jobs wait` checks that an appliance is still there to end the job."""


@click.group()
def jobs() -> None:
    """Training jobs on local GPUs: submit, list, follow logs, cancel, retry."""


def _env(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--env")
        out[key] = value
    return out


def _duration(j: Job) -> str:
    if j.started_at is None:
        return "-"
    end = j.finished_at or time.time()
    return f"{end - j.started_at:.1f}s"


def _appliance_note(ctx: Context) -> str | None:
    if Home(ctx.settings.home).running_appliance() is None:
        return (
            "no appliance is running: the job waits in the queue and runs once `mlbox up` (or the TUI) runs"
        )
    return None


@jobs.command("submit")
@click.option("--name", help="A name for the job (default: the command).")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs to lease.")
@click.option("--gpu-mem", "gpu_mem", type=int, default=0, help="MiB each leased GPU must have.")
@click.option("--cpus", type=float, default=1.0, show_default=True, help="CPU cores the job claims.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--retries", type=int, default=0, show_default=True, help="Retries after a failed attempt.")
@click.option("--timeout", type=float, default=None, help="Seconds before the job is stopped.")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="An environment variable for the job (repeatable).",
)
@click.option(
    "--env-clean",
    is_flag=True,
    help="Start from a minimal environment (PATH, HOME, locale) instead of this shell's.",
)
@click.option(
    "--workdir", type=click.Path(file_okay=False), default=None, help="Working folder (default: here)."
)
@click.option("--torchrun", is_flag=True, help="Launch with torchrun on the leased GPUs (one rank per GPU).")
@click.option("--preemptible", is_flag=True, help="Higher-priority work may stop (and requeue) the job.")
@click.option("--experiment", default="jobs", show_default=True, help="Experiment of the job's run.")
@click.option("--script", type=click.Path(dir_okay=False), default=None, help="A Python file to run.")
@click.option("--function", default=None, metavar="PKG.MOD:FN", help="A function to call.")
@click.option(
    "--kwarg", "kwargs", multiple=True, metavar="KEY=JSON", help="A keyword argument of --function."
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@json_option
@pass_ctx
def jobs_submit(
    ctx: Context,
    name: str | None,
    gpus: int,
    gpu_mem: int,
    cpus: float,
    priority: int,
    retries: int,
    timeout: float | None,
    env: tuple[str, ...],
    env_clean: bool,
    workdir: str | None,
    torchrun: bool,
    preemptible: bool,
    experiment: str,
    script: str | None,
    function: str | None,
    kwargs: tuple[str, ...],
    command: tuple[str, ...],
    as_json: bool,
) -> None:
    """Queue a job: mlbox jobs submit [OPTIONS] -- CMD... (or --script FILE, --function PKG.MOD:FN).

    \b
    The job runs where you are, as Slurm runs a batch job: with this shell's
    environment (PATH, the active virtualenv or conda env, your variables),
    captured now, and a script or function on this Python. mlbox's own
    secrets (the API token) and session variables are left out. --env-clean
    gives the job a minimal environment plus the --env variables.
    """
    import json
    import os

    if sum(1 for given in (bool(command) and not script, script, function) if given) != 1 or (
        function and command
    ):
        raise InvalidInput(
            "give exactly one of: -- CMD..., --script FILE or --function PKG.MOD:FN", field="command"
        )
    parsed_kwargs = {}
    for item in kwargs:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=JSON", param_hint="--kwarg")
        try:
            parsed_kwargs[key] = json.loads(value)
        except ValueError:
            parsed_kwargs[key] = value
    base = os.path.abspath(workdir) if workdir else os.getcwd()
    what: str | list[str] = function or (os.path.join(base, script) if script else list(command))
    spec = spec_for(
        what,
        args=command if script else (),
        kwargs=parsed_kwargs,
        name=name,
        gpus=gpus,
        gpu_memory_mb=gpu_mem,
        cpus=cpus,
        priority=priority,
        retries=retries,
        timeout_s=timeout,
        env=_env(env),
        workdir=base,
        torchrun=torchrun,
        preemptible=preemptible,
        experiment=experiment,
        kind="function" if function else "script" if script else "command",
        env_policy="clean" if env_clean else "inherit",
    )
    job = ctx.services.scheduler.submit(spec)
    if as_json:
        echo_json(job)
        return
    click.echo(f"job {job.id} queued: {job.spec.name}")
    note = _appliance_note(ctx)
    if note:
        click.echo(note, err=True)


HEADER = ("ID", "STATE", "NAME", "GPUS", "PRI", "TRY", "CREATED", "TIME", "MESSAGE")
RIGHT = ("ID", "PRI", "TRY", "TIME")
NAME_WIDTH = 24


def _cells(j: Job) -> tuple[object, ...]:
    """One row of `HEADER`; the name and message are user text, printed with control characters escaped."""
    gpus = ",".join(map(str, j.gpus)) if j.state == "running" else str(j.spec.resources.gpus or "-")
    if j.executor_job_id is not None and j.state == "running":  # on a Ray cluster: Ray chose the GPUs
        gpus = visible(f"ray {j.node}" if j.node else "ray")
    return (
        j.id,
        j.state,
        visible(j.spec.name[:NAME_WIDTH]),
        gpus,
        j.spec.priority,
        j.attempt,
        when(j.created_at),
        _duration(j),
        visible(j.message or ""),
    )


@jobs.command("ls")
@click.option("--state", "states", multiple=True, type=click.Choice(JOB_STATES), help="Only these states.")
@click.option("--owner", default=None, help="Only jobs of this owner (sweep:ID, notebook:ID).")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many jobs.")
@json_option
@pass_ctx
def jobs_ls(ctx: Context, states: tuple[str, ...], owner: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    found = ctx.services.scheduler.list_jobs(list(states) or None, owner=owner, limit=limit)
    if as_json:
        echo_json(found)
        return
    print_table(
        HEADER,
        (_cells(j) for j in found),
        empty="no jobs; queue one with: mlbox jobs submit -- CMD...",
        right=RIGHT,
    )


@jobs.command("show")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
def jobs_show(ctx: Context, job_id: int, as_json: bool) -> None:
    """One job: spec, state, attempts, run, log file."""
    sched = ctx.services.scheduler
    j = sched.get(job_id)
    attempts = sched.attempts(job_id)
    if as_json:
        echo_json({"job": j, "attempts": attempts})
        return
    s = j.spec
    what = " ".join(s.command) if s.command else (s.script or s.function or "")
    click.echo(visible(f"job {j.id}  {s.name}  [{j.state}]" + (f"  {j.message}" if j.message else "")))
    click.echo(visible(f"  runs      {what} {' '.join(s.script_args)}".rstrip()))
    r = s.resources
    click.echo(
        f"  wants     {r.gpus} GPU(s), {r.cpus:g} core(s)"
        + (f", {r.gpu_memory_mb} MiB/GPU" if r.gpu_memory_mb else "")
    )
    click.echo(
        f"  policy    priority {s.priority}, retries {j.retries_used}/{s.max_retries}, timeout "
        f"{'-' if s.timeout_s is None else f'{s.timeout_s:g}s'}, launcher {s.launcher}"
        + (", preemptible" if s.preemptible else "")
    )
    click.echo(f"  env       {s.env_policy} ({len(s.env)} variable(s) given)")
    click.echo(f"  python    {j.python or '-'}" + (f"  (env {j.env_prefix})" if j.env_prefix else ""))
    if j.executor_job_id is not None:
        click.echo(visible(f"  on ray    {j.node or '-'} as {j.executor_job_id}"))
    click.echo(f"  run       {j.run_id if j.run_id is not None else '-'} (experiment {s.experiment})")
    click.echo(f"  log       {j.log_path}")
    click.echo(f"  checkpts  {j.checkpoint_dir}")
    if attempts:
        click.echo()
        print_table(
            ("ATTEMPT", "OUTCOME", "EXIT", "GPUS", "PID", "STARTED"),
            (
                (
                    a.attempt,
                    a.outcome,
                    "-" if a.exit_code is None else a.exit_code,
                    ",".join(map(str, a.gpus)) or "-",
                    a.pid,
                    when(a.started_at),
                )
                for a in attempts
            ),
            empty="no attempts yet",
            right=("ATTEMPT", "EXIT", "PID"),
        )


class _LogWriter:
    """Writes a job's log bytes to stdout: as they are to a pipe or with ``--raw``; to a terminal
    decoded, with every control character but newline and tab shown as its escape, so a job's
    output cannot clear the screen, set the title or write the clipboard of the reader's terminal."""

    def __init__(self, *, raw: bool) -> None:
        self.raw = raw or not sys.stdout.isatty()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, data: bytes, *, final: bool = False) -> None:
        if self.raw:
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(visible(self._decoder.decode(data, final), keep="\n\t"))
        sys.stdout.flush()


@jobs.command("logs")
@click.argument("job_id", type=int)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
@click.option("--raw", is_flag=True, help="Print the log's bytes as they are, escape sequences included.")
@pass_ctx
def jobs_logs(ctx: Context, job_id: int, follow: bool, raw: bool) -> None:
    """Print the job's output (stdout and stderr of every attempt).

    On a terminal, control characters in the output are shown escaped (ESC as ``\\x1b``);
    ``--raw`` (or a pipe) passes the bytes through.
    """
    sched = ctx.services.scheduler
    out = _LogWriter(raw=raw)
    offset = 0
    while True:
        data, offset = sched.read_log(job_id, offset)
        if data:
            out.write(data)
            continue
        if not follow or sched.get(job_id).terminal:
            data, offset = sched.read_log(job_id, offset)
            out.write(data, final=True)
            return
        time.sleep(0.2)


@jobs.command("cancel")
@click.argument("job_id", type=int)
@pass_ctx
def jobs_cancel(ctx: Context, job_id: int) -> None:
    """Stop a job (SIGTERM to its process group, SIGKILL after the grace period)."""
    j = ctx.services.scheduler.cancel(job_id)
    click.echo(f"job {j.id}: {'stopping' if j.state == 'running' else j.state}")


@jobs.command("retry")
@click.argument("job_id", type=int)
@pass_ctx
def jobs_retry(ctx: Context, job_id: int) -> None:
    """Queue a finished job again (a new attempt; same run and checkpoints)."""
    j = ctx.services.scheduler.retry(job_id)
    click.echo(f"job {j.id} queued again")
    note = _appliance_note(ctx)
    if note:
        click.echo(note, err=True)


@jobs.command("wait")
@click.argument("job_id", type=int)
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds.")
@pass_ctx
def jobs_wait(ctx: Context, job_id: int, timeout: float | None) -> None:
    """Wait until the job ends; exit code 0 when it succeeded, 1 otherwise.

    Without a running appliance nothing would ever end the job, so this says so (exit code 2).
    """
    sched = ctx.services.scheduler
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        j = sched.get(job_id)
        if j.terminal:
            break
        if Home(ctx.settings.home).running_appliance() is None:
            raise Conflict(
                f"no appliance is running: job {job_id} is {j.state} and nothing will "
                f"{'start' if j.state != 'running' else 'record the end of'} it; "
                "start `mlbox up` (or the TUI), then wait again",
                field="job_id",
            )
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(f"job {job_id} is still {j.state} after {timeout:g} s")
        try:
            j = sched.wait(job_id, WAIT_CHECK_S if left is None else min(WAIT_CHECK_S, left))
            break
        except TimeoutError:
            continue
    click.echo(f"job {j.id}: {j.state}" + (f" (exit code {j.exit_code})" if j.exit_code is not None else ""))
    if j.state != "succeeded":
        raise click.exceptions.Exit(1)


@click.command("gpus")
@json_option
@pass_ctx
def gpus(ctx: Context, as_json: bool) -> None:
    """The GPU board: each GPU, the job holding it, utilization and memory (with NVML)."""
    board = ctx.services.scheduler.gpu_board()
    if as_json:
        echo_json(board)
        return
    print_table(
        ("GPU", "NAME", "MEMORY", "UTIL", "USED", "HOLDER"),
        (_gpu_cells(g) for g in board),
        empty="no GPUs (set MLBOX_GPUS=4 to simulate some)",
        right=("GPU", "MEMORY", "UTIL", "USED"),
    )


def _gpu_cells(g: GpuStatus) -> tuple[object, ...]:
    mem = "-" if g.gpu.memory_mb is None else f"{g.gpu.memory_mb}M"
    util = "-" if g.utilization is None else f"{g.utilization:.0f}%"
    used = "-" if g.memory_used_mb is None else f"{g.memory_used_mb}M"
    holder = "free"
    if g.lease is not None:
        holder = f"job {g.lease.job_id} {g.lease.job_name}" + (f" ({g.lease.owner})" if g.lease.owner else "")
        holder += f" since {when(g.lease.since)}"
    return (g.gpu.index, g.gpu.name[:NAME_WIDTH], mem, util, used, visible(holder))
