"""The services over one ``$MLBOX_HOME``, built once and handed to front ends.

Front ends (API, CLI, TUI) receive a `Services` and never open stores on
their own, so there is one place that decides how the stores are opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlbox.features.service import FeatureStore
from mlbox.notebooks.service import NotebookService
from mlbox.registry.service import RegistryService
from mlbox.scheduler.service import SchedulerService
from mlbox.settings import Settings
from mlbox.store import ArtifactStore, Database, Home
from mlbox.sweeps.service import SweepService
from mlbox.tracking.service import TrackingService


@dataclass(frozen=True)
class Services:
    settings: Settings
    home: Home
    tracking: TrackingService
    registry: RegistryService
    scheduler: SchedulerService
    sweeps: SweepService
    notebooks: NotebookService
    features: FeatureStore

    @classmethod
    def open(cls, settings: Settings) -> Services:
        home = Home(settings.home).ensure()
        db = Database(home.db_path)
        artifacts = ArtifactStore(home.artifacts)
        tracking = TrackingService(db, artifacts)
        scheduler = SchedulerService(db, home, tracking, settings.scheduler)
        registry = RegistryService(db, artifacts, tracking, cache_dir=home.root / "cache" / "models")
        return cls(
            settings=settings,
            home=home,
            tracking=tracking,
            registry=registry,
            scheduler=scheduler,
            sweeps=SweepService(db, home, tracking, scheduler),
            notebooks=NotebookService(db, home, scheduler, settings.notebooks),
            features=FeatureStore(
                db,
                home,
                memory_limit=settings.features.memory_limit,
                threads=settings.features.threads,
                model_features=lambda: model_feature_refs(registry),
            ),
        )


def model_feature_refs(registry: RegistryService) -> list[tuple[str, Sequence[str]]]:
    """``(model ref, feature refs)`` of every registered version that takes feature views
    as inputs. The feature store asks this before deleting a view (it does not import the
    registry itself); registry and catalog share ``mlbox.db``, so it reads inside the
    delete's transaction."""
    return [
        (version.ref, list(version.manifest["features"]))
        for model in registry.list_models()
        for version in registry.list_versions(model.name)
        if version.manifest.get("features")
    ]
