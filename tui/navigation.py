"""The service screens the app navigates between, one per working service.

A service's screen is listed here once it works; nothing appears as a
placeholder. This is the TUI's one list of services (`mlbox.services`). Each
entry becomes an app mode, a key, a navigation-bar entry and a command-palette
command.

A section names its screen's class (``module:Class``) rather than importing
it: the TUI's start imports the first screen only, and the others (with what
they import: httpx, plotext, numpy...) when first shown — or sooner, in the
background once the first screen is painted (`preload`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlbox.tui.widgets.nav_bar import NavEntry

if TYPE_CHECKING:
    from mlbox.tui.screens.base import MlboxScreen


@dataclass(frozen=True)
class Section:
    mode: str
    service: str
    """The `mlbox.services.Services` field this screen shows."""
    title: str
    key: str
    screen: str
    """The screen's class, ``module:Class``, imported when first needed."""
    help: str

    @property
    def entry(self) -> NavEntry:
        return NavEntry(self.mode, self.title, self.key)

    def screen_class(self) -> type[MlboxScreen]:
        module, _, name = self.screen.partition(":")
        cls: type[MlboxScreen] = getattr(importlib.import_module(module), name)
        return cls

    def make_screen(self) -> MlboxScreen:
        """A new screen of this section (the app's mode factory)."""
        return self.screen_class()()


PRELOAD = ("mlbox.tui.screens.run_detail", "mlbox.tui.screens.compare")
"""Screens the sections open, imported by them when first opened (plotext and the curves)."""


def preload() -> None:
    """Import every section's screen and those they open (a thread's work once the first screen
    shows), so the first press of a section key or of enter on a run does not wait for imports."""
    for section in SECTIONS:
        section.screen_class()
    for module in PRELOAD:
        importlib.import_module(module)


SECTIONS: tuple[Section, ...] = (
    Section(
        "experiments",
        "tracking",
        "Experiments",
        "1",
        "mlbox.tui.screens.experiments:ExperimentsScreen",
        "Runs, their metrics and curves, comparisons",
    ),
    Section(
        "models",
        "registry",
        "Models",
        "2",
        "mlbox.tui.screens.models:ModelsScreen",
        "Registered models, versions, aliases; promote and roll back",
    ),
    Section(
        "serving",
        "serving",
        "Serving",
        "3",
        "mlbox.tui.screens.serving:ServingScreen",
        "Served models: requests/s, p50 and p99 latency, errors, queue depth",
    ),
    Section(
        "features",
        "features",
        "Features",
        "4",
        "mlbox.tui.screens.features:FeaturesScreen",
        "Entities, feature views, freshness, training sets",
    ),
    Section(
        "jobs",
        "scheduler",
        "Jobs",
        "5",
        "mlbox.tui.screens.jobs:JobsScreen",
        "The job queue, who holds which GPU, a job's live log",
    ),
    Section(
        "sweeps",
        "sweeps",
        "Sweeps",
        "6",
        "mlbox.tui.screens.sweeps:SweepsScreen",
        "Sweeps, their trials and curves, which were pruned",
    ),
    Section(
        "notebooks",
        "notebooks",
        "Notebooks",
        "7",
        "mlbox.tui.screens.notebooks:NotebooksScreen",
        "JupyterLab servers: URL, GPUs, idle time",
    ),
    Section(
        "monitor",
        "monitoring",
        "Monitor",
        "8",
        "mlbox.tui.screens.monitoring:MonitorScreen",
        "Drift per feature, performance over time, alerts, explanations",
    ),
    Section(
        "labeling",
        "labeling",
        "Labeling",
        "9",
        "mlbox.tui.screens.labeling:LabelingScreen",
        "Labeling projects, the labeling screen, agreement",
    ),
    Section(
        "pipelines",
        "pipelines",
        "Pipelines",
        "0",
        "mlbox.tui.screens.pipelines:PipelinesScreen",
        "Pipelines: the DAG with live step states, cache hits, retries",
    ),
)
