"""The HTTP API, built by `create_app` from the services (the appliance and tests call it).

Its invariants, each enforced in one place:

* deny by default: the Host check and the bearer token are guards on the app
  itself (`mlbox.api.security`), so every route inherits them and only
  `OPEN_ROUTES` (health, schema, and the read-only scoring routes of
  `mlbox.api.serving` when a `ServingService` is given) skip the token;
* every error is JSON (`mlbox.api.errors`), never a traceback or an HTML page;
* the OpenAPI document is served as JSON only (``/schema/openapi.json``): no
  Swagger/Redoc page, as those load scripts from a CDN and mlbox is offline;
* request bodies are capped (`MAX_BODY_BYTES`, 413 beyond).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Litestar, Response
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from mlbox import __version__
from mlbox.api.artifacts import ArtifactController
from mlbox.api.errors import EXCEPTION_HANDLERS
from mlbox.api.experiments import ExperimentController
from mlbox.api.features import features_router
from mlbox.api.health import HealthController
from mlbox.api.jobs import jobs_router
from mlbox.api.metrics import MetricController
from mlbox.api.models import models_router
from mlbox.api.notebooks import notebooks_router
from mlbox.api.runs import RunController
from mlbox.api.security import all_of, host_guard, token_guard
from mlbox.api.sweeps import sweeps_router
from mlbox.services import Services
from mlbox.tracking.service import TrackingService

if TYPE_CHECKING:
    from mlbox.serving.service import ServingService

MAX_BODY_BYTES = 10 * 1024 * 1024


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


def create_app(services: Services, *, token: str, serving: ServingService | None = None) -> Litestar:
    """The API over ``services``; with ``serving``, the scoring routes too (`mlbox.api.serving`)."""
    tracking = services.tracking
    scoring: list[Any] = []
    if serving is not None:
        from mlbox.api.serving import serving_router

        scoring.append(serving_router(serving, max_body_bytes=serving.settings.max_body_bytes))

    def provide_tracking() -> TrackingService:
        return tracking

    app = Litestar(
        route_handlers=[
            HealthController,
            ExperimentController,
            RunController,
            MetricController,
            ArtifactController,
            models_router(services.registry),
            features_router(services.features),
            jobs_router(services.scheduler),
            sweeps_router(services.sweeps),
            notebooks_router(services.notebooks),
            *scoring,
        ],
        guards=[all_of(host_guard(services.settings.accepted_hosts), token_guard(token))],
        dependencies={"tracking": Provide(provide_tracking, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        after_request=no_html,
        request_max_body_size=MAX_BODY_BYTES,
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
    if serving is not None and serving.settings.fast_path:
        from mlbox.api.serving import ScoringFastPath

        app.asgi_handler = ScoringFastPath(
            app.asgi_handler,
            serving,
            accepted_hosts=services.settings.accepted_hosts,
            max_body_bytes=serving.settings.max_body_bytes,
        )
    return app
