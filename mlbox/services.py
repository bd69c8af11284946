"""The services over one ``$MLBOX_HOME``, built once and handed to front ends.

Front ends (API, CLI, TUI) receive a `Services` and never open stores on
their own, so there is one place that decides how the stores are opened.

Each service is one field of `Services`, declared with `service(...)`: how it
is built from the stores and the services declared above it, and which of the
appliance's loops reconciles it. The appliance reads these declarations; the
API (`mlbox.api.app.MOUNTS`), the CLI (`mlbox.cli.root.COMMANDS`) and the TUI
(`mlbox.tui.navigation.SECTIONS`) each keep one list naming the service. The
recipe is ``docs/adding-a-service.md``; ``tests/test_service_seam.py`` fails
when a service is missing from any of them.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlbox.features.service import FeatureStore
from mlbox.labeling.service import LabelingService
from mlbox.monitoring.service import MonitoringService
from mlbox.notebooks.service import NotebookService
from mlbox.pipelines.service import PipelineService
from mlbox.registry.service import RegistryService
from mlbox.scheduler.processes import process_start
from mlbox.scheduler.service import SchedulerService
from mlbox.serving.leases import LeasedGpus
from mlbox.serving.predlog import PredictionLog
from mlbox.serving.service import ServingService
from mlbox.settings import Settings
from mlbox.store import ArtifactStore, Database, Home, tempfiles
from mlbox.sweeps.schemas import LIVE_SWEEP_STATES
from mlbox.sweeps.service import SweepService
from mlbox.tracking.service import TrackingService

log = logging.getLogger("mlbox.services")

Loop = Literal["housekeeping", "jobs"]
"""The appliance's two loops: ``housekeeping`` every ``MLBOX_REAP_EVERY_S``; ``jobs`` every
scheduler tick, woken at once by a submit, cancel or retry in this process."""

Changes = dict[str, list[int]]
"""What one reconcile pass changed, by kind (``{"crashed": [3]}``); tests assert on it."""


@dataclass(frozen=True)
class Stores:
    """What every service is built from: the settings and the stores of one home."""

    settings: Settings
    home: Home
    db: Database
    artifacts: ArtifactStore


Built = Mapping[str, Any]
"""The services built so far, by field name (a builder takes what it needs from those above it)."""


@dataclass(frozen=True)
class ServiceSpec:
    build: Callable[[Stores, Built], Any]
    loop: Loop | None
    """The loop that calls `reconcile` on every pass; None for a service with no background work."""
    reconcile: Callable[[Any, Services, float | None], Changes]
    """One pass over the service's state (default: its ``reconcile_once(now)``)."""
    start: Callable[[Any], None] | None
    """Called by the appliance before its loops start (threads a service runs on its own)."""
    stop: Callable[[Any], None] | None
    """Called by the appliance after its loops and HTTP stopped (drain, flush)."""


def _reconcile_once(service: Any, services: Services, now: float | None) -> Changes:
    result: Changes = service.reconcile_once(now)
    return result


def service(
    build: Callable[[Stores, Built], Any],
    *,
    loop: Loop | None = None,
    reconcile: Callable[[Any, Services, float | None], Changes] = _reconcile_once,
    start: Callable[[Any], None] | None = None,
    stop: Callable[[Any], None] | None = None,
) -> Any:
    """Declare a field of `Services` as a service (see the module docstring)."""
    return dataclasses.field(metadata={"service": ServiceSpec(build, loop, reconcile, start, stop)})


# -- how each service is built (in declaration order: a builder sees those above it) -------------


def _tracking(stores: Stores, built: Built) -> TrackingService:
    return TrackingService(stores.db, stores.artifacts)


