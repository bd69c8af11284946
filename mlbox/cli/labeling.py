"""``mlbox label``."""

from __future__ import annotations

import click


@click.group("label")
def label() -> None:
    """Labeling projects: import tasks, label them, export the dataset."""
