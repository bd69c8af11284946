"""``mlbox doctor``, ``mlbox backup`` and ``mlbox restore``: looking after the home itself.

None of them opens the services: a doctor must work on a home too damaged to build them
from, a backup runs beside the appliance (it only reads), and a restore writes a home that
does not exist yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlbox.cli.context import Context, pass_ctx
from mlbox.sizefmt import size
from mlbox.textsafe import visible


@click.command()
@click.option("--repair", is_flag=True, help="Fix what can be fixed without losing data.")
@pass_ctx
def doctor(ctx: Context, repair: bool) -> None:
    """Check the home: database integrity, artifact hashes, rows naming missing objects,
    temporaries left by a crash, Parquet files that do not read.

    Exit status 0 when the home is healthy (or --repair fixed everything), 1 when
    problems remain. A repair never deletes data: damaged objects and unreadable
    Parquet files go to quarantine/ in the home; only dead writers' temporaries are removed.
    """
    from mlbox.doctor import run_doctor

    home = Path(ctx.settings.home)
    if not (home / "mlbox.db").exists():
        raise click.BadParameter(f"{home} is not an mlbox home (no mlbox.db)", param_hint="MLBOX_HOME")
    findings = run_doctor(home, repair=repair)
    left = 0
    for f in findings:
        line = f"{f.kind:<10} {visible(f.where)}: {visible(f.problem)}"
        if f.repaired:
            line += f"  [repaired: {f.repaired}]"
        elif f.fixable:
            line += "  [fixable: run mlbox doctor --repair]"
            left += 1
        else:
            line += f"  [cannot repair: {f.advice}]" if f.advice else "  [cannot repair]"
            left += 1
        click.echo(line)
    if not findings:
        click.echo(f"ok: {home} is healthy")
    else:
        fixed = len(findings) - left
        click.echo(f"{len(findings)} problem(s) found, {fixed} repaired, {left} left", err=True)
    sys.exit(1 if left else 0)


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@pass_ctx
def backup(ctx: Context, dest: Path) -> None:
    """Back up the home to DEST (a new or empty folder), also while the appliance runs.

    The database is copied as of one commit (SQLite's backup API), then artifact
    objects (verified by hash), Parquet tables and the other files. The API token is
    not copied: a restored home makes a new one.
    """
    from mlbox.store.backup import backup as take

    summary = take(Path(ctx.settings.home), dest)
    click.echo(f"backed up {summary.files} files ({size(summary.bytes)}) to {dest}")
    for skipped in summary.skipped:
        click.echo(f"left out: {visible(skipped)}", err=True)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@pass_ctx
def restore(ctx: Context, src: Path) -> None:
    """Restore the backup SRC into $MLBOX_HOME, which must be new or empty.

    Every file is checked against the backup's manifest before anything is written,
    and the home appears whole or not at all.
    """
    from mlbox.store.backup import restore as put_back

    home = Path(ctx.settings.home)
    summary = put_back(src, home)
    click.echo(f"restored {summary.files} files ({size(summary.bytes)}) into {home}")
