"""``mlbox notebook``: JupyterLab servers as jobs, and notebooks run headless.

``mlbox notebook start --gpus 1`` queues a server. Beside a running appliance
(``mlbox up`` or the TUI) it waits until the server answers, prints its URL
with the token and returns; the appliance culls it when idle. Without one it
runs in the foreground like ``jupyter lab``: this process drives the
scheduler until the server ends, and Ctrl-C stops it.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx, print_table, when
from mlbox.notebooks import probe
from mlbox.notebooks.cells import first_error
from mlbox.notebooks.params import parse_assignments
from mlbox.notebooks.schemas import ACTIVE_STATES, Notebook
from mlbox.scheduler.schemas import Job
from mlbox.store import Home
from mlbox.store.errors import MlboxError

if TYPE_CHECKING:
    from mlbox.services import Services

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.I)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``1.5h``, ``2d`` as seconds."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(
            f"{text!r} is not a duration like 90s, 30m or 1h", param_hint="--idle-timeout"
        )
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def _appliance_url(ctx: Context) -> str | None:
    found = Home(ctx.settings.home).running_appliance()
    return None if found is None else found.url


def _drive(services: Services, done: Callable[[], bool], deadline: float | None = None) -> bool:
    """Run the scheduler and notebook passes here until ``done()``; False at the deadline."""
    tick = services.settings.scheduler.tick_s
    while not done():
        if deadline is not None and time.monotonic() > deadline:
            return False
        services.scheduler.reconcile_once()
        services.notebooks.reconcile_once()
        services.scheduler.wait_for_work(tick)
    return True


def _ready(services: Services, notebook_id: int) -> bool:
    """The server ended, or it answers with its token."""
    nb = services.notebooks.get(notebook_id)
    if nb.state not in ACTIVE_STATES:
        return True
    base = services.notebooks.base_url(notebook_id)
    return base is not None and probe.answers(*base, timeout_s=1.0)


def _wait_ready(services: Services, notebook_id: int, *, drive: bool, timeout_s: float) -> Notebook:
    deadline = time.monotonic() + timeout_s
    if drive:
        _drive(services, lambda: _ready(services, notebook_id), deadline)
    else:
        while not _ready(services, notebook_id) and time.monotonic() < deadline:
            time.sleep(0.5)
    return services.notebooks.get(notebook_id)


def _ended(nb: Notebook) -> click.ClickException:
    return click.ClickException(
        f"notebook {nb.id} {nb.state}: {nb.message or 'see mlbox jobs logs'} (job {nb.job_id})"
    )


@click.group()
def notebook() -> None:
    """JupyterLab as a job that holds GPUs (culled when idle); notebooks run headless."""


@notebook.command("start")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs the server holds.")
@click.option(
    "--idle-timeout",
    "idle_timeout",
    default=None,
    help="Cull after this long idle: 90s, 30m, 1h (default $MLBOX_NOTEBOOK_IDLE_S or 1h).",
)
@click.option(
    "--root-dir",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    show_default=True,
    help="The folder JupyterLab shows.",
)
@click.option("--detach", is_flag=True, help="Return once queued, without waiting for the server.")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True, help="Seconds to wait.")
@json_option
@pass_ctx
def notebook_start(
    ctx: Context,
    gpus: int,
    idle_timeout: str | None,
    root_dir: str,
    detach: bool,
    timeout_s: float,
    as_json: bool,
) -> None:
    """Start JupyterLab on 127.0.0.1 and print its URL with the token."""
    timeout = None if idle_timeout is None else parse_duration(idle_timeout)
    services = ctx.services
    nb = services.notebooks.start(gpus=gpus, idle_timeout_s=timeout, root_dir=root_dir)
    appliance = _appliance_url(ctx)
    if detach:
        if as_json:
            echo_json(nb)
            return
        click.echo(f"notebook {nb.id} queued (job {nb.job_id})")
        if appliance is None:
            click.echo("no appliance is running: it starts once `mlbox up` (or the TUI) runs", err=True)
        return
    if not as_json:
        click.echo(f"notebook {nb.id} starting (job {nb.job_id}, {gpus} GPU(s))…", err=True)
    foreground = appliance is None
    if foreground:
        _interrupt_on_hangup()
    try:
        nb = _wait_ready(services, nb.id, drive=foreground, timeout_s=timeout_s)
        if nb.state not in ACTIVE_STATES:
            raise _ended(nb)
        if nb.url is None or not _ready(services, nb.id):
            if foreground:  # nothing would stop it once this process is gone
                services.notebooks.stop_here(nb.id, grace_s=services.settings.scheduler.kill_grace_s)
            raise click.ClickException(
                f"notebook {nb.id} is not answering after {timeout_s:g}s; see mlbox jobs logs {nb.job_id}"
            )
        if as_json:
            echo_json(nb)
        else:
            click.echo(nb.url)
            click.echo(
                f"idle timeout {nb.idle_timeout_s:g}s; stop with: mlbox notebook stop {nb.id}", err=True
            )
        if foreground:
            click.echo("no appliance is running: serving from here; Ctrl-C stops the server", err=True)
            _drive(services, lambda: services.notebooks.get(nb.id).state not in ACTIVE_STATES)
            final = services.notebooks.get(nb.id)
            click.echo(f"notebook {final.id} {final.state}: {final.message or ''}".rstrip(), err=True)
    except KeyboardInterrupt:
        click.echo(f"stopping notebook {nb.id}…", err=True)
        if foreground:
            grace = services.settings.scheduler.kill_grace_s
            stopped = services.notebooks.stop_here(nb.id, grace_s=grace)
        else:
            stopped = services.notebooks.stop(nb.id)
        click.echo(f"notebook {stopped.id} {stopped.state}", err=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_on_hangup() -> None:
    """A closed terminal (SIGHUP) or ``kill`` (SIGTERM) stops a foreground server as Ctrl-C does,
    instead of ending this process and leaving JupyterLab listening with nothing to stop it."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def _cells(nb: Notebook) -> tuple[object, ...]:
    tail = nb.url if nb.state in ACTIVE_STATES and nb.url else (nb.message or "")
    busy = "*" if nb.busy else ""
    return nb.id, nb.state + busy, nb.gpus, nb.job_id, when(nb.started_at), when(nb.last_activity), tail


