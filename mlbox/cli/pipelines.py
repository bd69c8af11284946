"""``mlbox pipelines``: run, show, retry, cancel, backfill and schedule pipelines.

A pipeline is named by reference, ``package.module:name`` (importable from the current
folder). Beside a running appliance (``mlbox up`` or the TUI) a run is driven there and
``run`` only watches it; without one, ``run`` drives it in this process until it ends.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click
import msgspec

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx, print_table
from mlbox.pipelines.dagtext import draw, step_label
from mlbox.pipelines.lineage import LineageGraph
from mlbox.pipelines.schemas import PipelineRun
from mlbox.store import Home
from mlbox.textsafe import visible
from mlbox.timefmt import when

if TYPE_CHECKING:
    from mlbox.services import Services


def _params(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON is that JSON (``n=3`` is a number)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        try:
            out[key.strip()] = msgspec.json.decode(text)
        except msgspec.DecodeError:
            out[key.strip()] = text
    return out


def _importable() -> None:
    """A pipeline module in the current folder is importable, as ``python -m`` would find it."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _appliance_up(ctx: Context) -> bool:
    return Home(ctx.settings.home).running_appliance() is not None


def _drive(services: Services, run_id: int, timeout_s: float | None) -> PipelineRun:
    """This process is the driver: the scheduler (for job steps) and the pipelines' passes."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        services.scheduler.reconcile_once()
        services.pipelines.reconcile_once()
        run = services.pipelines.get_run(run_id)
        if run.state not in ("queued", "running") or (deadline is not None and time.monotonic() > deadline):
            services.pipelines.close()
            return run
        services.scheduler.wait_for_work(0.02)


def render_run(run: PipelineRun) -> list[str]:
    """The run's header and its DAG with each step's state, duration and cache hit."""
    steps = {s.node: s for s in run.steps}
    lines = [
        f"run {run.id}  {run.pipeline}  {run.state}  trigger {run.trigger}"
        + (f"  partition {run.partition}" if run.partition else ""),
        f"params {msgspec.json.encode(run.params).decode()}",
    ]
    if run.message:
        lines.append(run.message)
    # A failed run names why where it is shown: the user should not have to know --logs to learn it.
    failed = [s for s in run.steps if s.state == "failed" and s.message]
    lines.extend(f"  {s.node}: {s.message}" for s in failed)
    if failed:
        lines.append(f"  (each step's log: mlbox pipelines show {run.id} --logs)")
    labels = {n: (n, step_label(s.state, s.duration_s, s.attempt)) for n, s in steps.items()}
    drawing, _ = draw({n: s.deps for n, s in steps.items()}, labels)
    return [*lines, "", *drawing]


@click.group("pipelines")
def pipelines() -> None:
    """Pipelines: run, retry, backfill and schedule DAGs of steps."""


@pipelines.command("ls")
@click.option("--pipeline", default=None, help="Only this pipeline's runs.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="Show at most this many runs, newest first.",
)
@json_option
@pass_ctx
def pipelines_ls(ctx: Context, pipeline: str | None, limit: int, as_json: bool) -> None:
    """Pipeline runs, newest first."""
    runs = ctx.services.pipelines.list_runs(pipeline=pipeline, limit=limit)
    if as_json:
        echo_json(runs)
        return
    print_table(
        ("ID", "PIPELINE", "STATE", "TRIGGER", "PARTITION", "CREATED", "MESSAGE"),
        (
            (r.id, r.pipeline, r.state, r.trigger, r.partition or "", when(r.created_at), r.message or "")
            for r in runs
        ),
        empty="no pipeline runs; start one with: mlbox pipelines run package.module:name",
        right=("ID",),
    )


@pipelines.command("run")
@click.argument("pipeline")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@click.option("--no-cache", is_flag=True, help="Run every step, reusing no earlier result.")
@click.option(
    "--no-cache-step", "no_cache_steps", multiple=True, metavar="STEP", help="Run this step afresh."
)
@click.option("--partition", default=None, help="The run's partition (a day, YYYY-MM-DD).")
@click.option("--detach", is_flag=True, help="Return once the run is recorded (an appliance drives it).")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Seconds to wait.")
@json_option
@pass_ctx
def pipelines_run(
    ctx: Context,
    pipeline: str,
    params: tuple[str, ...],
    no_cache: bool,
    no_cache_steps: tuple[str, ...],
    partition: str | None,
    detach: bool,
    timeout_s: float | None,
    as_json: bool,
) -> None:
    """Check and start a run of PIPELINE (package.module:name); exit code 1 if it fails."""
    _importable()
    services = ctx.services
    run = services.pipelines.submit(
        pipeline,
        _params(params),
        no_cache=no_cache,
        no_cache_steps=no_cache_steps,
        partition=partition,
        trigger="cli",
    )
    if not detach:
        if _appliance_up(ctx):
            run = services.pipelines.wait(run.id, timeout_s, drive=False)
        else:
            run = _drive(services, run.id, timeout_s)
    if as_json:
        echo_json(run)
    else:
        for line in render_run(run):
            click.echo(visible(line))
    if run.state in ("failed", "cancelled"):
        sys.exit(1)


@pipelines.command("show")
@click.argument("run_id", type=int)
@click.option("--step", "node", default=None, help="Print this step's log instead.")
@click.option("--logs", is_flag=True, help="After the DAG, every step's log (what it printed and logged).")
@json_option
@pass_ctx
def pipelines_show(ctx: Context, run_id: int, node: str | None, logs: bool, as_json: bool) -> None:
    """A run's DAG with live step states, or one step's log, or (--logs) both."""
    if node is not None:
        click.echo(visible(ctx.services.pipelines.step_log(run_id, node), keep="\n\t").rstrip("\n"))
        return
    run = ctx.services.pipelines.get_run(run_id)
    if as_json:
        echo_json(run)
        return
    for line in render_run(run):
        click.echo(visible(line))
    if logs:
        for s in run.steps:
            text = ctx.services.pipelines.step_log(run_id, s.node)
            click.echo(f"\n--- {visible(s.node)} ({s.state}) ---")
            click.echo(visible(text, keep="\n\t").rstrip("\n") or "(nothing written)")


@pipelines.command("retry")
@click.argument("run_id", type=int)
@click.option("--step", "node", default=None, help="Retry this step (default: every failed one).")
@pass_ctx
def pipelines_retry(ctx: Context, run_id: int, node: str | None) -> None:
    """Run a failed step again, or the failed part of a run; finished steps are kept."""
    _importable()
    run = ctx.services.pipelines.retry(run_id, node)
    again = [s.node for s in run.steps if s.state in ("pending", "ready")]
    click.echo(f"run {run.id} retrying: {', '.join(again)}")


@pipelines.command("cancel")
@click.argument("run_id", type=int)
@pass_ctx
def pipelines_cancel(ctx: Context, run_id: int) -> None:
    """Cancel a run: steps not started never start, running jobs are stopped."""
    run = ctx.services.pipelines.cancel(run_id)
    click.echo(f"run {run.id} cancelled")


@pipelines.command("backfill")
@click.argument("pipeline")
@click.argument("start")
@click.argument("end")
@click.option("--parallel", type=click.IntRange(1, 64), default=2, show_default=True, help="Runs at once.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@pass_ctx
def pipelines_backfill(
    ctx: Context, pipeline: str, start: str, end: str, parallel: int, params: tuple[str, ...]
) -> None:
    """One run per day from START to END (YYYY-MM-DD, inclusive), PARALLEL at a time."""
    _importable()
    runs = ctx.services.pipelines.backfill(pipeline, start, end, parallel=parallel, params=_params(params))
    click.echo(f"{len(runs)} runs queued ({runs[0].id}..{runs[-1].id}), {parallel} at a time")


@pipelines.group("schedule")
def schedule() -> None:
    """Triggers that start runs (fired by the appliance): cron, a watched folder, a model alias,
    a logged dataset or a feature store training set changing."""


@schedule.command("add")
@click.argument("pipeline")
@click.option("--cron", default=None, help="A cron expression (UTC), e.g. '0 3 * * *'.")
@click.option("--folder", default=None, help="A folder whose new files each start a run (param 'path').")
@click.option(
    "--alias", "alias", default=None, help="MODEL@ALIAS: a run each time the alias moves (param 'model')."
)
@click.option(
    "--dataset",
    default=None,
    help="EXPERIMENT/NAME: a run each time that logged dataset's content hash changes (param 'dataset').",
)
@click.option(
    "--training-set",
    "training_set",
    default=None,
    help="NAME: a run each time the feature store's training set NAME changes (param 'training_set').",
)
@click.option(
    "--catchup",
    type=click.Choice(["none", "latest", "all"]),
    default="latest",
    show_default=True,
    help="Ticks missed while the appliance was down: none, the latest, or all.",
)
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@pass_ctx
def schedule_add(
    ctx: Context,
    pipeline: str,
    cron: str | None,
    folder: str | None,
    alias: str | None,
    dataset: str | None,
    training_set: str | None,
    catchup: str,
    params: tuple[str, ...],
) -> None:
    """Add a trigger: exactly one of --cron, --folder, --alias, --dataset and --training-set."""
    if sum(x is not None for x in (cron, folder, alias, dataset, training_set)) != 1:
        raise click.BadParameter(
            "give exactly one of --cron, --folder, --alias, --dataset and --training-set", param_hint="--cron"
        )
    _importable()
    if cron is not None:
        kind, spec = "cron", cron
    elif folder is not None:
        kind, spec = "folder", os.path.abspath(folder)
    elif dataset is not None:
        kind, spec = "dataset", dataset
    elif training_set is not None:
        kind, spec = "training_set", training_set
    else:
        kind, spec = "alias", alias or ""
    sch = ctx.services.pipelines.add_schedule(pipeline, kind, spec, _params(params), catchup=catchup)
    click.echo(f"schedule {sch.id}: {sch.kind} {sch.spec} -> {sch.ref}")


@schedule.command("ls")
@json_option
@pass_ctx
def schedule_ls(ctx: Context, as_json: bool) -> None:
    """The triggers."""
    found = ctx.services.pipelines.schedules()
    if as_json:
        echo_json(found)
        return
    print_table(
        ("ID", "KIND", "SPEC", "PIPELINE", "CATCHUP"),
        ((s.id, s.kind, s.spec, s.ref, s.catchup) for s in found),
        empty="no schedules; add one with: mlbox pipelines schedule add REF --cron '0 3 * * *'",
        right=("ID",),
    )


@schedule.command("rm")
@click.argument("schedule_id", type=int)
@pass_ctx
def schedule_rm(ctx: Context, schedule_id: int) -> None:
    """Remove a trigger."""
    ctx.services.pipelines.remove_schedule(schedule_id)
    click.echo(f"schedule {schedule_id} removed")


def render_lineage(graph: LineageGraph) -> list[str]:
    """The graph as an indented tree from its root (a node met again is named, not repeated)."""
    labels = {n.id: n.label for n in graph.nodes}
    out_edges: dict[str, list[tuple[str, str]]] = {}
    for e in graph.edges:
        out_edges.setdefault(e.src, []).append((e.what, e.dst))
    lines = [visible(labels.get(graph.root, graph.root))]
    seen = {graph.root}

    def walk(node: str, depth: int) -> None:
        for what, dst in sorted(out_edges.get(node, []), key=lambda x: (x[0], x[1])):
            again = dst in seen
            label = labels.get(dst, dst)
            lines.append(f"{'  ' * depth}└ {what} {visible(label)}" + (" (above)" if again else ""))
            if not again:
                seen.add(dst)
                walk(dst, depth + 1)

    walk(graph.root, 1)
    return lines


@click.command("lineage")
@click.option(
    "--request", "request_id", default=None, help="A served prediction's request id: back to the raw files."
)
@click.option("--file", "path", default=None, help="A raw file: forward to the models and served versions.")
@click.option(
    "--made-by",
    "made",
    nargs=2,
    default=None,
    metavar="KIND REF",
    help="What step run made it: model NAME/VERSION, training_set ID, dataset HASH, frame SHA256, predictions SEGMENT.",
)
@json_option
@pass_ctx
def lineage(
    ctx: Context, request_id: str | None, path: str | None, made: tuple[str, str] | None, as_json: bool
) -> None:
    """What made a prediction (--request), what a raw file went into (--file), or which step run
    made an artifact, dataset, training set, model version or prediction segment (--made-by)."""
    if sum(x is not None for x in (request_id, path, made)) != 1:
        raise click.BadParameter(
            "give exactly one of --request, --file and --made-by", param_hint="--request"
        )
    p = ctx.services.pipelines
    if made is not None:
        found = p.made_by(*made)
        if as_json:
            echo_json(found)
            return
        for m in found:
            click.echo(
                visible(
                    f"{m.kind} {m.ref}: made by step run {m.step_run_id} ({m.pipeline}.{m.node}, attempt"
                    f" {m.attempt}) of pipeline run {m.pipeline_run_id}, code {m.code_hash[:12]}"
                )
            )
            for i in m.inputs:
                click.echo(visible(f"  input {i.name} <- {i.source} {i.value}"))
            for f in m.files:
                click.echo(visible(f"  read {f}"))
        return
    graph = (
        p.lineage_back(request_id)
        if request_id is not None
        else p.lineage_forward(os.path.abspath(path or ""))
    )
    if as_json:
        echo_json(graph)
        return
    for line in render_lineage(graph):
        click.echo(line)
