"""Who may call the API: the Host header check and the bearer token, both app-wide.

Both are guards on the application itself, so every route registered under it
(including the schema router Litestar adds) inherits them: a new route is
protected unless its (method, path) is added to `OPEN_ROUTES`. Deny by default.

* The Host check defeats DNS rebinding: a web page in the user's browser can
  point a name it controls at 127.0.0.1, but the browser still sends that name
  in the Host header, which is not one of ours. It applies to every route,
  health included.
* The token is compared in constant time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from mlbox.store.errors import MlboxError

OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/api/v1/health"),
        ("GET", "/schema"),
        ("GET", "/schema/openapi.json"),
    }
)
"""(method, path template) pairs anyone on an accepted host may call without a token."""

Guard = Callable[[ASGIConnection, BaseRouteHandler], None]


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


def host_guard(accepted: Iterable[str]) -> Guard:
    names = frozenset(h.strip().lower() for h in accepted)

    def check_host(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        header = connection.headers.get("host")
        if header is None:
            raise HostNotAllowed("the request has no Host header", field="host")
        name = host_name(header)
        if name not in names and name.strip("[]") not in names:
            raise HostNotAllowed(
                f"host {name!r} is not served here; add it to MLBOX_ALLOWED_HOSTS to allow it",
                field="host",
            )

    return check_host


def token_guard(token: str) -> Guard:
    expected = token.encode()
    if not expected:
        raise ValueError("the API token must not be empty")

    def check_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        route = (connection.scope.get("method", ""), connection.scope.get("path_template", ""))
        if route in OPEN_ROUTES:
            return
        header = connection.headers.get("authorization")
        if header is None:
            raise Unauthorized(
                "this route needs 'Authorization: Bearer <token>' (the token is in $MLBOX_HOME/token)",
                field="authorization",
            )
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise Unauthorized("wrong bearer token", field="authorization")

    return check_token
