"""``mlbox gc``: purge what was deleted past the retention period and the artifact objects
nothing references any more (`mlbox.gc`), while the appliance runs or not."""

from __future__ import annotations

import re

import click

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx
from mlbox.sizefmt import size

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 7 * 86_400.0}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a bare number of days, in seconds."""
    match = _AGE.fullmatch(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not an age such as 30d, 12h, 90m or 0", param_hint="--older-than"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "d"]


@click.command()
@click.option(
    "--older-than",
    default=None,
    metavar="AGE",
    help="Purge what was deleted at least this long ago (default: MLBOX_RETENTION_DAYS, 30d).",
)
@click.option("--dry-run", is_flag=True, help="Report what would go; remove nothing.")
@json_option
@pass_ctx
def gc(ctx: Context, older_than: str | None, dry_run: bool, as_json: bool) -> None:
    """Purge runs and experiments deleted longer ago than the retention period, then remove
    the artifact objects nothing references any more, and report the space freed.

    Safe while the appliance runs: running runs are never purged, and an object stored in
    the last hour, or again while gc runs, is never removed.
    """
    from mlbox.gc import collect

    age = ctx.settings.retention_days * 86_400.0 if older_than is None else parse_age(older_than)
    report = collect(ctx.services, older_than_s=age, dry_run=dry_run)
    if as_json:
        echo_json(report)
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} {len(report.purged_runs)} runs and {len(report.purged_experiments)} experiments"
        f" deleted more than {age / 86_400:g} days ago"
    )
    for why in report.kept:
        click.echo(f"kept: {why}")
    click.echo(
        f"{'would remove' if dry_run else 'removed'} {report.objects_removed} artifact objects,"
        f" {size(report.freed_bytes)} {'to free' if dry_run else 'freed'}"
        f" ({report.objects_referenced} referenced, {report.objects_kept_young} unreferenced but recent)"
    )
    if report.cache_folders_removed:
        click.echo(
            f"{'would remove' if dry_run else 'removed'} {report.cache_folders_removed} cached model folders"
            f" of deleted versions, {size(report.cache_bytes_freed)}"
        )