@notebook.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include stopped, culled and failed servers.")
@json_option
@pass_ctx
def notebook_ls(ctx: Context, show_all: bool, as_json: bool) -> None:
    """List notebook servers (running ones unless --all); * marks a busy kernel or GPU."""
    found = ctx.services.notebooks.list(None if show_all else list(ACTIVE_STATES))
    if as_json:
        echo_json(found)
        return
    print_table(
        ("ID", "STATE", "GPUS", "JOB", "STARTED", "LAST ACTIVE", "URL / MESSAGE"),
        (_cells(nb) for nb in found),
        empty="no notebook servers; start one with: mlbox notebook start",
        right=("ID", "GPUS", "JOB"),
    )


@notebook.command("url")
@click.argument("notebook_id", type=int)
@pass_ctx
def notebook_url(ctx: Context, notebook_id: int) -> None:
    """Print a running server's URL with its token."""
    click.echo(ctx.services.notebooks.url(notebook_id))


STOP_MARGIN_S = 30.0
"""How long past the kill grace period `notebook stop` waits for a running appliance to end the job."""


@notebook.command("stop")
@click.argument("notebook_id", type=int)
@pass_ctx
def notebook_stop(ctx: Context, notebook_id: int) -> None:
    """Stop a server (its kernels end and its GPUs are freed); says so only once its processes ended.

    With an appliance running, its scheduler ends the server; without one, this command does.
    """
    services = ctx.services
    grace = services.settings.scheduler.kill_grace_s
    if _appliance_url(ctx) is None:
        nb = services.notebooks.stop_here(notebook_id, grace_s=grace)
    else:
        nb = services.notebooks.stop(notebook_id)
        job_id = nb.job_id
        deadline = time.monotonic() + grace + STOP_MARGIN_S
        while not services.scheduler.get(job_id).terminal:
            if time.monotonic() > deadline:
                raise MlboxError(
                    f"notebook {nb.id} is not stopped yet: the appliance has not ended its job {job_id}"
                    f" after {grace + STOP_MARGIN_S:g}s; see mlbox jobs show {job_id}"
                )
            time.sleep(0.2)
    click.echo(f"notebook {nb.id} {nb.state}")


def _report_run(services: Services, job: Job) -> None:
    click.echo(
        f"job {job.id}: {job.state}" + (f" (exit code {job.exit_code})" if job.exit_code is not None else "")
    )
    if job.run_id is not None:
        for art in services.tracking.list_artifacts(job.run_id):
            if art.path.startswith("notebook/"):
                click.echo(f"  run {job.run_id} artifact {art.path}  {art.size} B")


def _failure(services: Services, job: Job) -> str:
    """Why a headless run failed: the exception of the cell that raised (from the executed
    notebook the run stored), else the job's message or the last line of its log."""
    if job.run_id is not None:
        for art in services.tracking.list_artifacts(job.run_id):
            if art.path.startswith("notebook/") and art.path.endswith(".ipynb"):
                try:
                    data = b"".join(services.tracking.read_artifact(job.run_id, art.path))
                    error = first_error(json.loads(data))
                except (MlboxError, ValueError):
                    error = None
                if error is not None:
                    return error.line()
    if job.message:
        return job.message
    log, _ = services.scheduler.read_log(job.id)
    last = [ln for ln in log.decode(errors="replace").splitlines() if ln.strip()]
    return last[-1].strip() if last else f"see mlbox jobs logs {job.id}"


@notebook.command("run")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs the run holds.")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Seconds before the job is stopped.")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit code 1 when a cell failed.")
@json_option
@pass_ctx
def notebook_run(
    ctx: Context,
    path: str,
    params: tuple[str, ...],
    gpus: int,
    timeout_s: float | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Execute a notebook headless as a job; the executed notebook and its HTML become run artifacts.

    Values are JSON when they parse as JSON (-p lr=0.1, -p layers=[64,32]), text otherwise
    (-p name=digits). They go into a cell after the cell tagged `parameters`.
    """
    services = ctx.services
    job = services.notebooks.run(path, parse_assignments(params), gpus=gpus, timeout_s=timeout_s)
    appliance = _appliance_url(ctx)
    if not wait:
        if as_json:
            echo_json(job)
            return
        click.echo(f"job {job.id} queued: {job.spec.name}")
        if appliance is None:
            click.echo("no appliance is running: the job runs once `mlbox up` (or the TUI) runs", err=True)
        return
    job_id = job.id
    if appliance is None:
        _drive(services, lambda: services.scheduler.get(job_id).terminal)
    job = services.scheduler.wait(job_id)
    if as_json:
        echo_json(job)
    else:
        _report_run(services, job)
    if job.state != "succeeded":
        why = " ".join(_failure(services, job).split())  # one line, whatever the exception said
        click.echo(f"mlbox: notebook {job.state}: {why}", err=True)
        # SystemExit, not click.exceptions.Exit: `mlbox.cli.root.main` drops the code of the latter.
        raise SystemExit(1)
