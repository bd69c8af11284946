"""The request class of the API: every JSON body is measured before Litestar decodes it.

Litestar decodes a handler's ``data`` through `Request.json`, and msgspec
answers a body nested about a thousand deep with a `RecursionError` that
no decode-error handler catches (a 500). Overriding `json` is the one place
every management route's JSON body passes through, before decoding; the
scoring routes read raw bytes and check them in `mlbox.serving.codecs` with
the same function (`mlbox.serving.jsondepth.check_json_depth`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from mlbox.serving.jsondepth import check_json_depth


class CheckedRequest(Request[Any, Any, Any]):
    """A Litestar request whose JSON body is refused (400 on ``body``) when nested too deep."""

    async def json(self) -> Any:
        check_json_depth(await self.body())
        return await super().json()
