"""``mlbox experiments`` and ``mlbox runs``: the tracking service from the shell."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from mlbox.cli.confirm import confirm, yes_option
from mlbox.cli.context import Context, echo_json, fmt, json_option, pass_ctx, print_table, when
from mlbox.tracking.lifecycle import Lifecycle

deleted_option = click.option("--deleted", is_flag=True, help="Only deleted ones (restorable until purged).")
all_option = click.option("--all", "all_", is_flag=True, help="Deleted ones too.")


def _lifecycle(deleted: bool, all_: bool) -> Lifecycle:
    if deleted and all_:
        raise click.BadParameter("give --deleted or --all, not both", param_hint="--deleted")
    return "deleted" if deleted else "all" if all_ else "active"


def _restorable(ctx: Context) -> str:
    return f"restorable for {ctx.settings.retention_days:g} days, until mlbox gc purges it"


@click.group()
def experiments() -> None:
    """Experiments: named groups of runs."""


@experiments.command("ls")
@deleted_option
@all_option
@json_option
@pass_ctx
def experiments_ls(ctx: Context, deleted: bool, all_: bool, as_json: bool) -> None:
    """List experiments with their run counts (deleted ones with --deleted or --all)."""
    lifecycle = _lifecycle(deleted, all_)
    exps = ctx.services.tracking.list_experiments(lifecycle)
    if as_json:
        echo_json(exps)
        return
    columns = ["ID", "NAME", "RUNS", "CREATED"] + (["DELETED"] if lifecycle != "active" else [])
    print_table(
        columns,
        [
            [e.id, e.name, e.run_count, when(e.created_at)]
            + ([when(e.deleted_at) if e.deleted_at else ""] if lifecycle != "active" else [])
            for e in exps
        ],
        empty="no deleted experiments"
        if lifecycle == "deleted"
        else "no experiments yet; a run creates its experiment: mlbox.start_run(experiment=NAME)",
        right={"ID", "RUNS"},
    )


@experiments.command("delete")
@click.argument("name")
@yes_option
@pass_ctx
def experiments_delete(ctx: Context, name: str, yes: bool) -> None:
    """Delete an experiment and its runs (restorable until the retention period ends).

    Refused (exit 2) while something still needs one of its runs, such as a registered model.
    """
    tracking = ctx.services.tracking
    exp = tracking.get_experiment(name)
    confirm(f"delete experiment {exp.name!r} and its {exp.run_count} runs?", yes)
    tracking.delete_experiment(exp.id)
    click.echo(f"deleted experiment {exp.name!r} ({_restorable(ctx)}: mlbox experiments restore {exp.name})")


@experiments.command("restore")
@click.argument("name")
@pass_ctx
def experiments_restore(ctx: Context, name: str) -> None:
    """Bring back a deleted experiment with the runs deleted together with it."""
    exp = ctx.services.tracking.restore_experiment(name)
    click.echo(f"restored experiment {exp.name!r} ({exp.run_count} runs)")


@experiments.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_ctx
def experiments_rename(ctx: Context, name: str, new_name: str) -> None:
    """Give an experiment another name; its runs follow it.

    Refused (exit 2) when NEW_NAME is taken, for a deleted experiment and for Default.
    A registered model's lineage keeps the name the experiment had when it was registered.
    """
    tracking = ctx.services.tracking
    old = tracking.get_experiment(name)
    exp = tracking.rename_experiment(old.id, new_name)
    click.echo(f"renamed experiment {old.name!r} to {exp.name!r} ({exp.run_count} runs)")


@click.group()
def runs() -> None:
    """Runs: search, show, export."""


@runs.command("ls")
@click.option(
    "--filter", "-f", "filter_", default="", help="e.g. \"metrics.acc > 0.9 and params.lr = '0.01'\""
)
@click.option("--order-by", "-o", multiple=True, help="e.g. 'metrics.acc DESC' (repeatable).")
@click.option("--experiment", "-e", multiple=True, help="Only these experiments (repeatable).")
@click.option("--limit", "-n", default=50, show_default=True, type=int, help="Runs per page.")
@click.option("--offset", default=0, type=int, help="Skip this many runs (the next page).")
@deleted_option
@all_option
@json_option
@pass_ctx
def runs_ls(
    ctx: Context,
    filter_: str,
    order_by: tuple[str, ...],
    experiment: tuple[str, ...],
    limit: int,
    offset: int,
    deleted: bool,
    all_: bool,
    as_json: bool,
) -> None:
    """Search runs, newest first unless ordered otherwise (deleted ones with --deleted or --all)."""
    lifecycle = _lifecycle(deleted, all_)
    page = ctx.services.tracking.search_runs(
        filter_,
        order_by=list(order_by),
        experiments=list(experiment),
        limit=limit,
        offset=offset,
        lifecycle=lifecycle,
    )
    if as_json:
        echo_json(page)
        return
    rows = [
        [
            r.id,
            r.experiment[:16],
            r.name[:22],
            r.status if r.deleted_at is None else "deleted",
            when(r.start_time),
            "  ".join(f"{k}={fmt(v)}" for k, v in list(r.metrics.items())[:4]),
        ]
        for r in page.runs
    ]
    searched = bool(filter_ or experiment)
    print_table(
        ["ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "METRICS"],
        rows,
        empty="no runs match"
        if searched or lifecycle == "deleted"
        else "no runs yet; log one with mlbox.start_run()",
        right={"ID"},
    )
    if page.total:
        shown = offset + len(page.runs)
        click.echo(
            f"{len(page.runs)} of {page.total} runs"
            + (f" (next: --offset {shown})" if shown < page.total else "")
        )


def _run_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a run id (an integer)", param_hint="RUN_ID") from None


def _run_ids(values: tuple[str, ...]) -> list[int]:
    return [_run_id(v) for v in values]


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@yes_option
@pass_ctx
def runs_delete(ctx: Context, run_ids: tuple[str, ...], yes: bool) -> None:
    """Delete runs (restorable until the retention period ends: mlbox runs restore).

    Refused (exit 2) for a run something still needs, such as a registered model's source run;
    the runs before it in the list are deleted.
    """
    ids = _run_ids(run_ids)
    tracking = ctx.services.tracking
    names = [f"{r.id} ({r.name})" for r in (tracking.get_run(i) for i in ids)]
    confirm(f"delete run{'s' if len(ids) > 1 else ''} {', '.join(names)}?", yes)
    for i in ids:
        tracking.delete_run(i)
        click.echo(f"deleted run {i} ({_restorable(ctx)}: mlbox runs restore {i})")


@runs.command("restore")
@click.argument("run_ids", nargs=-1, required=True)
@pass_ctx
def runs_restore(ctx: Context, run_ids: tuple[str, ...]) -> None:
    """Bring back deleted runs."""
    for i in _run_ids(run_ids):
        ctx.services.tracking.restore_run(i)
        click.echo(f"restored run {i}")


@runs.command("show")
@click.argument("run_id")
@json_option
@pass_ctx
def runs_show(ctx: Context, run_id: str, as_json: bool) -> None:
    """Show a run: attributes, params, tags, metrics, artifacts, datasets."""
    d = ctx.services.tracking.run_detail(_run_id(run_id))
    if as_json:
        echo_json(d)
        return
    r = d.run
    end = when(r.end_time)
    click.echo(f"run {r.id}  {r.name}  [{r.status}]  experiment {r.experiment}")
    if r.deleted_at is not None:
        click.echo(f"deleted {when(r.deleted_at)} (mlbox runs restore {r.id})")
    click.echo(f"  started {when(r.start_time)}  ended {end}  host {r.host} pid {r.pid}")
    if r.git_sha:
        click.echo(f"  git {r.git_sha[:12]}{' (dirty)' if r.git_dirty else ''}")
    sections: list[tuple[str, list[str]]] = [
        ("params", [f"{k} = {v}" for k, v in r.params.items()]),
        ("tags", [f"{k} = {v}" for k, v in r.tags.items()]),
        ("metrics", [f"{m.key} = {fmt(m.last)}  (step {m.step}, {m.count} points)" for m in d.metrics]),
        ("artifacts", [f"{a.path}  {a.size} B  sha256 {a.sha256[:12]}" for a in d.artifacts]),
        (
            "datasets",
            [
                f"{ds.context}/{ds.name}  {ds.digest[:12]}  {ds.rows or '?'} rows  {ds.source}"
                for ds in d.datasets
            ],
        ),
    ]
    for title, lines in sections:
        if lines:
            click.echo(f"{title}:")
            for line in lines:
                click.echo(f"  {line}")


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@json_option
@pass_ctx
def runs_compare(ctx: Context, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Params and latest metrics of two or more runs side by side."""
    cmp = ctx.services.tracking.compare([_run_id(r) for r in run_ids])
    if as_json:
        echo_json(cmp)
        return
    runs_ = [f"run {i}" for i in cmp.run_ids]
    rows = [[k, *((v or "-")[:12] for v in vals)] for k, vals in cmp.params.items()]
    rows += [[k, *(fmt(v) for v in mvals)] for k, mvals in cmp.metrics.items()]
    print_table(["", *runs_], rows, empty="no params or metrics to compare", right=set(runs_))


