"""Whole numbers in a request's path stay within SQLite's INTEGER range, or the request is a 400.

Litestar parses ``{run_id:int}`` into a Python int of any size; SQLite stores
at most a signed 64-bit one and raises `OverflowError` when asked about a
larger id (a 500 on ``GET /api/v1/runs/9223372036854775808``, found by
schemathesis). No row can have such an id, but the caller sent a number that
cannot be one, so the answer is a 400 naming the parameter, checked once for
every route by a guard (inside `mlbox.api.security.all_of`, so it costs no
extra handler copy on the scoring path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from mlbox.store.errors import InvalidInput

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
"""A body field stored as an SQLite INTEGER: msgspec refuses a larger one (400 naming the field)."""


def check_int_params(params: Mapping[str, Any]) -> None:
    """Refuse a whole-number parameter outside the signed 64-bit range (pure: values in, error out)."""
    for name, value in params.items():
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInput(f"{name} must be between {INT64_MIN} and {INT64_MAX}; got {value}", field=name)


async def path_ints_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    params = connection.path_params
    if params:
        check_int_params(params)
