"""``mlbox experiments`` and ``mlbox runs``: the tracking service from the shell."""

from __future__ import annotations

import os

import click

from mlbox.cli.context import Context, echo_json, fmt, json_option, pass_ctx, print_table, when


@click.group()
def experiments() -> None:
    """Experiments: named groups of runs."""


@experiments.command("ls")
@json_option
@pass_ctx
def experiments_ls(ctx: Context, as_json: bool) -> None:
    """List experiments with their run counts."""
    exps = ctx.services.tracking.list_experiments()
    if as_json:
        echo_json(exps)
        return
    print_table(
        ["ID", "NAME", "RUNS", "CREATED"],
        [[e.id, e.name, e.run_count, when(e.created_at)] for e in exps],
        empty="no experiments yet; a run creates its experiment: mlbox.start_run(experiment=NAME)",
        right={"ID", "RUNS"},
    )


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
@json_option
@pass_ctx
def runs_ls(
    ctx: Context,
    filter_: str,
    order_by: tuple[str, ...],
    experiment: tuple[str, ...],
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Search runs, newest first unless ordered otherwise."""
    page = ctx.services.tracking.search_runs(
        filter_, order_by=list(order_by), experiments=list(experiment), limit=limit, offset=offset
    )
    if as_json:
        echo_json(page)
        return
    rows = [
        [
            r.id,
            r.experiment[:16],
            r.name[:22],
            r.status,
            when(r.start_time),
            "  ".join(f"{k}={fmt(v)}" for k, v in list(r.metrics.items())[:4]),
        ]
        for r in page.runs
    ]
    searched = bool(filter_ or experiment)
    print_table(
        ["ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "METRICS"],
        rows,
        empty="no runs match" if searched else "no runs yet; log one with mlbox.start_run()",
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
@click.option("--output", "-o", required=True, help="Parquet file to write.")
@pass_ctx
def runs_export(ctx: Context, run_id: str, output: str) -> None:
    """Export a run's metric history (key, step, timestamp, value) to Parquet."""
    if os.path.isdir(output):
        raise click.BadParameter(f"{output!r} is a folder; give a file name", param_hint="--output")
    n = ctx.services.tracking.export_metrics(_run_id(run_id), output)
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
