"""Errors of the MLflow routes in MLflow's shape: ``{"error_code": ..., "message": ...}``.

MLflow's client turns that body into its usual exceptions (`RestException`
with the code), and retries any 5xx for minutes, so nothing a caller sent may
come back as a 5xx here. Installed on the MLflow controllers only; the rest
of the API keeps mlbox's own shape (`mlbox.api.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from mlbox.api.security import Unauthorized
from mlbox.mlflow.protocol import ERROR_STATUS
from mlbox.store.errors import Conflict, InvalidInput, MlboxError, NotFound

log = logging.getLogger("mlbox.api.mlflow")

API_PREFIXES: tuple[str, ...] = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
"""MLflow's client calls the first; its web UI the second."""


def both(path: str) -> list[str]:
    """A route under both of MLflow's prefixes."""
    return [f"{prefix}{path}" for prefix in API_PREFIXES]


def paths(prefixes: Sequence[str], path: str) -> list[str]:
    return [f"{prefix}{path}" for prefix in prefixes]


def mlflow_response(
    code: str, message: str, headers: dict[str, str] | None = None, extra: dict[str, str] | None = None
) -> Response[Any]:
    """MLflow's body; ``extra`` adds mlbox's own keys (``error``, ``field``), which MLflow's client
    ignores and mlbox's tools read, so one body serves both."""
    return Response(
        {"error_code": code, "message": message, **(extra or {})},
        status_code=ERROR_STATUS.get(code, 400),
        media_type="application/json",
        headers=headers,
    )


def code_of(exc: MlboxError) -> str:
    if isinstance(exc, Unauthorized):
        return "UNAUTHENTICATED"
    if isinstance(exc, NotFound):
        return "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, Conflict) and "already exists" in exc.message:
        return "RESOURCE_ALREADY_EXISTS"
    if isinstance(exc, (InvalidInput, Conflict)):
        return "INVALID_PARAMETER_VALUE"
    if exc.http_status == 403:
        return "PERMISSION_DENIED"
    return "INTERNAL_ERROR" if exc.http_status >= 500 else "INVALID_PARAMETER_VALUE"


def _mlbox_error(request: Request[Any, Any, Any], exc: MlboxError) -> Response[Any]:
    code = code_of(exc)
    if code == "INTERNAL_ERROR":
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return mlflow_response(code, exc.message, headers, exc.to_dict())


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    messages = [str(i.get("message")) for i in extra if isinstance(i, dict) and i.get("message")]
    return mlflow_response("INVALID_PARAMETER_VALUE", "; ".join(messages) or exc.detail)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
        return mlflow_response("INTERNAL_ERROR", "internal error")
    code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND"}.get(
        exc.status_code, "BAD_REQUEST"
    )
    response = mlflow_response(code, exc.detail, exc.headers)
    response.status_code = exc.status_code
    return response


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return mlflow_response("INTERNAL_ERROR", "internal error")


MLFLOW_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    MlboxError: _mlbox_error,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _internal,
}
