"""Asking before a command deletes something.

``--yes`` answers for the user. Without it a terminal is asked; anything else (a script, a
pipe, cron) is refused with exit code 2 and a line naming ``--yes``, so nothing is deleted by
a command that could not ask.
"""

from __future__ import annotations

import sys

import click

yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def confirm(question: str, yes: bool) -> None:
    """Return when the deletion may go ahead; exit 2 without a terminal, 1 when the answer is no."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question.rstrip('?')}: not confirmed (stdin is not a terminal); pass --yes")
    if not click.confirm(question, default=False):
        click.echo("nothing deleted", err=True)
        sys.exit(1)
