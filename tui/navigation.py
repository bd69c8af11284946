"""The service screens the app navigates between, one per working service.

A service's screen is listed here once it works; nothing appears as a
placeholder. This is the TUI's one list of services (`mlbox.services`). Each
entry becomes an app mode, a key, a navigation-bar entry and a command-palette
command.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.features import FeaturesScreen
from mlbox.tui.screens.jobs import JobsScreen
from mlbox.tui.screens.labeling import LabelingScreen
from mlbox.tui.screens.models import ModelsScreen
from mlbox.tui.screens.monitoring import MonitorScreen
from mlbox.tui.screens.notebooks import NotebooksScreen
from mlbox.tui.screens.pipelines import PipelinesScreen
from mlbox.tui.screens.serving import ServingScreen
from mlbox.tui.screens.sweeps import SweepsScreen
from mlbox.tui.widgets.nav_bar import NavEntry


@dataclass(frozen=True)
class Section:
    mode: str
    service: str
    """The `mlbox.services.Services` field this screen shows."""
    title: str
    key: str
    screen: type[MlboxScreen]
    help: str

    @property
    def entry(self) -> NavEntry:
        return NavEntry(self.mode, self.title, self.key)


SECTIONS: tuple[Section, ...] = (
    Section(
        "experiments",
        "tracking",
        "Experiments",
        "1",
        ExperimentsScreen,
        "Runs, their metrics and curves, comparisons",
    ),
    Section(
        "models",
        "registry",
        "Models",
        "2",
        ModelsScreen,
        "Registered models, versions, aliases; promote and roll back",
    ),
    Section(
        "serving",
        "serving",
        "Serving",
        "3",
        ServingScreen,
        "Served models: requests/s, p50 and p99 latency, errors, queue depth",
    ),
    Section(
        "features",
        "features",
        "Features",
        "4",
        FeaturesScreen,
        "Entities, feature views, freshness, training sets",
    ),
    Section(
        "jobs", "scheduler", "Jobs", "5", JobsScreen, "The job queue, who holds which GPU, a job's live log"
    ),
    Section(
        "sweeps", "sweeps", "Sweeps", "6", SweepsScreen, "Sweeps, their trials and curves, which were pruned"
    ),
    Section(
        "notebooks",
        "notebooks",
        "Notebooks",
        "7",
        NotebooksScreen,
        "JupyterLab servers: URL, GPUs, idle time",
    ),
    Section(
        "monitor",
        "monitoring",
        "Monitor",
        "8",
        MonitorScreen,
        "Drift per feature, performance over time, alerts, explanations",
    ),
    Section(
        "labeling",
        "labeling",
        "Labeling",
        "9",
        LabelingScreen,
        "Labeling projects, the labeling screen, agreement",
    ),
    Section(
        "pipelines",
        "pipelines",
        "Pipelines",
        "0",
        PipelinesScreen,
        "Pipelines: the DAG with live step states, cache hits, retries",
    ),
)
