"""The HTTP API, built by `create_app` from the services (the appliance and tests call it).

Its invariants, each enforced in one place:

* deny by default: the Host check and the bearer token are guards on the app
  itself (`mlbox.api.security`), so every route inherits them and only
  `OPEN_ROUTES` (health, schema, and the read-only scoring routes of
  `mlbox.api.serving`) skip the token;
* one list of services (`MOUNTS`): each service's controllers receive the
  service by its name (``registry: NamedDependency[RegistryService]``);
* every error is JSON (`mlbox.api.errors`), never a traceback or an HTML page; the
  one HTML answer is the inert page at ``GET /`` for a browser (`mlbox.api.landing`);
* the OpenAPI document is served as JSON only (``/schema/openapi.json``): no
  Swagger/Redoc page, as those load scripts from a CDN and mlbox is offline;
* request bodies are capped (`MAX_BODY_BYTES`, 413 beyond), and a JSON body nested too deep
  is a 400 before it is decoded (`mlbox.api.bodies`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Litestar, Response, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from mlbox import __version__
from mlbox.api import mlflow_fast
from mlbox.api.artifacts import ArtifactController
from mlbox.api.bodies import CheckedRequest
from mlbox.api.errors import EXCEPTION_HANDLERS
from mlbox.api.experiments import ExperimentController
from mlbox.api.explain import ExplainController
from mlbox.api.features import FeatureController
from mlbox.api.health import HealthController
from mlbox.api.job_files import JobFileController
from mlbox.api.jobs import GpuController, JobController
from mlbox.api.labeling import LabelingController
from mlbox.api.landing import LandingController
from mlbox.api.metrics import MetricController
from mlbox.api.mlflow_artifacts import MlflowArtifactsController
from mlbox.api.mlflow_registry import MlflowRegistryController
from mlbox.api.mlflow_tracking import MlflowTrackingController
from mlbox.api.models import ModelController
from mlbox.api.monitoring import MonitoringController
from mlbox.api.notebooks import NotebookController
from mlbox.api.pipelines import PipelineController
from mlbox.api.ranges import path_ints_guard
from mlbox.api.runs import RunController
from mlbox.api.security import all_of, host_guard, scoring_token_guard, token_guard
from mlbox.api.serving import ScoringController, ScoringFastPath
from mlbox.api.sweeps import SweepController
from mlbox.services import Services

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Mount:
    """A service's routes: its controllers, handed the service as the dependency of its name."""

    service: str
    """The `Services` field; handlers declare ``<service>: NamedDependency[...]``."""
    controllers: tuple[type[Controller], ...]
    max_body_bytes: Callable[[Any], int] | None = None
    """The service's own body limit, read from the service, where it has one (else `MAX_BODY_BYTES`)."""


MOUNTS: tuple[Mount, ...] = (
    Mount(
        "tracking",
        (
            ExperimentController,
            RunController,
            MetricController,
            ArtifactController,
            MlflowTrackingController,
            MlflowArtifactsController,
        ),
    ),
    Mount("registry", (ModelController, MlflowRegistryController)),
    Mount("serving", (ScoringController,), max_body_bytes=lambda serving: serving.settings.max_body_bytes),
    Mount("features", (FeatureController,)),
    Mount("scheduler", (JobController, JobFileController, GpuController)),
    Mount("sweeps", (SweepController,)),
    Mount("notebooks", (NotebookController,)),
    Mount("monitoring", (MonitoringController, ExplainController)),
    Mount("labeling", (LabelingController,)),
    Mount("pipelines", (PipelineController,)),
)
"""The API's one list of services (`mlbox.services`): a new service adds its line here."""


def mounted(mount: Mount, services: Services) -> Router:
    service = getattr(services, mount.service)

    def provide() -> Any:
        return service

    # said on every router: Litestar reads a router's None as no limit, not as the app's
    limit = mount.max_body_bytes(service) if mount.max_body_bytes else MAX_BODY_BYTES
    return Router(
        path="/",
        route_handlers=list(mount.controllers),
        dependencies={mount.service: Provide(provide, sync_to_thread=False)},
        request_max_body_size=limit,
    )


async def no_html(response: Response[Any]) -> Response[Any]:
    """The API serves no HTML at all.

    Litestar's schema router answers unknown ``/schema/...`` paths with an HTML
    404 page; this turns that (and any HTML a future handler might return) into
    a JSON 404.
    """
    media = str(getattr(response.media_type, "value", response.media_type) or "")
    if media.startswith("text/html"):
        return Response({"error": "not found"}, status_code=404, media_type="application/json")
    return response


def create_app(services: Services, *, token: str) -> Litestar:
    """The API over ``services``: health, then every service's routes (`MOUNTS`)."""
    require = services.settings.serving.require_token  # MLBOX_SERVING_REQUIRE_TOKEN
    scoring = [scoring_token_guard(token)] if require else []
    app = Litestar(
        route_handlers=[HealthController, LandingController, *(mounted(m, services) for m in MOUNTS)],
        guards=[
            all_of(
                host_guard(services.settings.accepted_hosts),
                token_guard(token, services.scheduler.job_grant),
                *scoring,
                path_ints_guard,
            )
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        after_request=no_html,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=CheckedRequest,
        openapi_config=OpenAPIConfig(
            title="mlbox",
            version=__version__,
            description="Management API of the mlbox appliance. Send 'Authorization: Bearer <token>' "
            "(the token is in $MLBOX_HOME/token); only health and this schema are open.",
            render_plugins=[JsonRenderPlugin()],
        ),
        # The process that embeds the API (``mlbox up``, the TUI) owns logging:
        # Litestar's default would reconfigure the root logger, and a TUI's
        # terminal must not receive stray log lines.
        logging_config=None,
        debug=False,
    )
    serving = services.serving
    # one admission for both scoring paths (the appliance drains it on SIGTERM)
    app.state.admission = serving.admission
    if serving.settings.fast_path:
        app.asgi_handler = ScoringFastPath(
            app.asgi_handler,
            serving,
            accepted_hosts=services.settings.accepted_hosts,
            max_body_bytes=serving.settings.max_body_bytes,
            admission=app.state.admission,
            require_token=token if require else None,
        )
    mlflow_fast.install(
        app,
        services.tracking,
        token=token,
        accepted_hosts=services.settings.accepted_hosts,
        max_body_bytes=MAX_BODY_BYTES,
    )
    return app