def _reap_crashed(tracking: TrackingService, services: Services, now: float | None) -> Changes:
    """Runs whose process died without ending them become ``crashed``."""
    crashed = tracking.reap_crashed(
        now=time.time() if now is None else now,
        this_host=socket.gethostname(),
        process_start=process_start,
        crash_after_s=services.settings.crash_after_s,
    )
    if crashed:
        log.info("runs marked crashed: %s", crashed)
    return {"crashed": crashed}


def _remove_artifact_orphans(tracking: TrackingService) -> None:
    """At appliance start: temporary files of artifact writers killed midway (a ``log_artifact``
    cut short by ``kill -9`` would keep its bytes forever); liveness as the scheduler checks it."""
    removed = tracking.artifacts.remove_orphans(process_start)
    if removed:
        log.info("removed %d temporary artifact files left by dead writers", len(removed))


def _scheduler(stores: Stores, built: Built) -> SchedulerService:
    return SchedulerService(stores.db, stores.home, built["tracking"], stores.settings.scheduler)


def _remove_job_orphans(scheduler: SchedulerService) -> None:
    """At appliance start: temporaries under the jobs' folders (an exit record, a checkpoint)
    whose writer was killed midway, and the tables' Parquet temporaries."""
    removed = tempfiles.remove_orphans_below(scheduler.jobs_folder, process_start)
    removed += scheduler.home.remove_orphans(process_start)
    if removed:
        log.info("removed %d temporary files left by dead job and table writers", len(removed))


def _registry(stores: Stores, built: Built) -> RegistryService:
    cache = stores.home.root / "cache" / "models"
    return RegistryService(stores.db, stores.artifacts, built["tracking"], cache_dir=cache)


def _remove_cache_orphans(registry: RegistryService) -> None:
    """At appliance start: model folders a killed loader or registration left half built."""
    removed = registry.cache.remove_orphans(process_start)
    if removed:
        log.info("removed %d model staging folders left by dead writers", len(removed))


def _sweeps(stores: Stores, built: Built) -> SweepService:
    sweeps = SweepService(stores.db, stores.home, built["tracking"], built["scheduler"])
    built["tracking"].run_dependents.add("sweeps", lambda ids: _live_trials_of(sweeps, ids))
    return sweeps


def _live_trials_of(sweeps: SweepService, run_ids: Sequence[int]) -> list[str]:
    """Trials of sweeps still running that log to these runs: their sampler reads the runs."""
    wanted = set(run_ids)
    return [
        f"trial {t.number} of running sweep {s.id} logs to run {t.run_id}"
        for s in sweeps.list_sweeps(states=list(LIVE_SWEEP_STATES), limit=1 << 62)
        for t in sweeps.trials(s.id)
        if t.run_id in wanted
    ]


def _notebooks(stores: Stores, built: Built) -> NotebookService:
    return NotebookService(stores.db, stores.home, built["scheduler"], stores.settings.notebooks)


def _features(stores: Stores, built: Built) -> FeatureStore:
    registry: RegistryService = built["registry"]
    store = FeatureStore(
        stores.db,
        stores.home,
        memory_limit=stores.settings.features.memory_limit,
        threads=stores.settings.features.threads,
        model_features=lambda: model_feature_refs(registry),
    )
    built["tracking"].run_dependents.add("features", lambda ids: _training_sets_of(store, ids))
    return store


def _training_sets_of(features: FeatureStore, run_ids: Sequence[int]) -> list[str]:
    """Training-set records that name one of these runs: deleting the run would break their lineage."""
    wanted = set(run_ids)
    return [
        f"training set {t.id} was built for run {t.run_id}"
        for t in features.training_sets(limit=1 << 62)
        if t.run_id in wanted
    ]


