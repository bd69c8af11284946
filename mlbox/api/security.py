"""Who may call the API: the Host header check and the bearer token, both app-wide.

Both are guards on the application itself, so every route registered under it
(including the schema router Litestar adds) inherits them: a new route is
protected unless its (method, path) is added to `OPEN_ROUTES`. Deny by default.

* The Host check defeats DNS rebinding: a web page in the user's browser can
  point a name it controls at 127.0.0.1, but the browser still sends that name
  in the Host header, which is not one of ours. It applies to every route,
  health included.
* The token is compared in constant time (`hmac.compare_digest`), by one
  function (`bearer_matches`) for the guard and the scoring fast path.
* An open route called with the right token is marked authorized in its
  scope (`authorized`): scoring then may load a version no alias serves
  (issue 12: an open route never loads, pins or allocates; the token does).
* Two kinds of token: the admin token (``$MLBOX_HOME/token``), and job tokens
  (``mlbj_...``, `mlbox.scheduler.job_tokens`) that a job on a Ray node logs with.
  A job token opens only `JOB_ROUTES`, and only for its own run or job (the path's
  ``run_id`` or ``job_id``), only while its attempt runs; never an admin route.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from mlbox.scheduler.job_tokens import PREFIX as JOB_TOKEN_PREFIX
from mlbox.scheduler.job_tokens import Grant
from mlbox.store.errors import MlboxError

ALWAYS_OPEN: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/"),  # a page saying mlbox has no web UI (`mlbox.api.landing`): no data
        ("GET", "/api/v1/health"),
        ("GET", "/schema"),
        ("GET", "/schema/openapi.json"),
        ("GET", "/v2"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
    }
)
"""Health and the schema: open even with ``MLBOX_SERVING_REQUIRE_TOKEN`` (probes carry no token)."""

OPEN_ROUTES: frozenset[tuple[str, str]] = ALWAYS_OPEN | {
    # scoring: read-only use of registered models, open like KServe/MLServer on
    # loopback (see `mlbox.api.serving`); registering or moving a model needs the token
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
    ("POST", "/api/v1/models/{name}/predict"),
    ("POST", "/invocations"),
    ("GET", "/metrics"),
}
"""(method, path template) pairs anyone on an accepted host may call without a token."""

JOB_ROUTES: Mapping[tuple[str, str], str] = {
    ("GET", "/api/v1/runs/{run_id}"): "run_id",
    ("POST", "/api/v1/runs/{run_id}/log-batch"): "run_id",
    ("PUT", "/api/v1/jobs/{job_id}/artifacts/{path}"): "job_id",
    ("GET", "/api/v1/jobs/{job_id}/checkpoints"): "job_id",
    ("GET", "/api/v1/jobs/{job_id}/checkpoints/{name}"): "job_id",
    ("PUT", "/api/v1/jobs/{job_id}/checkpoints/{name}"): "job_id",
}
"""What a job token may call: its own run (read it, log params, tags and metrics) and its own
job's artifacts and checkpoints, by the path parameter that must be its run's or job's id."""

JobGrant = Callable[[str], Grant | None]
"""A job token -> what it may touch while its attempt runs, else None (`job_tokens.grant`)."""

Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]
"""Guards are coroutines although they do no I/O: Litestar runs a plain function guard in a
worker thread, which cost two thread hand-offs on every request."""


class Unauthorized(MlboxError):
    """No bearer token, or the wrong one."""

    http_status = 401


class HostNotAllowed(MlboxError):
    """The Host header names a host this API does not serve (DNS rebinding defence)."""

    http_status = 403


def host_name(header: str) -> str:
    """The host part of a Host header: port stripped, IPv6 kept in brackets, lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value if end < 0 else value[: end + 1]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a bare name, or an unbracketed IPv6 address


def accepted_names(accepted: Iterable[str]) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in accepted)


def check_host(header: str | None, names: frozenset[str]) -> None:
    """Raise `HostNotAllowed` unless the Host header names one of ``names`` (see `accepted_names`).

    Shared by the guard and the scoring fast path (`mlbox.api.serving`), so both refuse alike.
    """
    if header is None:
        raise HostNotAllowed("the request has no Host header", field="host")
    name = host_name(header)
    if name not in names and name.strip("[]") not in names:
        raise HostNotAllowed(
            f"host {name!r} is not served here; add it to MLBOX_ALLOWED_HOSTS to allow it",
            field="host",
        )


def host_guard(accepted: Iterable[str]) -> Guard:
    names = accepted_names(accepted)

    async def check_host_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        check_host(connection.headers.get("host"), names)

    return check_host_guard


AUTHORIZED = "mlbox.authorized"
"""Scope key set on an open route's request that carried the right token (see `authorized`)."""


