"""Compressed scoring bodies (``Content-Encoding``), on the fast path and through Litestar: gzip
and deflate score as the plain body does; a bomb past the body limit, an unknown encoding and
broken data are refused naming the field, never a 500."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.encoding import BodyTooLarge, decompressed
from mlbox.store.errors import InvalidInput
from tests.helpers import error
from tests.serving.server import oip


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate), ("identity", bytes)],
)
def test_compressed_bodies_score_as_plain_ones(
    client: TestClient[Litestar], data: dict[str, Any], encoding: str, pack: Any
) -> None:
    x = data["x"][:9]
    body = json.dumps(oip(x)).encode()
    response = client.post(
        "/v2/models/gbc/infer",
        content=pack(body),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == data["gbc"].predict(x).tolist()
    response = client.post(
        "/api/v1/models/gbc/predict",
        content=pack(json.dumps({"inputs": x.tolist()}).encode()),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == data["gbc"].predict(x).tolist()


def test_bad_encodings_are_refused_naming_the_field(
    client: TestClient[Litestar], data: dict[str, Any]
) -> None:
    body = json.dumps(oip(data["x"][:2])).encode()
    post = lambda content, enc: client.post(  # noqa: E731
        "/v2/models/gbc/infer", content=content, headers={"content-encoding": enc}
    )
    error(post(body, "br"), 415, "content-encoding")
    error(post(body, "gzip"), 400, "body")  # says gzip, is not
    error(post(gzip.compress(body)[:-12], "gzip"), 400, "body")  # cut short
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MB of zeros in ~64 kB
    assert len(bomb) < 100_000
    error(post(bomb, "gzip"), 413, "body")


def test_decompression_stops_at_the_limit() -> None:
    plain = np.arange(1000, dtype=np.float64).tobytes()
    assert decompressed(gzip.compress(plain), "GZip ", len(plain)) == plain
    with pytest.raises(BodyTooLarge):
        decompressed(gzip.compress(plain), "gzip", len(plain) - 1)
    with pytest.raises(InvalidInput):
        decompressed(b"\x1f\x8b not really", "gzip", 1 << 20)
    assert decompressed(b"as is", None, 1) == b"as is"
