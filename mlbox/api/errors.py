"""Every failure of the API as one JSON shape: ``{"error": ..., "field": ...}``.

Mapped once, here: `MlboxError` keeps its own status and body; Litestar's
validation errors (a query parameter of the wrong type, malformed JSON, a body
field of the wrong type) become 400 naming the field; its other HTTP errors
(404 no route, 405, 413) keep their status; anything else is a 500 that says
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
    return _json({"error": exc.detail}, exc.status_code, exc.headers)


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
