"""Every failure of the API as one JSON shape: ``{"error": ..., "field": ...}``.

Mapped once, here: `MlboxError` keeps its own status and body; Litestar's
validation errors (a query parameter of the wrong type, malformed JSON, a body
field of the wrong type) become 400 naming the field; its other HTTP errors
(404 no route, 405, 413) keep their status, except a path whose whole-number
parameter is not a number (``/api/v1/runs/abc/restore``: Litestar's router
matches no ``{run_id:int}`` route and says only "Not Found"), which is a 400
naming the parameter as every other bad id is; anything else is a 500 that says
"internal error" and nothing more (the traceback goes to the log, never to the
caller). No error is ever an HTML page.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.types import ExceptionHandlersMap

from mlbox.api.security import Unauthorized
from mlbox.store.errors import MlboxError, storage_full

log = logging.getLogger("mlbox.api")

_PARAMETER = re.compile(r"parameter '([^']+)'")


def _problems(exc: ValidationException) -> list[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    return [item for item in extra if isinstance(item, dict)]


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def mlbox_error(request: Request[Any, Any, Any], exc: MlboxError) -> Response[Any]:
    if exc.http_status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return _json(exc.to_dict(), exc.http_status, headers)


_BODY_PATH = re.compile(r"- at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def _body_field(message: str) -> str:
    """The body field msgspec's message names (``resources.gpus``, ``name``), else ``body``.

    msgspec says ``Expected `int`, got `str` - at `$.resources.gpus``` or
    ``Object missing required field `name` - at `$```.
    """
    path_match = _BODY_PATH.search(message)
    path = path_match.group(1) if path_match else ""
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or "body"


def _field(exc: ValidationException) -> str | None:
    """The field a Litestar validation error is about: a query name, or a body path like ``metrics[0][1]``."""
    for item in _problems(exc):
        key = item.get("key")
        if key == "data":
            return _body_field(str(item.get("message", "")))
        if key:
            return str(key)
    match = _PARAMETER.search(exc.detail)  # "Missing required query parameter 'ids' ..."
    return match.group(1) if match else None


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    field = _field(exc)
    messages = [str(i["message"]) for i in _problems(exc) if i.get("message")]
    text = "; ".join(messages) or exc.detail
    body: dict[str, Any] = {
        "error": f"{field}: {text}" if messages and field else text,
        "type": "InvalidInput",
    }
    if field is not None:
        body["field"] = field
    return _json(body, 400)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
        return _json({"error": "internal error"}, exc.status_code)
    if isinstance(exc.__cause__, SerializationException):  # the body is not valid JSON
        return _json(
            {"error": f"malformed JSON body: {exc.detail}", "type": "InvalidInput", "field": "body"}, 400
        )
    if exc.status_code == 404 and exc.detail == "Not Found":  # the router's: no route matched
        bad = bad_int_param(request.app, request.url.path)
        if bad is not None:
            name, text = bad
            return _json(
                {
                    "error": f"{name} must be a whole number; got {text!r}",
                    "type": "InvalidInput",
                    "field": name,
                },
                400,
            )
    return _json({"error": exc.detail}, exc.status_code, exc.headers)


_TEMPLATE_PARAM = re.compile(r"\{([^}:]+):([^}]+)\}")
_STATE_KEY = "mlbox_int_route_patterns"


def _route_patterns(app: Any) -> list[tuple[re.Pattern[str], list[str]]]:
    """Each route with a whole-number parameter as a pattern that takes any segment there, and
    the names of those parameters (built once per app, on its first unmatched path)."""
    found: list[tuple[re.Pattern[str], list[str]]] | None = app.state.get(_STATE_KEY)
    if found is None:
        found = []
        for route in app.routes:
            if "int}" not in route.path:
                continue
            ints: list[str] = []
            pattern, at = "", 0
            for m in _TEMPLATE_PARAM.finditer(route.path):
                pattern += re.escape(route.path[at : m.start()])
                name, kind = m.group(1), m.group(2)
                if kind == "int":
                    ints.append(name)
                pattern += f"(?P<{name}>.*)" if kind == "path" else f"(?P<{name}>[^/]+)"
                at = m.end()
            pattern += re.escape(route.path[at:])
            found.append((re.compile(pattern + "/?"), ints))
        app.state[_STATE_KEY] = found
    return found


def bad_int_param(app: Any, path: str) -> tuple[str, str] | None:
    """(name, text) of the whole-number path parameter that kept ``path`` from matching a route,
    or None when no route would match it with any number there."""
    for pattern, ints in _route_patterns(app):
        m = pattern.fullmatch(path)
        if m is None:
            continue
        for name in ints:
            text = m.group(name)
            try:
                int(text)
            except ValueError:
                return name, text
    return None


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    full = storage_full(exc)  # an artifact or Parquet write on a full disk: 507, not a 500
    if full is not None:
        return mlbox_error(request, full)
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _json({"error": "internal error"}, 500)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    MlboxError: mlbox_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
