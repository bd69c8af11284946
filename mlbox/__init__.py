"""mlbox: the machine-learning platform in one box.

``import mlbox`` gives the tracking client with the names an MLflow user knows::

    import mlbox

    with mlbox.start_run(experiment="digits"):
        mlbox.log_params({"lr": 0.01})
        for step in range(100):
            mlbox.log_metric("loss", 1 / (step + 1), step=step)

Models go to the registry the same way::

    with mlbox.start_run():
        ...
        mlbox.log_model(model, example_input=x[:5])   # the run's ``model/`` artifact
    mlbox.register_model("digits", run_id=run.id, example_input=x[:5])
    model = mlbox.load_model("digits@champion")

Importing stays light: torch, sklearn, duckdb, numpy and the UI load only when
used (the registry is imported inside the functions that need it).
"""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox import checkpoint as checkpoint
from mlbox.pipelines.define import pipeline as pipeline
from mlbox.pipelines.define import step as step
from mlbox.scheduler.client import submit as submit
from mlbox.store.errors import Conflict, IntegrityError, InvalidInput, MlboxError, NotFound
from mlbox.sweeps.params import trial_params
from mlbox.tracking import client as _client
from mlbox.tracking.client import ActiveRun, Client, set_home
from mlbox.tracking.schemas import ArtifactInfo, DatasetInfo, Run
from mlbox.tracking.service import TrackingService

if TYPE_CHECKING:
    from mlbox.features.service import FeatureStore
    from mlbox.registry.loaded import LoadedModel
    from mlbox.registry.schemas import ModelVersion
    from mlbox.registry.service import RegistryService
    from mlbox.registry.signature import SchemaMismatch
    from mlbox.services import Services

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "Client",
    "Conflict",
    "IntegrityError",
    "InvalidInput",
    "MlboxError",
    "NotFound",
    "SchemaMismatch",
    "__version__",
    "active_run",
    "delete_run",
    "end_run",
    "feature_store",
    "flush",
    "load_model",
    "log_artifact",
    "log_dataset",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "pipeline",
    "register_model",
    "restore_run",
    "set_experiment",
    "set_home",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "trial_params",
]


def _c() -> Client:
    return _client._default or _client.default_client()


def set_experiment(name: str) -> None:
    """Runs started after this call go to experiment ``name`` (created on first use)."""
    _c().set_experiment(name)


def start_run(
    run_name: str | None = None,
    *,
    experiment: str | None = None,
    tags: Mapping[str, object] | None = None,
    run_id: int | None = None,
    log_code: bool = True,
    log_environment: bool = True,
) -> ActiveRun:
    """Start a run; use it as ``with mlbox.start_run(): ...``.

    Records the code version (git sha, dirty flag, the diff as an artifact) and
    the environment (Python, packages, host, CPUs, GPUs) unless told not to.
    """
    return _c().start_run(
        run_name,
        experiment=experiment,
        tags=tags,
        run_id=run_id,
        log_code=log_code,
        log_environment=log_environment,
    )


def active_run() -> ActiveRun | None:
    return _c().active_run()


def _logging_run() -> ActiveRun | None:
    """The run the log calls write to: the active one or, inside a job (``MLBOX_RUN_ID``), the
    job's run, attached as `log_metric` attaches it. `log_model` and `register_model` use it, so
    a job (a pipeline's job step) logs and registers a model without a `start_run`."""
    client = _c()
    if client.active_run() is None and os.environ.get("MLBOX_RUN_ID"):
        return client._require_active()
    return client.active_run()


def end_run(status: str = "finished") -> Run | None:
    return _c().end_run(status)


def flush() -> None:
    """Block until every metric logged so far is durable."""
    _c().flush()


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Log one point; without ``step`` the series' next step (0, 1, 2, …) is used.

    Returns at once: a background writer commits points in batches. NaN and
    ±inf are stored as given (a diverging loss is worth seeing).
    """
    _c().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _c().log_metrics(metrics, step)


def log_param(key: str, value: object) -> None:
    """Params are write-once per run: logging another value raises `Conflict`."""
    _c().log_param(key, value)


def log_params(params: Mapping[str, object]) -> None:
    _c().log_params(params)


def set_tag(key: str, value: object) -> None:
    _c().set_tag(key, value)


def set_tags(tags: Mapping[str, object]) -> None:
    _c().set_tags(tags)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Store a file or a whole folder with the active run (content-addressed, verified)."""
    return _c().log_artifact(local_path, artifact_path)


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    return _c().log_text(text, artifact_file)


def log_dataset(
    data: Any, name: str | None = None, *, context: str = "training", source: str | None = None
) -> DatasetInfo:
    """Record the data version (sha256 of its content) of a path, frame or array."""
    return _c().log_dataset(data, name, context=context, source=source)