@runs.command("export")
@click.argument("run_id")
@click.option("--output", "-o", required=True, help="File to write: .parquet (or .pq) or .csv.")
@pass_ctx
def runs_export(ctx: Context, run_id: str, output: str) -> None:
    """Export a run's metric history (key, step, timestamp, value) to Parquet or CSV, by the
    output's suffix (``-o m.csv`` used to get Parquet bytes under a .csv name)."""
    if os.path.isdir(output):
        raise click.BadParameter(f"{output!r} is a folder; give a file name", param_hint="--output")
    suffix = Path(output).suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise click.BadParameter(f"{output!r}: name a .parquet (or .pq) or .csv file", param_hint="--output")
    rid = _run_id(run_id)
    if suffix != ".csv":
        n = ctx.services.tracking.export_metrics(rid, output)
    else:
        import polars as pl

        # Parquet first (the one exporter), then CSV beside the target, renamed into place whole.
        folder = Path(output).resolve().parent
        folder.mkdir(parents=True, exist_ok=True)  # as the Parquet writer does
        with tempfile.TemporaryDirectory(dir=folder, prefix=".mlbox-export-") as tmp:
            part = Path(tmp) / "metrics.parquet"
            n = ctx.services.tracking.export_metrics(rid, part)
            pl.read_parquet(part).write_csv(Path(tmp) / "metrics.csv")
            os.replace(Path(tmp) / "metrics.csv", output)
    click.echo(f"wrote {n} points to {output}")


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` itself or lies in the folder ``prefix``."""
    prefix = prefix.strip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


@runs.command("artifacts")
@click.argument("run_id")
@click.argument("path", required=False, default="")
@click.option(
    "--output",
    "-o",
    "dest",
    help="Download into this folder (kept as the artifacts' paths), or to this file for one artifact.",
)
@json_option
@pass_ctx
def runs_artifacts(ctx: Context, run_id: str, path: str, dest: str | None, as_json: bool) -> None:
    """List a run's artifacts (under PATH, a file or folder), or download them with -o, verified by hash.

    A download never overwrites a different file: a file already there with the
    same content is kept, one with other content stops the download before any
    byte is written.
    """
    from mlbox.cli.artifacts_download import plan, write

    tracking = ctx.services.tracking
    rid = _run_id(run_id)
    items = [a for a in tracking.list_artifacts(rid) if _under(a.path, path)]
    if path and not items:
        raise click.BadParameter(f"run {rid} has no artifact or folder {path!r}", param_hint="PATH")
    if dest is None:
        if as_json:
            echo_json(items)
            return
        print_table(
            ["PATH", "SIZE", "SHA256"],
            [(a.path, fmt_size(a.size), a.sha256[:16]) for a in items],
            empty=f"run {rid} has no artifacts",
            right={"SIZE"},
        )
        return
    targets = plan(items, path, dest)
    written, kept = write(targets, lambda p: tracking.read_artifact(rid, p))
    total = sum(t.info.size for t in targets)
    if as_json:
        echo_json({"written": [str(t.target) for t in written], "kept": [str(t.target) for t in kept]})
        return
    click.echo(
        f"downloaded {len(written)} file{'s' if len(written) != 1 else ''} ({fmt_size(total)}) to {dest}"
        + (f", {len(kept)} already there" if kept else "")
        + ", sha256 verified"
    )


def fmt_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
