"""The services over one ``$MLBOX_HOME``, built once and handed to front ends.

Front ends (API, CLI, TUI) receive a `Services` and never open stores on
their own, so there is one place that decides how the stores are opened.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlbox.registry.service import RegistryService
from mlbox.settings import Settings
from mlbox.store import ArtifactStore, Database, Home
from mlbox.tracking.service import TrackingService


@dataclass(frozen=True)
class Services:
    settings: Settings
    home: Home
    tracking: TrackingService
    registry: RegistryService

    @classmethod
    def open(cls, settings: Settings) -> Services:
        home = Home(settings.home).ensure()
        db = Database(home.db_path)
        artifacts = ArtifactStore(home.artifacts)
        tracking = TrackingService(db, artifacts)
        return cls(
            settings=settings,
            home=home,
            tracking=tracking,
            registry=RegistryService(db, artifacts, tracking, cache_dir=home.root / "cache" / "models"),
        )
