"""What every ``mlbox`` command shares: the lazily opened services and how values print.

Commands receive a `Context` (settings read once at the entry point, services
opened on first use, so ``mlbox --version`` opens nothing) and print through
the helpers here, so timestamps and numbers read the same in every listing
(`when` is `mlbox.timefmt.when`, the spelling the TUI's detail panes share).
"""

from __future__ import annotations

from typing import Any

import click
import msgspec

from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.timefmt import when as when


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

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def echo_json(data: Any) -> None:
    click.echo(msgspec.json.encode(data).decode())


def fmt(v: float | None) -> str:
    return "nan" if v is None else f"{v:.6g}"
