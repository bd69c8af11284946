"""``mlbox pipelines``."""

from __future__ import annotations

import click


@click.group("pipelines")
def pipelines() -> None:
    """Pipelines: run, retry, backfill and schedule DAGs of steps."""