def log_model(
    model: Any,
    artifact_path: str = "model",
    *,
    example_input: Any = None,
    flavor: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[ArtifactInfo]:
    """Save ``model`` with its flavor and log the folder as the active run's ``artifact_path``.

    The logged folder carries its manifest, so ``mlbox models register NAME
    --run ID`` (or `register_model`) can register it later without loading
    the model again. With ``example_input`` the saved model is run once on it
    and the signature inferred (inputs and outputs) is logged beside it, so
    the version registered from the folder has it (serving checks requests
    against it and lists it in its metadata). ``options`` reach the flavor
    (``{"form": "state_dict", "class": "pkg.module:build", "init": {...}}``
    for a torch module).
    """
    if _logging_run() is None:
        raise Conflict("no active run: call mlbox.start_run() first", field="run")
    from mlbox.registry.flavors import save_model
    from mlbox.registry.staging import logged_signature

    with tempfile.TemporaryDirectory(prefix="mlbox-model-") as tmp:
        folder = Path(tmp) / "model"
        manifest = save_model(model, folder, flavor=flavor, example_input=example_input, options=options)
        if example_input is not None and manifest["flavor"] != "composed":
            logged_signature(folder, manifest, example_input)
        return log_artifact(folder, artifact_path)


_registries: weakref.WeakKeyDictionary[Client, RegistryService] = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()
_feature_stores: weakref.WeakKeyDictionary[Client, FeatureStore] = weakref.WeakKeyDictionary()


def _registry() -> RegistryService:
    """The registry over the default client's home, built as `mlbox.services.Services.open` builds it."""
    from mlbox.registry.service import RegistryService
    from mlbox.store import Home

    client = _c()
    with _registries_lock:
        registry = _registries.get(client)
        if registry is None:
            t = client.tracking
            cache = Home(client.settings.home).root / "cache" / "models"
            registry = RegistryService(t.db, t.artifacts, t, cache_dir=cache)
            _registries[client] = registry
        return registry


_services_of: weakref.WeakKeyDictionary[Client, Services] = weakref.WeakKeyDictionary()


def _services() -> Services:
    """Every service over the default client's home, built as the CLI builds them (on first use:
    it imports them all). Deleting needs them all: each registers what still needs a run."""
    from mlbox.services import Services

    client = _c()
    if not isinstance(client.tracking, TrackingService):
        raise InvalidInput(
            "a job on a Ray node logs its own run over HTTP: delete runs with the CLI or the API",
            field="run_id",
        )
    with _registries_lock:
        services = _services_of.get(client)
        if services is None:
            services = Services.open(client.settings)
            _services_of[client] = services
        return services


def delete_run(run_id: int) -> Run:
    """Delete a run (restorable with `restore_run` until ``mlbox gc`` purges it).

    The same refusals as ``mlbox runs delete`` and the API: `Conflict` naming what still
    needs the run (a registered model's source run, a sweep's live trial, a training-set
    record), or the run this process is logging to (end it first). Deleting a deleted run
    changes nothing.
    """
    active = active_run()
    if active is not None and active.id == run_id:
        raise Conflict(f"run {run_id} is the active run: end it first (mlbox.end_run())", field="run_id")
    return _services().tracking.delete_run(run_id)


def restore_run(run_id: int) -> Run:
    """Bring a deleted run back; refused while its experiment is deleted (restore that)."""
    return _services().tracking.restore_run(run_id)


def feature_store() -> FeatureStore:
    """The feature store over the default client's home (as `mlbox.services.Services.open` builds it)::

    store = mlbox.feature_store()
    store.apply([entity, view])
    train = store.get_historical_features(entity_df, ["driver_stats:trips"]).to_polars()
    """
    from mlbox.features.service import FeatureStore
    from mlbox.store import Home

    client = _c()
    with _registries_lock:
        store = _feature_stores.get(client)
        if store is None:
            store = FeatureStore(client.tracking.db, Home(client.settings.home).ensure())
            _feature_stores[client] = store
        return store


def register_model(
    name: str,
    *,
    run_id: int | None = None,
    artifact_path: str = "model",
    model: Any = None,
    example_input: Any = None,
    flavor: str | None = None,
    description: str = "",
    options: Mapping[str, Any] | None = None,
    features: list[str] | None = None,
) -> ModelVersion:
    """Register a new version of ``name``: a run's logged model, or ``model=`` from memory.

    ``run_id`` defaults to the active run. With ``model=`` the object is saved
    by its flavor and the run (if any) is recorded as its lineage. With
    ``example_input`` the signature is inferred and the model is checked to run.
    ``features=["view:feature", ...]`` (the model's input columns, in order)
    lets a scoring request send entity keys only: serving looks the features up.
    """
    if run_id is None:
        active = _logging_run()
        run_id = None if active is None else active.id
    if model is None and run_id is None:
        raise InvalidInput(
            "nothing to register: give run_id= (a run's logged model), model=, or call inside a run",
            field="run_id",
        )
    return _registry().register(
        name,
        run_id=run_id,
        artifact_path=None if model is not None else artifact_path,
        model=model,
        flavor=flavor,
        example_input=example_input,
        description=description,
        options=options,
        features=features,
    )


def load_model(ref: str, *, device: str = "cpu") -> LoadedModel:
    """A registered version (``name``, ``name@champion``, ``name/3``) loaded from verified files."""
    return _registry().load(ref, device=device)


def __getattr__(name: str) -> Any:
    """`SchemaMismatch` on first use: its module needs numpy, which ``import mlbox`` does not load."""
    if name == "SchemaMismatch":
        from mlbox.registry.signature import SchemaMismatch

        return SchemaMismatch
    raise AttributeError(f"module 'mlbox' has no attribute {name!r}")
