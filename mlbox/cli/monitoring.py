"""``mlbox monitor``."""

from __future__ import annotations

import click


@click.group("monitor")
def monitor() -> None:
    """Monitors of served models: drift, data quality, performance, alerts."""
