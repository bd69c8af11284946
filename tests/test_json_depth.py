"""Deeply nested JSON is a 400 on the body, never a 500; a log offset past any file is no 500 either.

msgspec gives up on a body nested about a thousand deep with a `RecursionError`
(a 500 on every route that took JSON). The depth scan (`mlbox.serving.jsondepth`)
is checked on its own against a reference walk, then over HTTP on the management
routes (`mlbox.api.bodies`) and the scoring routes (`mlbox.serving.codecs`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.scheduler.schemas import JobSpec
from mlbox.services import Services
from mlbox.serving.codecs import decode_mlflow, decode_oip
from mlbox.serving.jsondepth import MAX_JSON_DEPTH, check_json_depth, json_depth
from mlbox.store.errors import InvalidInput
from tests.helpers import error

TOKEN = "test-token-depth"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"


def reference_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# strings full of brackets, quotes and backslashes: the scan must not count what is inside them
_tricky = st.text(alphabet='[]{}"\\ab\n', max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_tricky, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_depth_matches_a_walk_of_the_decoded_value(value: Any) -> None:
    body = json.dumps(value).encode()
    assert json_depth(body) == reference_depth(value)


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"", 0),
        (b"42", 0),
        (b'"[[[["', 0),
        (b'["\\"[[", "\\\\", [["]]]\\\\"]]]', 3),  # escaped quote, escaped backslash, brackets in strings
        (b'{"a": {"b": ["\\\\\\"{{"]}}', 3),  # three backslashes: an escaped backslash, an escaped quote
        (b'["' + b"\\" * 40 + b'", [[]]]', 3),  # a long run of backslashes (the slow path)
        (b'["' + b"\\" * 41 + b'"]]]]', 1),  # an odd run: the quote is escaped, the string never ends
        (nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH),
    ],
)
def test_depth_of_bodies(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_the_limit_is_inclusive_and_the_error_names_the_body() -> None:
    check_json_depth(nested(MAX_JSON_DEPTH))
    check_json_depth(b"[" + b"[]," * 10_000 + b"[]]")  # many brackets, shallow
    check_json_depth(b'["' + b"[" * 10_000 + b'"]')  # deep only inside a string
    with pytest.raises(InvalidInput) as caught:
        check_json_depth(nested(MAX_JSON_DEPTH + 1))
    assert caught.value.field == "body"
    assert f"nested deeper than {MAX_JSON_DEPTH}" in caught.value.message


def test_scoring_decoders_refuse_deep_bodies() -> None:
    deep = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ' + nested(1000) + b"}]}"
    for decode in (decode_oip, decode_mlflow):
        with pytest.raises(InvalidInput) as caught:
            decode(deep)
        assert caught.value.field == "body"


@pytest.fixture
def app(services: Services) -> Litestar:
    return create_app(services, token=TOKEN)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app, base_url=BASE) as client:
        client.headers.update(AUTH)
        yield client


DEEP_ROUTES = [
    "/api/v1/runs/search",
    "/api/v1/runs",
    "/api/v1/runs/1/log-batch",
    "/api/v1/runs/1/end",
    "/api/v1/jobs",
    "/api/v1/features/online",
    "/api/v1/experiments",
    "/api/v1/sweeps",
    "/v2/models/m/infer",
    "/v2/models/m/versions/1/infer",
    "/api/v1/models/m/predict",
]


@pytest.mark.parametrize("path", DEEP_ROUTES)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_deep_json_is_400_on_the_body(client: TestClient[Litestar], path: str, depth: int) -> None:
    client.post("/api/v1/runs", json={"experiment": "e"})
    body = b'{"filter": ' + nested(depth) + b"}"
    headers = {"content-type": "application/json"}
    answer = error(client.post(path, content=body, headers=headers), 400, "body")
    assert "nested deeper than" in answer["error"]


def test_deep_json_without_the_token_is_still_401(app: Litestar) -> None:
    with TestClient(app, base_url=BASE) as anon:
        error(anon.post("/api/v1/jobs", content=nested(1000)), 401)


def test_a_body_at_the_limit_is_decoded(client: TestClient[Litestar]) -> None:
    """Not refused for depth: the search body's ``filter`` must be a string, so the error is that."""
    body = b'{"filter": ' + nested(MAX_JSON_DEPTH - 1) + b"}"
    answer = error(client.post("/api/v1/runs/search", content=body), 400, "filter")
    assert "nested" not in answer["error"]


@pytest.mark.parametrize("offset", [10, 19_498_526_281_175, 2**63 - 1, 2**64, 2**80])
def test_log_offset_past_the_end_reads_nothing(
    services: Services, client: TestClient[Litestar], offset: int
) -> None:
    job = services.scheduler.submit(JobSpec(name="quiet", command=["true"]))
    path = services.scheduler.log_path(job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"hello\n")
    assert services.scheduler.read_log(job.id, offset) == (b"", offset)
    answer = client.get(f"/api/v1/jobs/{job.id}/logs", params={"offset": str(offset)})
    if offset < 2**63:
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"] == "" and answer.json()["next_offset"] == offset
    else:
        error(answer, 400, "offset")
    assert client.get(f"/api/v1/jobs/{job.id}/logs", params={"offset": "2"}).json()["text"] == "llo\n"
