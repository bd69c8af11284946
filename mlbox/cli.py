"""The ``mlbox`` command. Thin: parse, call one service, print.

Every failure is one line on stderr with exit code 2 (bad input, unknown ids,
usage mistakes); an unexpected one is a single line too, with exit code 1 and
the traceback only when ``MLBOX_DEBUG`` is set.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any

import click
import msgspec

from mlbox import __version__
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import MlboxError


class Context:
    """Settings read once; services opened on first use (``--version`` opens nothing)."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = Services.open(self.settings)
        return self._services


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def _echo_json(data: Any) -> None:
    click.echo(msgspec.json.encode(data).decode())


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.6g}"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mlbox")
@click.pass_context
def cli(click_ctx: click.Context) -> None:
    """mlbox: the machine-learning platform in one box.

    With no command, opens the terminal UI (with the appliance embedded, or
    beside a running `mlbox up`).
    """
    if click_ctx.invoked_subcommand is None:
        ctx = click_ctx.ensure_object(Context)
        # The CLI is the entry point, so it may start the TUI; the TUI itself
        # never imports the appliance or the API (import-linter contracts).
        from mlbox.appliance import Appliance, running_appliance
        from mlbox.tui.app import run_tui

        beside = running_appliance(ctx.settings)
        appliance = None if beside is not None else Appliance(ctx.services)
        run_tui(ctx.services, appliance=appliance, beside_url=beside.url if beside else None)


@cli.command()
@click.option("--port", type=int, default=None, help="HTTP port (default $MLBOX_PORT or 5151).")
@pass_ctx
def up(ctx: Context, port: int | None) -> None:
    """Run the headless appliance: HTTP API on 127.0.0.1 and background loops."""
    from dataclasses import replace

    from mlbox.appliance import Appliance, running_appliance

    if port is not None:
        if not 0 <= port < 65536:
            raise click.BadParameter("must be between 0 and 65535", param_hint="--port")
        ctx.settings = replace(ctx.settings, port=port)
    other = running_appliance(ctx.settings)
    if other is not None:
        raise MlboxError(f"an appliance already serves {ctx.settings.home} at {other.url} (pid {other.pid})")
    appliance = Appliance(ctx.services)

    def ready(url: str) -> None:
        click.echo(f"mlbox {__version__} up at {url}  (home {ctx.settings.home})", err=True)
        click.echo(f"token: {ctx.services.home.token_path}", err=True)

    appliance.serve_forever(on_ready=ready)


@cli.command()
@click.option("--quick", is_flag=True, help="Fewer epochs and settings (a smoke run).")
@pass_ctx
def demo(ctx: Context, quick: bool) -> None:
    """Run the whole lifecycle on bundled data (scikit-learn's digits)."""
    from mlbox.demo import run_demo

    run_demo(ctx.services, quick=quick)


@cli.group()
def experiments() -> None:
    """Experiments: named groups of runs."""


@experiments.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def experiments_ls(ctx: Context, as_json: bool) -> None:
    """List experiments with their run counts."""
    exps = ctx.services.tracking.list_experiments()
    if as_json:
        _echo_json(exps)
        return
    for e in exps:
        click.echo(f"{e.id:>4}  {e.name:<30} {e.run_count:>6} runs  {_when(e.created_at)}")


@cli.group()
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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
        _echo_json(page)
        return
    click.echo(f"{'ID':>5}  {'EXPERIMENT':<16} {'NAME':<22} {'STATUS':<9} {'STARTED':<19}  METRICS")
    for r in page.runs:
        metrics = "  ".join(f"{k}={_fmt(v)}" for k, v in list(r.metrics.items())[:4])
        click.echo(
            f"{r.id:>5}  {r.experiment[:16]:<16} {r.name[:22]:<22} {r.status:<9} "
            f"{_when(r.start_time):<19}  {metrics}"
        )
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def runs_show(ctx: Context, run_id: str, as_json: bool) -> None:
    """Show a run: attributes, params, tags, metrics, artifacts, datasets."""
    d = ctx.services.tracking.run_detail(_run_id(run_id))
    if as_json:
        _echo_json(d)
        return
    r = d.run
    end = _when(r.end_time)
    click.echo(f"run {r.id}  {r.name}  [{r.status}]  experiment {r.experiment}")
    click.echo(f"  started {_when(r.start_time)}  ended {end}  host {r.host} pid {r.pid}")
    if r.git_sha:
        click.echo(f"  git {r.git_sha[:12]}{' (dirty)' if r.git_dirty else ''}")
    sections: list[tuple[str, list[str]]] = [
        ("params", [f"{k} = {v}" for k, v in r.params.items()]),
        ("tags", [f"{k} = {v}" for k, v in r.tags.items()]),
        ("metrics", [f"{m.key} = {_fmt(m.last)}  (step {m.step}, {m.count} points)" for m in d.metrics]),
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def runs_compare(ctx: Context, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Params and latest metrics of two or more runs side by side."""
    cmp = ctx.services.tracking.compare([_run_id(r) for r in run_ids])
    if as_json:
        _echo_json(cmp)
        return
    width = max([len(k) for k in (*cmp.params, *cmp.metrics)] + [8])
    click.echo(f"{'':<{width}}  " + "  ".join(f"{'run ' + str(i):>12}" for i in cmp.run_ids))
    for k, vals in cmp.params.items():
        click.echo(f"{k:<{width}}  " + "  ".join(f"{(v or '-')[:12]:>12}" for v in vals))
    for k, mvals in cmp.metrics.items():
        click.echo(f"{k:<{width}}  " + "  ".join(f"{_fmt(v):>12}" for v in mvals))


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


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error becomes one line on stderr."""
    try:
        cli.main(args=argv, prog_name="mlbox", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # `mlbox runs` alone asks what the group can do: help, not an error.
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("mlbox: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"mlbox: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except MlboxError as exc:
        click.echo(f"mlbox: error: {exc.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:  # a path the user gave cannot be written or read
        click.echo(f"mlbox: error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("MLBOX_DEBUG"):
            raise
        click.echo(
            f"mlbox: internal error: {type(exc).__name__}: {exc} (set MLBOX_DEBUG=1 for details)", err=True
        )
        sys.exit(1)
    sys.exit(0)


__all__ = ["cli", "main"]
