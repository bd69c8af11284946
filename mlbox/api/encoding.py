"""Scoring bodies the client compressed (``Content-Encoding: gzip`` or ``deflate``), as Triton's
client sends them with ``request_compression_algorithm`` and KServe's with its gzip option.

Decompression stops at the same limit as an uncompressed body, so a few kilobytes of
compressed zeros cannot fill the server's memory; OIP's ``Inference-Header-Content-Length``
counts the decompressed bytes, so the binary framing is read after this.
"""

from __future__ import annotations

import zlib

from mlbox.store.errors import InvalidInput, MlboxError


class BodyTooLarge(MlboxError):
    http_status = 413


class UnsupportedEncoding(MlboxError):
    http_status = 415


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` as sent before compression; unchanged without an encoding (or ``identity``)."""
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return body
    wbits = _WBITS.get(name)
    if wbits is None:
        raise UnsupportedEncoding(
            f"Content-Encoding {name!r} is not supported (gzip, deflate or none)", field="content-encoding"
        )
    try:
        return _inflate(body, wbits, limit)
    except zlib.error:
        if name != "deflate":
            raise InvalidInput(f"the body is not valid {name} data", field="body") from None
    try:  # HTTP's "deflate" is zlib-wrapped, but some clients send raw deflate
        return _inflate(body, -zlib.MAX_WBITS, limit)
    except zlib.error:
        raise InvalidInput("the body is not valid deflate data", field="body") from None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the body decompresses to more than {limit} bytes", field="body")
    if not inflater.eof:
        raise InvalidInput("the compressed body is cut short", field="body")
    return out
