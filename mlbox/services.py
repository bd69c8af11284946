"""The services over one ``$MLBOX_HOME``, built once and handed to front ends.

Front ends (API, CLI, TUI) receive a `Services` and never open stores on
their own, so there is one place that decides how the stores are opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlbox.settings import Settings
from mlbox.store import ArtifactStore, Database, Home
from mlbox.tracking.service import TrackingService


@dataclass(frozen=True)
class Services:
    settings: Settings
    home: Home
    tracking: TrackingService

    @classmethod
    def open(cls, settings: Settings) -> Services:
        home = Home(settings.home).ensure()
        db = Database(home.db_path)
        return cls(
            settings=settings,
            home=home,
            tracking=TrackingService(db, ArtifactStore(home.artifacts)),
        )
