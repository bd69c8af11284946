"""The ``mlbox`` group, its top-level commands and the entry point that maps every error.

Every failure is one line on stderr with exit code 2 (bad input, unknown ids,
usage mistakes); an unexpected one is a single line too, with exit code 1 and
the traceback only when ``MLBOX_DEBUG`` is set.
"""

from __future__ import annotations

import os
import sys

import click

from mlbox import __version__
from mlbox.cli.admin import backup, doctor, restore
from mlbox.cli.context import Context, pass_ctx
from mlbox.cli.features import features
from mlbox.cli.gc import gc
from mlbox.cli.jobs import gpus, jobs
from mlbox.cli.labeling import label
from mlbox.cli.models import models
from mlbox.cli.monitoring import feedback, monitor
from mlbox.cli.notebooks import notebook
from mlbox.cli.pipelines import lineage, pipelines
from mlbox.cli.predict import predict
from mlbox.cli.runs import experiments, runs
from mlbox.cli.sweeps import sweep, sweeps
from mlbox.store.errors import MlboxError, storage_full


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
        from mlbox.appliance import Appliance
        from mlbox.tui.app import run_tui

        beside = ctx.services.home.running_appliance()
        appliance = None if beside is not None else Appliance(ctx.services)
        run_tui(ctx.services, appliance=appliance, beside_url=beside.url if beside else None)


@cli.command()
@click.option("--port", type=int, default=None, help="HTTP port (default $MLBOX_PORT or 5151).")
@click.option(
    "--host", default=None, help="Address the HTTP API listens on (default $MLBOX_HOST or 127.0.0.1)."
)
@pass_ctx
def up(ctx: Context, port: int | None, host: str | None) -> None:
    """Run the headless appliance: HTTP API (127.0.0.1 unless --host) and background loops.

    One home has one appliance: a second `mlbox up` on the same home exits 2 naming the
    one that runs (pid, address).
    """
    from dataclasses import replace

    from mlbox.appliance import Appliance, exposure_warning

    if port is not None:
        if not 0 <= port < 65536:
            raise click.BadParameter("must be between 0 and 65535", param_hint="--port")
        ctx.settings = replace(ctx.settings, port=port)
    if host is not None:
        if not host.strip():
            raise click.BadParameter("must name an address, such as 127.0.0.1", param_hint="--host")
        ctx.settings = replace(ctx.settings, host=host.strip())
    appliance = Appliance(ctx.services)

    def ready(url: str) -> None:
        click.echo(f"mlbox {__version__} up at {url}  (home {ctx.settings.home})", err=True)
        click.echo(f"token: {ctx.services.home.token_path}", err=True)
        warning = exposure_warning(ctx.settings.host, ctx.settings.serving.require_token)
        if warning:
            click.echo(warning, err=True)

    appliance.serve_forever(on_ready=ready)


@cli.command()
@click.option("--quick", is_flag=True, help="Fewer epochs and settings (a smoke run).")
@pass_ctx
def demo(ctx: Context, quick: bool) -> None:
    """Run the whole lifecycle on bundled data (scikit-learn's digits)."""
    from mlbox.demo import run_demo

    run_demo(ctx.services, quick=quick)


cli.add_command(doctor)
cli.add_command(backup)
cli.add_command(restore)
cli.add_command(gc)

COMMANDS: tuple[tuple[str, tuple[click.Command, ...]], ...] = (
    ("tracking", (experiments, runs)),
    ("registry", (models,)),
    ("serving", (predict,)),
    ("features", (features,)),
    ("scheduler", (jobs, gpus)),
    ("sweeps", (sweep, sweeps)),
    ("notebooks", (notebook,)),
    ("monitoring", (monitor, feedback)),
    ("labeling", (label,)),
    ("pipelines", (pipelines, lineage)),
)
"""The CLI's one list of services (`mlbox.services`): each service's command groups."""

for _service, _commands in COMMANDS:
    for _command in _commands:
        cli.add_command(_command)


def one_line(message: str) -> str:
    """A message for one stderr line (a YAML or SQL error quotes its source over several)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error becomes one line on stderr."""
    try:
        # Without standalone mode click *returns* the code of `ctx.exit(code)` instead of raising
        rc = cli.main(args=argv, prog_name="mlbox", standalone_mode=False)
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
        click.echo(f"mlbox: error: {one_line(exc.format_message())}", err=True)
        sys.exit(2)
    except MlboxError as exc:
        click.echo(f"mlbox: error: {one_line(exc.message)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        full = storage_full(exc)  # a write on a full disk: say so, not "internal error"
        if full is not None:
            click.echo(f"mlbox: error: {full.message}", err=True)
            sys.exit(2)
        if isinstance(exc, OSError):  # a path the user gave cannot be written or read
            click.echo(f"mlbox: error: {exc}", err=True)
            sys.exit(2)
        if os.environ.get("MLBOX_DEBUG"):
            raise
        click.echo(
            f"mlbox: internal error: {type(exc).__name__}: {exc} (set MLBOX_DEBUG=1 for details)", err=True
        )
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) and not isinstance(rc, bool) else 0)