def _serving(stores: Stores, built: Built) -> ServingService:
    """Nothing runs until `ServingService.start` (the appliance calls it): a CLI process that opens
    `Services` builds it for free."""
    settings = stores.settings.serving
    features: FeatureStore = built["features"]
    serving = ServingService(
        built["registry"],
        settings,
        PredictionLog(
            stores.home.tables / "predictions",
            flush_s=settings.log_flush_s,
            max_buffer=settings.log_max_buffer,
        ),
        features=lambda rows, refs: features.get_online_features(rows, refs, full_feature_names=True),
        placer=LeasedGpus(built["scheduler"]),
    )
    built["registry"].version_dependents.add(
        "serving",
        lambda keys: [f"{n}/{v} is served (pinned)" for n, v in keys if f"{n}/{v}" in serving.served()],
    )
    return serving


def _monitoring(stores: Stores, built: Built) -> MonitoringService:
    """Labels are checked against the log: flushing the serving log first makes a prediction
    answered a moment ago known to the feedback route."""
    serving: ServingService = built["serving"]
    features: FeatureStore = built["features"]
    predlog = serving.predlog
    return MonitoringService(
        stores.db,
        stores.home,
        stores.settings.monitoring,
        registry=built["registry"],
        flush_log=None if predlog is None else predlog.flush,
        join_keys=features.join_keys,
        online_features=lambda rows, refs: features.get_online_features(rows, refs),
    )


def _labeling(stores: Stores, built: Built) -> LabelingService:
    labeling = LabelingService(
        stores.db,
        stores.home,
        stores.settings.labeling,
        tracking=built["tracking"],
        registry=built["registry"],
        scheduler=built["scheduler"],
    )
    built["tracking"].run_dependents.add("labeling", labeling.exports_recorded_in)
    return labeling


def _pipelines(stores: Stores, built: Built) -> PipelineService:
    return PipelineService(
        stores.db,
        stores.home,
        stores.settings.pipelines,
        artifacts=stores.artifacts,
        scheduler=built["scheduler"],
        registry=built["registry"],
        predictions=stores.home.tables / "predictions",
        tracking=built["tracking"],
        features=built["features"],
    )


@dataclass(frozen=True)
class Services:
    settings: Settings
    home: Home
    tracking: TrackingService = service(
        _tracking, loop="housekeeping", reconcile=_reap_crashed, start=_remove_artifact_orphans
    )
    scheduler: SchedulerService = service(_scheduler, loop="jobs", start=_remove_job_orphans)
    registry: RegistryService = service(_registry, start=_remove_cache_orphans)
    sweeps: SweepService = service(_sweeps, loop="jobs")
    notebooks: NotebookService = service(_notebooks, loop="jobs")
    features: FeatureStore = service(_features)
    serving: ServingService = service(_serving, start=ServingService.start, stop=ServingService.close)
    monitoring: MonitoringService = service(_monitoring, loop="housekeeping")
    labeling: LabelingService = service(_labeling)
    pipelines: PipelineService = service(_pipelines, loop="jobs", stop=PipelineService.close)

    @classmethod
    def open(cls, settings: Settings) -> Services:
        home = Home(settings.home).ensure()
        stores = Stores(settings, home, Database(home.db_path), ArtifactStore(home.artifacts))
        built: dict[str, Any] = {}
        for name, spec in specs():
            built[name] = spec.build(stores, built)
        return cls(settings=settings, home=home, **built)

    def declared(self) -> Iterator[tuple[str, ServiceSpec, Any]]:
        """``(name, declaration, service)`` in declaration order: the order the loops run them in."""
        for name, spec in specs():
            yield name, spec, getattr(self, name)

    def reconcile(self, loop: Loop, now: float | None = None) -> Changes:
        """One pass of ``loop``: every service it reconciles, in declaration order."""
        changed: Changes = {}
        for _name, spec, svc in self.declared():
            if spec.loop == loop:
                changed.update(spec.reconcile(svc, self, now))
        return changed


def specs() -> Iterator[tuple[str, ServiceSpec]]:
    """The declared services of `Services`, ``(field name, declaration)`` in order."""
    for f in dataclasses.fields(Services):
        spec = f.metadata.get("service")
        if spec is not None:
            yield f.name, spec


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