def bearer_matches(header: str | bytes | None, expected: bytes) -> bool:
    """Whether an Authorization header is ``Bearer <expected>`` (the token compared in constant time)."""
    if header is None:
        return False
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, given = text.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def authorized(scope: Mapping[str, Any]) -> bool:
    """Whether the request holds the API token (always so on a closed route that was let through)."""
    return bool(scope.get(AUTHORIZED, False))


class Forbidden(MlboxError):
    """A job token on a route, or for a run, that is not its own."""

    http_status = 403


def check_job_token(given: str, route: tuple[str, str], params: Mapping[str, Any], grant: JobGrant) -> None:
    """Let a job token through to its own run's or job's `JOB_ROUTES`, or raise."""
    found = grant(given)
    if found is None:
        raise Unauthorized("job token unknown, or its job has ended", field="authorization")
    param = JOB_ROUTES.get(route)
    if param is None:
        raise Forbidden(
            "a job token may only log to its own run and job (metrics, params, tags, artifacts, checkpoints)",
            field="authorization",
        )
    own = found.run_id if param == "run_id" else found.job_id
    if own is None or params.get(param) != own:
        raise Forbidden(f"a job token may only use its own {param[:-3]} ({own})", field=param)


def token_guard(token: str, job_grant: JobGrant | None = None) -> Guard:
    """``job_grant``: how job tokens are looked up (`mlbox.scheduler.job_tokens.grant`); without
    it only the admin token is accepted."""
    expected = token.encode()
    if not expected:
        raise ValueError("the API token must not be empty")

    async def check_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        route = (connection.scope.get("method", ""), connection.scope.get("path_template", ""))
        header = connection.headers.get("authorization")
        if route in OPEN_ROUTES:
            # a wrong token on an open route is no token: the route stays open, nothing loads
            if header is not None and bearer_matches(header, expected):
                connection.scope[AUTHORIZED] = True  # type: ignore[literal-required]
            return
        if header is None:
            raise Unauthorized(
                "this route needs 'Authorization: Bearer <token>' (the token is in $MLBOX_HOME/token)",
                field="authorization",
            )
        if not bearer_matches(header, expected):
            scheme, _, given = header.partition(" ")
            given = given.strip()
            if job_grant is not None and scheme.lower() == "bearer" and given.startswith(JOB_TOKEN_PREFIX):
                check_job_token(given, (str(route[0]), route[1]), connection.path_params, job_grant)
                return  # a job's own route: not AUTHORIZED (that is the admin token's)
            raise Unauthorized("wrong bearer token", field="authorization")
        connection.scope[AUTHORIZED] = True  # type: ignore[literal-required]

    return check_token


# -- MLBOX_SERVING_REQUIRE_TOKEN: the open scoring routes need the token too ----------------------

SCORING_ROUTES = OPEN_ROUTES - ALWAYS_OPEN
"""Scoring, model metadata and ``/metrics``: open unless ``MLBOX_SERVING_REQUIRE_TOKEN`` is set."""


def require_bearer(header: str | bytes | None, expected: bytes) -> None:
    """Raise `Unauthorized` unless the header carries the token (scoring under the setting)."""
    if not bearer_matches(header, expected):
        raise Unauthorized(
            "MLBOX_SERVING_REQUIRE_TOKEN is set: scoring needs 'Authorization: Bearer <token>'"
            " (the token is in $MLBOX_HOME/token)",
            field="authorization",
        )


def scoring_token_guard(token: str) -> Guard:
    """The guard `create_app` adds under ``MLBOX_SERVING_REQUIRE_TOKEN`` (the fast path checks alike)."""
    expected = token.encode()

    async def check_scoring_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        route = (connection.scope.get("method", ""), connection.scope.get("path_template", ""))
        if route in SCORING_ROUTES:
            require_bearer(connection.headers.get("authorization"), expected)

    return check_scoring_token


def all_of(*guards: Guard) -> Guard:
    """One guard that runs ``guards`` in order.

    Litestar copies the route handler object for every guard it calls, on every
    request; one guard instead of two halves that cost on the scoring path.
    """

    async def check_all(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        for guard in guards:
            await guard(connection, handler)

    return check_all
