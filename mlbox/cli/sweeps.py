"""``mlbox sweep`` (start a hyper-parameter search) and ``mlbox sweeps`` (list, show, stop, best).

``mlbox sweep SPACE -- COMMAND...`` records the sweep and follows it until it
ends. Trials are jobs, so something must run the scheduler: when an appliance
(``mlbox up`` or the TUI) serves this home it does, and the command only
watches; otherwise the command drives the scheduler and the sweep itself in
the foreground. Ctrl-C stops the sweep (its running trials are cancelled),
and ``--detach`` returns at once, leaving the sweep to the appliance.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from mlbox.cli.context import Context, echo_json, fmt, json_option, pass_ctx, print_table, when
from mlbox.scheduler.environment import submitter_env
from mlbox.store.errors import InvalidInput
from mlbox.sweeps.schemas import PRUNERS, SAMPLERS, Sweep, SweepSpec, Trial

if TYPE_CHECKING:
    from mlbox.services import Services

FLAG_FIELDS = (
    "metric",
    "direction",
    "objective",
    "n_trials",
    "parallel",
    "sampler",
    "pruner",
    "seed",
    "gpus_per_trial",
    "cpus_per_trial",
    "timeout_s",
    "trial_timeout_s",
    "name",
    "experiment",
    "workdir",
)
FILE_ALIASES = {"trials": "n_trials", "timeout": "timeout_s", "trial_timeout": "trial_timeout_s"}


def build_spec(
    space_file: str,
    flags: dict[str, Any],
    command: list[str],
    env: list[str],
    *,
    inherit: Mapping[str, str] | None = None,
) -> SweepSpec:
    """The spec from a space file (with the settings it carries) under the command line's flags.

    ``inherit``: the submitter's environment, captured for every trial (mlbox's secrets and
    session variables left out), under the file's ``env`` and the ``--env`` flags; None
    gives the trials a clean environment."""
    from mlbox.sweeps.service import spec_from_mapping
    from mlbox.sweeps.space import load_file

    space, settings = load_file(space_file)
    data: dict[str, Any] = {FILE_ALIASES.get(k, k): v for k, v in settings.items()}
    known = set(SweepSpec.__struct_fields__) - {"space", "space_source", "space_filename"}
    for key in data:
        if key not in known:
            raise InvalidInput(f"{space_file}: unknown sweep setting {key!r}", field=key)
    data.update({k: v for k, v in flags.items() if v is not None})
    if command:
        data["command"] = list(command)
    elif isinstance(data.get("command"), str):
        data["command"] = shlex.split(data["command"])
    if not data.get("command"):
        raise InvalidInput(
            "give the trial command after --, e.g. -- python train.py --lr {lr}", field="command"
        )
    if not data.get("metric"):
        raise InvalidInput("give the objective metric: --metric NAME", field="metric")
    extra: dict[str, str] = submitter_env(inherit) if inherit is not None else {}
    extra.update(data.get("env") or {})
    data["env_policy"] = "inherit" if inherit is not None else "clean"
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
        extra[key] = value
    data["env"] = extra
    data.setdefault("workdir", os.getcwd())
    if space.is_function:
        data["space_source"] = space.source
        data["space_filename"] = space.filename
    else:
        data["space"] = space.to_json()["params"]
    return spec_from_mapping(data)


TRIAL_COLUMNS = ("TRIAL", "STATE", "VALUE", "JOB", "PARAMS")


def _trial_cells(t: Trial) -> tuple[str, ...]:
    value = "-" if t.value is None else fmt(t.value)
    params = " ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    note = f"  ({t.message})" if t.message else ""
    job = "-" if t.job_id is None else str(t.job_id)
    return str(t.number), t.state, value, job, params + note


def _trial_line(t: Trial) -> str:
    """One trial as the live follow prints it (streamed under `TRIAL_HEADER`, not a table)."""
    number, state, value, job, rest = _trial_cells(t)
    return f"{number:>5}  {state:<8} {value:>12}  {job:>5}  {rest}"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _echo_sweep(s: Sweep) -> None:
    spec = s.spec
    counts = ", ".join(f"{n} {state}" for state, n in sorted(s.counts.items())) or "no trials yet"
    click.echo(f"sweep {s.id} {s.name!r}  [{s.state}]  created {when(s.created_at)}")
    click.echo(
        f"  {spec.direction} {spec.metric} ({spec.objective})  trials {spec.n_trials}  parallel {spec.parallel}"
        f"  sampler {spec.sampler}  pruner {spec.pruner}  gpus/trial {spec.gpus_per_trial}"
    )
    click.echo(f"  experiment {s.experiment}  command: {' '.join(spec.command)}")
    click.echo(f"  trials: {counts}")
    if s.best_trial is not None:
        click.echo(f"  best: trial {s.best_trial}  {spec.metric}={fmt(s.best_value)}  {s.best_params}")
    if s.message:
        click.echo(f"  {s.message}")


TRIAL_HEADER = f"{'TRIAL':>5}  {'STATE':<8} {'VALUE':>12}  {'JOB':>5}  PARAMS"


def follow(services: Services, sweep_id: int, *, drive: bool, quiet: bool = False) -> Sweep:
    """Print trials as they end until the sweep does; ``drive`` runs the scheduler here too."""
    sweeps, scheduler = services.sweeps, services.scheduler
    tick = services.settings.scheduler.tick_s
    shown: set[int] = set()
    stopping = False
    while True:
        try:
            if drive:
                scheduler.reconcile_once()
                sweeps.reconcile_once()
            sweep = sweeps.get(sweep_id)
            for t in sweeps.trials(sweep_id):
                if t.state != "running" and t.number not in shown:
                    shown.add(t.number)
                    if not quiet:
                        click.echo(_trial_line(t))
            if sweep.state not in ("running", "stopping"):
                return sweep
            if drive:
                scheduler.wait_for_work(tick)
            else:
                time.sleep(max(tick, 0.5))
        except KeyboardInterrupt:
            if stopping:
                raise
            stopping = True
            click.echo(f"stopping sweep {sweep_id} (its running trials are cancelled)…", err=True)
            sweeps.stop(sweep_id)


@click.command("sweep", context_settings={"show_default": True})
@click.argument("space_file", type=click.Path(dir_okay=False))
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--metric", help="The objective: a metric the trial logs (mlbox.log_metric).")
@click.option(
    "--direction",
    type=click.Choice(["minimize", "maximize"]),
    default=None,
    help="Whether a lower or a higher metric is better [default: minimize, or the space file's].",
)
@click.option(
    "--objective",
    type=click.Choice(["last", "best"]),
    default=None,
    help="Judge a trial by its last or best point.",
)
@click.option("--trials", "n_trials", type=int, default=None, help="Number of trials (default 20).")
@click.option("--parallel", type=int, default=None, help="Trials running at once (default 1).")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None, help="Default tpe.")
@click.option("--pruner", type=click.Choice(PRUNERS), default=None, help="Default none.")
@click.option("--seed", type=int, default=None, help="Sampler seed.")
@click.option("--gpus-per-trial", type=int, default=None, help="GPUs each trial's job leases [default: 0].")
@click.option(
    "--cpus-per-trial", type=float, default=None, help="CPU cores each trial's job reserves [default: 1]."
)
@click.option(
    "--timeout", "timeout_s", type=float, default=None, help="Start no trial after this many seconds."
)
@click.option("--trial-timeout", "trial_timeout_s", type=float, default=None, help="Seconds per trial.")
@click.option("--name", default=None, help="A name for the sweep, shown in lists and the TUI.")
@click.option(
    "--experiment", default=None, help="Experiment of the trials' runs (default: the sweep's name)."
)
@click.option("--workdir", default=None, help="Folder the trials run in (default: here).")
@click.option("--env", "env", multiple=True, help="KEY=VALUE for every trial (repeatable).")
@click.option(
    "--env-clean",
    is_flag=True,
    help="Trials start from a minimal environment (PATH, HOME, locale) instead of this shell's.",
)
@click.option("--detach", is_flag=True, help="Return at once; the appliance runs the sweep.")
@json_option
@pass_ctx
def sweep(
    ctx: Context,
    space_file: str,
    command: tuple[str, ...],
    env: tuple[str, ...],
    env_clean: bool,
    detach: bool,
    as_json: bool,
    **flags: Any,
) -> None:
    """Search hyper-parameters: SPACE_FILE (YAML or Python) -- COMMAND...

    Each trial runs COMMAND as a job with its own run; {name} in COMMAND is
    replaced by the parameter's value, and the script reads them all with
    mlbox.trial_params(). The trial logs METRIC with mlbox.log_metric at each
    step; those values drive the pruner. A YAML file may carry settings beside
    its space (metric, direction, trials, parallel, sampler, pruner, command…);
    flags override them. Without a running appliance this command runs the
    trials itself until the sweep ends (Ctrl-C stops it).

    Trials run where you are: with this shell's environment (PATH, the active
    virtualenv or conda env, your variables), whichever environment the
    appliance was started from; --env-clean gives them a minimal one. Exits
    with code 1 when the sweep failed or no trial completed, saying why.
    """
    spec = build_spec(space_file, flags, list(command), list(env), inherit=None if env_clean else os.environ)
    services = ctx.services
    created = services.sweeps.create(spec)
    beside = services.home.running_appliance()
    if not as_json:
        click.echo(
            f"sweep {created.id} {created.name!r} started: {created.spec.n_trials} trials, parallel {created.spec.parallel}"
        )
    if detach:
        if as_json:
            echo_json(created)
        if beside is None:
            click.echo("no appliance is running: start one (mlbox up) to run the trials", err=True)
        return
    if not as_json:
        click.echo(TRIAL_HEADER)
    done = follow(services, created.id, drive=beside is None, quiet=as_json)
    if as_json:
        echo_json(services.sweeps.detail(done.id))
    else:
        _echo_sweep(done)
    if done.state == "failed" or (done.state == "finished" and not done.counts.get("complete")):
        why = done.message or "no trial completed"
        click.echo(
            f"mlbox: sweep {done.id} {done.state}: {why} (mlbox jobs logs JOB shows a trial's output)",
            err=True,
        )
        raise click.exceptions.Exit(1)


@click.group()
def sweeps() -> None:
    """Hyper-parameter sweeps: list, show, stop, best trial (and register its model)."""


@sweeps.command("ls")
@click.option("--state", "states", multiple=True, help="Only sweeps in this state (repeatable).")
@json_option
@pass_ctx
def sweeps_ls(ctx: Context, states: tuple[str, ...], as_json: bool) -> None:
    """List sweeps, newest first."""
    found = ctx.services.sweeps.list_sweeps(states=list(states) or None)
    if as_json:
        echo_json(found)
        return
    rows = (
        (
            s.id,
            s.name,
            s.state,
            f"{sum(n for state, n in s.counts.items() if state != 'running')}/{s.spec.n_trials}",
            s.spec.metric,
            "-" if s.best_value is None else fmt(s.best_value),
            when(s.created_at),
        )
        for s in found
    )
    print_table(
        ("ID", "NAME", "STATE", "TRIALS", "METRIC", "BEST", "CREATED"),
        rows,
        empty="no sweeps yet; start one with: mlbox sweep SPACE.yaml --metric NAME -- python train.py",
        right=("ID", "TRIALS", "BEST"),
    )


@sweeps.command("show")
@click.argument("sweep_id", type=int)
@json_option
@pass_ctx
def sweeps_show(ctx: Context, sweep_id: int, as_json: bool) -> None:
    """A sweep and its trials (state, value, job, params; why pruned or failed)."""
    detail = ctx.services.sweeps.detail(sweep_id)
    if as_json:
        echo_json(detail)
        return
    _echo_sweep(detail.sweep)
    print_table(
        TRIAL_COLUMNS,
        (_trial_cells(t) for t in detail.trials),
        empty="no trials yet",
        right=("TRIAL", "VALUE", "JOB"),
    )


@sweeps.command("stop")
@click.argument("sweep_id", type=int)
@pass_ctx
def sweeps_stop(ctx: Context, sweep_id: int) -> None:
    """Start no more trials and cancel the running ones."""
    s = ctx.services.sweeps.stop(sweep_id)
    click.echo(f"sweep {s.id}: {s.state}")


@sweeps.command("best")
@click.argument("sweep_id", type=int)
@click.option(
    "--register", "register", default=None, metavar="NAME", help="Register the best trial's model as NAME."
)
@click.option("--artifact-path", default="model", help="The run artifact holding the model.")
@json_option
@pass_ctx
def sweeps_best(ctx: Context, sweep_id: int, register: str | None, artifact_path: str, as_json: bool) -> None:
    """The best complete trial; with --register, its logged model becomes a new model version."""
    svc = ctx.services.sweeps
    best = svc.best(sweep_id)
    version = None if register is None else svc.register_best(sweep_id, register, artifact_path=artifact_path)
    if as_json:
        echo_json({"trial": best, "registered": version})
        return
    metric = svc.get(sweep_id).spec.metric
    click.echo(f"best trial {best.number}: {metric}={fmt(best.value)}  run {best.run_id}  job {best.job_id}")
    for k, v in best.params.items():
        click.echo(f"  {k} = {v}")
    if version is not None:
        click.echo(f"registered {version.name} version {version.version} from run {best.run_id}")
