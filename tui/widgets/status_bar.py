"""The status bar: where the appliance runs, its API address, the home folder, counts.

The app owns one `StatusInfo` (a reactive); every screen's bar watches it, so
all screens agree and a screen opened later shows the current state at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.content import Content
from textual.widgets import Static

from mlbox.textsafe import visible

ApplianceState = Literal["starting", "embedded", "beside", "none", "failed"]


@dataclass(frozen=True)
class StatusInfo:
    appliance: ApplianceState = "none"
    api_url: str | None = None
    home: str = ""
    experiments: int | None = None
    runs: int | None = None
    running: int | None = None
    note: str = ""
    """Why the API is off, e.g. the port is taken."""


_STATE_TEXT: dict[str, tuple[str, str]] = {
    "starting": ("◌ starting appliance", "$text-warning"),
    "embedded": ("● appliance embedded", "$text-success"),
    "beside": ("● beside appliance", "$text-accent"),
    "none": ("○ no appliance", "$text-muted"),
    "failed": ("● appliance: API off", "$text-error"),
}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "status_info", self.show, init=True)

    def show(self, info: StatusInfo) -> None:
        self.update(render_info(info))


def render_info(info: StatusInfo) -> Content:
    """The bar's one line; theme variables colour it, so it follows the theme."""
    label, var = _STATE_TEXT[info.appliance]
    parts: list[str | Content | tuple[str, str]] = [(label, f"bold {var}")]
    if info.api_url:
        parts += [("  API ", "$text-muted"), visible(info.api_url)]
    if info.note:
        parts.append((visible(f"  {info.note}"), "$text-error"))
    parts += [("  home ", "$text-muted"), visible(info.home)]  # a path is shown as it is
    if info.runs is not None:
        counts = [_plural(info.experiments or 0, "experiment"), _plural(info.runs, "run")]
        if info.running:
            counts.append(f"{info.running:,} running")
        parts.append(("  " + " · ".join(counts), "$text-muted"))
    return Content.assemble(*parts)
