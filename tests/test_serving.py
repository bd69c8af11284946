"""The scoring path end to end: real registry, real sklearn models, the real Litestar app.

HTTP goes through Litestar's TestClient in process, through httpx's ASGI
transport where requests must overlap, and over a real uvicorn socket on
127.0.0.1 for the hot swap. Expected predictions always come from calling
the model object directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import TestClient
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mlbox.api.app import create_app
from mlbox.registry.composition import Composition
from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.codecs import decode_mlflow, decode_oip
from mlbox.serving.config import ServingSettings
from mlbox.serving.predlog import PredictionLog, read_predictions
from mlbox.serving.service import ServingService
from mlbox.serving.tensors import conform, jsonable, to_outputs
from mlbox.store.errors import InvalidInput, NotFound
from tests.test_api import EXPECTED_OPEN_SCORING

TOKEN = "serving-token-1f2e"
BASE = "http://127.0.0.1:5151"
FAST = ServingSettings(poll_s=0.05, timeout_s=10.0, log_flush_s=0.05)


# -- models (python-flavor ones live here, importable as tests.test_serving) --------------


class Constant:
    """Predicts one value for every row."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, x: Any) -> np.ndarray:
        return np.full(len(x), self.value, dtype=np.int64)


class Slow:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def predict(self, x: Any) -> np.ndarray:
        time.sleep(self.delay_s)
        return np.asarray(x)[:, 0]


class Picky:
    """Refuses negative inputs the way many models refuse NaN."""

    def predict(self, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        if (arr < 0).any():
            raise ValueError("Input contains negative values")
        return arr.sum(axis=1)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 20))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    gbc = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x, y)
    lr = LogisticRegression(max_iter=500).fit(x, y)
    return {"x": x, "y": y, "gbc": gbc, "lr": lr}


@pytest.fixture
def registry(services: Services) -> RegistryService:
    return services.registry


@pytest.fixture
def gbc(registry: RegistryService, data: dict[str, Any]) -> Any:
    registry.register("gbc", model=data["gbc"], example_input=data["x"][:5])
    registry.set_alias("gbc", "champion", 1)
    return data["gbc"]


def start_serving(registry: RegistryService, home: Path, settings: ServingSettings = FAST) -> ServingService:
    serving = ServingService(
        registry, settings, PredictionLog(home / "tables" / "predictions", flush_s=settings.log_flush_s)
    )
    serving.start()
    assert serving.wait_ready(30)
    return serving


@pytest.fixture(params=[True, False], ids=["fast-path", "litestar"])
def serving(
    request: pytest.FixtureRequest, registry: RegistryService, gbc: Any, home: Path
) -> Iterator[ServingService]:
    """Every test over this fixture runs twice: scoring POSTs through the fast path, and through
    the Litestar handlers, which must answer identically."""
    serving = start_serving(registry, home, replace(FAST, fast_path=request.param))
    yield serving
    serving.close()


@contextlib.contextmanager
def http_client(services: Services, serving: ServingService) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN, serving=serving), base_url=BASE) as client:
        yield client


@pytest.fixture
def client(services: Services, serving: ServingService) -> Iterator[TestClient[Litestar]]:
    with http_client(services, serving) as c:
        yield c


def oip(x: Any, name: str = "input", datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    arr = np.asarray(x)
    tensor = {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": arr.ravel().tolist()}
    return {"inputs": [tensor], **extra}


def error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.text
    if field is not None:
        assert body.get("field") == field, body
    return body


# -- Open Inference Protocol -------------------------------------------------------------


def test_oip_server_and_model_metadata(client: TestClient[Litestar]) -> None:
    assert client.get("/v2").json() == {
        "name": "mlbox",
        "version": client.get("/v2").json()["version"],
        "extensions": [],
    }
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/gbc@champion").json()
    assert (
        meta["name"] == "gbc@champion" and meta["versions"] == ["1"] and meta["platform"] == "mlbox-sklearn"
    )
    assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 20]}]
    assert meta["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    assert client.get("/v2/models/gbc/versions/1").json()["inputs"] == meta["inputs"]
    assert client.get("/v2/models/gbc@champion/ready").json() == {"name": "gbc@champion", "ready": True}
    error(client.get("/v2/models/nope"), 404)
    error(client.get("/v2/models/nope/ready"), 404)
    error(client.get("/v2/models/gbc/versions/9"), 404)


def test_oip_infer_gives_the_models_predictions(client: TestClient[Litestar], data: dict[str, Any]) -> None:
    x, model = data["x"], data["gbc"]
    for rows in (1, 7):
        r = client.post("/v2/models/gbc@champion/infer", json=oip(x[:rows], id=f"req-{rows}"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_name"] == "gbc@champion" and body["model_version"] == "1"
        assert body["id"] == f"req-{rows}"
        (out,) = body["outputs"]
        assert out["name"] == "predict" and out["datatype"] == "INT64" and out["shape"] == [rows]
        assert out["data"] == model.predict(x[:rows]).tolist()
    # nested data, FP32 and integer tensors are cast losslessly to the signature's float64
    nested = {
        "inputs": [
            {"name": "input", "shape": [3, 20], "datatype": "FP32", "data": x[:3].astype(np.float32).tolist()}
        ]
    }
    r = client.post("/v2/models/gbc/versions/1/infer", json=nested)
    assert (
        r.json()["outputs"][0]["data"] == model.predict(x[:3].astype(np.float32).astype(np.float64)).tolist()
    )
    ints = np.arange(40).reshape(2, 20) - 20
    r = client.post("/v2/models/gbc/infer", json=oip(ints, datatype="INT64"))
    assert r.json()["outputs"][0]["data"] == model.predict(ints.astype(np.float64)).tolist()
    # requested outputs: a known one passes, an unknown one is named
    r = client.post("/v2/models/gbc/infer", json=oip(x[:2], outputs=[{"name": "predict"}]))
    assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
    error(
        client.post("/v2/models/gbc/infer", json=oip(x[:2], outputs=[{"name": "proba"}])),
        400,
        "outputs[0].name",
    )


def test_oip_binary_tensor_extension(client: TestClient[Litestar], data: dict[str, Any]) -> None:
    x = data["x"][:4]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [4, 20],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    ).encode()
    r = client.post(
        "/v2/models/gbc/infer",
        content=header + x.astype("<f8").tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == data["gbc"].predict(x).tolist()
    short = header + x.astype("<f8").tobytes()[:-8]
    error(
        client.post(
            "/v2/models/gbc/infer",
            content=short,
            headers={"Inference-Header-Content-Length": str(len(header))},
        ),
        400,
    )


ROW = [0.5] * 20


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{nope", "body"),
        (b"[1, 2]", None),
        (b'{"inputs": []}', "inputs"),
        (b'{"inputs": [{"name": "input", "shape": [1, 20], "data": []}]}', "inputs[0]"),
        (
            b'{"inputs": [{"name": "input", "shape": "1,20", "datatype": "FP64", "data": []}]}',
            "inputs[0].shape",
        ),
        (
            json.dumps({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP128", "data": ROW}]}),
            "input",
        ),
        # data length must equal prod(shape): 19 values for [1, 20]
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP64", "data": ROW[1:]}]}
            ),
            "input",
        ),
        # ... for BYTES too (MLServer answers 500 here)
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [3], "datatype": "BYTES", "data": ["a", "b"]}]}
            ),
            "input",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": ["1"] * 20}]}
            ),
            "input",
        ),
        (
            json.dumps({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "INT64", "data": ROW}]}),
            "input",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT8", "data": [1, 300]}]}
            ),
            "input",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3]]}]}
            ),
            "input",
        ),
        (
            json.dumps({"inputs": [{"name": "input", "shape": [-1, 20], "datatype": "FP64", "data": ROW}]}),
            "input",
        ),
        (
            json.dumps({"inputs": [{"name": "input", "shape": [0, 20], "datatype": "FP64", "data": []}]}),
            "inputs",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP64", "data": ROW}] * 2}
            ),
            "input",
        ),
    ],
)
def test_oip_malformed_requests_are_400_naming_the_field(
    client: TestClient[Litestar], body: str | bytes, field: str | None
) -> None:
    content = body.encode() if isinstance(body, str) else body
    error(client.post("/v2/models/gbc@champion/infer", content=content), 400, field)


@pytest.mark.parametrize(
    ("tensor", "field", "words"),
    [
        ({"name": "x", "shape": [1, 20], "datatype": "FP64", "data": ROW}, "x", "unexpected input"),
        ({"name": "input", "shape": [1, 19], "datatype": "FP64", "data": ROW[1:]}, "input", "shape [N, 20]"),
        ({"name": "input", "shape": [20], "datatype": "FP64", "data": ROW}, "input", "shape"),
        (
            {"name": "input", "shape": [1, 20], "datatype": "BYTES", "data": ["a"] * 20},
            "input",
            "dtype float64",
        ),
    ],
)
def test_signature_mismatch_is_422_naming_the_field(
    client: TestClient[Litestar], tensor: dict[str, Any], field: str, words: str
) -> None:
    body = error(client.post("/v2/models/gbc@champion/infer", json={"inputs": [tensor]}), 422, field)
    assert words in body["error"]


def test_unknown_models_versions_and_bad_references(client: TestClient[Litestar]) -> None:
    error(client.post("/v2/models/nope/infer", json=oip([ROW])), 404)
    error(client.post("/v2/models/gbc@staging/infer", json=oip([ROW])), 404)
    error(client.post("/v2/models/gbc/versions/5/infer", json=oip([ROW])), 404)
    error(client.post("/v2/models/gbc/versions/x1/infer", json=oip([ROW])), 400, "version")
    error(client.post("/v2/models/gbc@champion/versions/1/infer", json=oip([ROW])), 400, "name")
    error(client.post("/v2/models/bad%20name/infer", json=oip([ROW])), 400)
    error(client.post("/api/v1/models/nope/predict", json={"instances": [ROW]}), 404)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "litestar"])
def test_body_size_limit_is_413_by_header_and_by_bytes_read(
    services: Services, registry: RegistryService, gbc: Any, home: Path, fast_path: bool
) -> None:
    serving = start_serving(registry, home, replace(FAST, max_body_bytes=4096, fast_path=fast_path))
    try:
        with http_client(services, serving) as client:
            assert client.post("/v2/models/gbc/infer", json=oip([ROW])).status_code == 200
            big = json.dumps(oip([ROW] * 100)).encode()
            error(client.post("/v2/models/gbc/infer", content=big), 413)
            error(client.post("/api/v1/models/gbc/predict", content=big), 413)

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
                for i in range(0, len(big), 1000):
                    yield big[i : i + 1000]

            error(client.post("/v2/models/gbc/infer", content=chunks()), 413)
    finally:
        serving.close()


# -- MLflow bodies -----------------------------------------------------------------------


def test_every_mlflow_body_gives_the_models_predictions(
    client: TestClient[Litestar], data: dict[str, Any]
) -> None:
    x = data["x"][:6]
    expected = data["gbc"].predict(x).tolist()
    cols = [f"f{i}" for i in range(20)]
    bodies: list[dict[str, Any]] = [
        {"instances": x.tolist()},
        {"inputs": x.tolist()},
        {"inputs": {"input": x.tolist()}},
        {"dataframe_split": {"columns": cols, "data": x.tolist()}},
        {"dataframe_split": {"data": x.tolist()}},
        {"dataframe_records": [dict(zip(cols, row, strict=True)) for row in x.tolist()]},
    ]
    for body in bodies:
        r = client.post("/api/v1/models/gbc@champion/predict", json=body)
        assert r.status_code == 200, (body.keys(), r.text)
        assert r.json() == {"predictions": expected}
        assert r.headers["mlbox-model-version"] == "1" and r.headers["x-request-id"]
    csv = ",".join(cols) + "\n" + "\n".join(",".join(repr(v) for v in row) for row in x.tolist()) + "\n"
    r = client.post("/api/v1/models/gbc/predict", content=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected}


@pytest.fixture
def table_model(registry: RegistryService) -> Any:
    """A model fitted on a named frame: its signature is columns, matched by name."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, 200).astype(np.float64),
            "income": rng.normal(50, 10, 200),
            "score": rng.normal(0, 1, 200),
        }
    )
    y = (frame["income"] / 50 + frame["score"] > 1).astype(np.int64)
    model = LogisticRegression().fit(frame, y)
    registry.register("table", model=model, example_input=frame.head(3))
    registry.set_alias("table", "champion", 1)
    return model, frame


def test_a_table_model_takes_columns_by_name(
    client: TestClient[Litestar], table_model: Any, serving: ServingService
) -> None:
    model, frame = table_model
    serving.sync()
    rows = frame.head(5)
    expected = model.predict(rows).tolist()
    records = [
        {"score": r.score, "age": r.age, "income": r.income} for r in rows.itertuples()
    ]  # shuffled keys
    r = client.post("/api/v1/models/table@champion/predict", json={"dataframe_records": records})
    assert r.json() == {"predictions": expected}, r.text
    split = {"columns": ["income", "score", "age"], "data": rows[["income", "score", "age"]].values.tolist()}
    assert (
        client.post("/api/v1/models/table/predict", json={"dataframe_split": split}).json()["predictions"]
        == expected
    )
    assert client.post("/api/v1/models/table/predict", json={"instances": rows.values.tolist()}).json() == {
        "predictions": expected
    }
    csv = rows[["score", "income", "age"]].to_csv(index=False)
    r = client.post("/api/v1/models/table/predict", content=csv, headers={"Content-Type": "text/csv"})
    assert r.json() == {"predictions": expected}, r.text
    inputs = [
        {"name": c, "shape": [5, 1], "datatype": "FP64", "data": rows[c].tolist()} for c in rows.columns
    ]
    r = client.post("/v2/models/table/infer", json={"inputs": inputs})
    assert r.json()["outputs"][0]["data"] == expected
    meta = client.get("/v2/models/table").json()
    assert [i["name"] for i in meta["inputs"]] == ["age", "income", "score"]
    bad = [{"agee": 1.0, "income": 2.0, "score": 3.0}]
    body = error(client.post("/api/v1/models/table/predict", json={"dataframe_records": bad}), 422, "age")
    assert "missing column" in body["error"]
    error(client.post("/api/v1/models/table/predict", json={"instances": [[1.0, 2.0]]}), 422, "inputs[0]")
    error(
        client.post(
            "/api/v1/models/table/predict",
            json={"dataframe_records": [{"age": "old", "income": 1.0, "score": 1.0}]},
        ),
        422,
        "age",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instances": [ROW], "inputs": [ROW]}, "body"),
        ({"rows": [ROW]}, "body"),
        ({"instances": [ROW], "extra": 1}, "extra"),
        ({"instances": []}, "instances"),
        ({"instances": [ROW, ROW[1:]]}, "inputs"),
        ({"dataframe_records": [{"a": 1}, {"b": 2}]}, "dataframe_records[1]"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "dataframe_split.data[0]"),
        ({"dataframe_split": [[1]]}, "dataframe_split"),
    ],
)
def test_mlflow_malformed_bodies_are_400(
    client: TestClient[Litestar], body: dict[str, Any], field: str
) -> None:
    error(client.post("/api/v1/models/gbc/predict", json=body), 400, field)


def test_malformed_json_and_csv_are_400(client: TestClient[Litestar]) -> None:
    error(client.post("/api/v1/models/gbc/predict", content=b'{"instances": [1,'), 400, "body")
    error(
        client.post("/api/v1/models/gbc/predict", content=b"", headers={"Content-Type": "text/csv"}),
        400,
        "body",
    )
    error(
        client.post(
            "/api/v1/models/gbc/predict",
            content=b"a,b\n1,2,3,4\n\x00\xff",
            headers={"Content-Type": "text/csv"},
        ),
        400,
    )


# -- backpressure, timeouts, model errors ------------------------------------------------


async def _fire(app: Litestar, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=30) as c:
        return list(await asyncio.gather(*[c.post(url, json=body) for url, body in requests]))


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "litestar"])
async def test_a_full_queue_answers_503_with_retry_after(
    services: Services, registry: RegistryService, home: Path, data: dict[str, Any], fast_path: bool
) -> None:
    registry.register("slow", model=Slow(0.3), flavor="python", example_input=data["x"][:2])
    registry.set_alias("slow", "champion", 1)
    settings = replace(FAST, max_queue=1, retry_after_s=2, fast_path=fast_path)
    serving = await asyncio.to_thread(start_serving, registry, home, settings)
    try:
        app = create_app(services, token=TOKEN, serving=serving)
        responses = await _fire(app, [("/v2/models/slow@champion/infer", oip(data["x"][:1]))] * 6)
    finally:
        await asyncio.to_thread(serving.close)
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 1, codes
    for r in responses:
        if r.status_code == 503:
            error(r, 503)
            assert r.headers["retry-after"] == "2"


async def test_a_request_past_its_timeout_answers_504(
    services: Services, registry: RegistryService, home: Path, data: dict[str, Any]
) -> None:
    registry.register("slow", model=Slow(0.5), flavor="python", example_input=data["x"][:2])
    registry.set_alias("slow", "champion", 1)  # loaded (and warmed) before the clock starts
    serving = await asyncio.to_thread(start_serving, registry, home, replace(FAST, timeout_s=0.1))
    try:
        app = create_app(services, token=TOKEN, serving=serving)
        t0 = time.perf_counter()
        (r,) = await _fire(app, [("/v2/models/slow@champion/infer", oip(data["x"][:1]))])
        assert time.perf_counter() - t0 < 0.45
    finally:
        await asyncio.to_thread(serving.close)
    assert "0.1 s" in error(r, 504)["error"]


def test_a_model_that_raises_answers_422_alone(
    services: Services, registry: RegistryService, home: Path, serving: ServingService, data: dict[str, Any]
) -> None:
    registry.register("picky", model=Picky(), flavor="python", example_input=np.abs(data["x"][:2]))
    with http_client(services, serving) as client:
        body = error(client.post("/v2/models/picky/infer", json=oip(-np.abs(data["x"][:1]))), 422, "inputs")
        assert "negative values" in body["error"]
        ok = client.post("/v2/models/picky/infer", json=oip(np.abs(data["x"][:2])))
        assert (
            ok.status_code == 200 and ok.json()["outputs"][0]["data"] == np.abs(data["x"][:2]).sum(1).tolist()
        )


def test_a_tampered_model_is_refused_with_a_clear_error(
    services: Services, registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    mv = registry.register("victim", model=data["lr"], example_input=data["x"][:2])
    pickled = next(f for f in mv.files if f.path.endswith(".pkl"))
    obj = services.tracking.artifacts.root / "objects" / pickled.sha256[:2] / pickled.sha256[2:]
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-10] + b"0123456789")
    with http_client(services, serving) as client:
        body = error(client.post("/v2/models/victim/infer", json=oip(data["x"][:1])), 503)
        assert "sha256" in body["error"] and "victim" in body["error"]


# -- hot swap, over a real socket ----------------------------------------------------------


@contextlib.contextmanager
def uvicorn_server(app: Litestar) -> Iterator[str]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_moving_an_alias_swaps_versions_under_load_with_no_failed_request(
    services: Services, registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    registry.register("gbc", model=Constant(7), flavor="python", example_input=data["x"][:2])
    x = data["x"][:3]
    v1 = data["gbc"].predict(x).tolist()
    app = create_app(services, token=TOKEN, serving=serving)
    seen: list[list[tuple[int, str, list[int]]]] = [[], [], []]
    stop = threading.Event()

    def fire(k: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/v2/models/gbc@champion/infer", json=oip(x))
                body = r.json()
                seen[k].append(
                    (
                        r.status_code,
                        body.get("model_version", ""),
                        body["outputs"][0]["data"] if r.status_code == 200 else body,
                    )
                )

    with uvicorn_server(app) as url:
        threads = [threading.Thread(target=fire, args=(k, url)) for k in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30  # every client has been answered by v1 before the move
        while not all(seen) and time.monotonic() < deadline:
            time.sleep(0.02)
        registry.set_alias("gbc", "champion", 2)  # no notify: the watcher finds it by polling
        deadline = time.monotonic() + 30
        while not all(s and s[-1][1] == "2" for s in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
    for responses in seen:
        assert responses and all(status == 200 for status, _, _ in responses), responses[-3:]
        versions = [v for _, v, _ in responses]
        assert versions[0] == "1" and versions[-1] == "2"
        switched = versions.index("2")
        assert set(versions[switched:]) == {"2"}, "once swapped, never back"
        for _, version, out in responses:
            assert out == (v1 if version == "1" else [7, 7, 7])


# -- shadow --------------------------------------------------------------------------------


def test_a_challenger_shadows_the_champion_and_both_are_logged(
    services: Services, registry: RegistryService, gbc: Any, home: Path, data: dict[str, Any]
) -> None:
    registry.register("gbc", model=data["lr"], example_input=data["x"][:2])
    registry.set_alias("gbc", "challenger", 2)
    serving = start_serving(registry, home)
    x = data["x"][:20]
    ids = []
    try:
        with http_client(services, serving) as client:
            for i in range(20):
                r = client.post("/v2/models/gbc@champion/infer", json=oip(x[i : i + 1], id=f"s{i}"))
                assert r.json()["model_version"] == "1"
                assert r.json()["outputs"][0]["data"] == data["gbc"].predict(x[i : i + 1]).tolist()
                ids.append(f"s{i}")
            r = client.post("/v2/models/gbc@challenger/infer", json=oip(x[:1], id="direct"))
            assert r.json()["model_version"] == "2"
            deadline = time.monotonic() + 5
            while serving.served()["gbc@challenger"].stats.shadow < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        serving.close()
    log = read_predictions(home / "tables" / "predictions", "gbc")
    champion = log.filter(~log["shadow"])
    shadow = log.filter(log["shadow"])
    assert sorted(champion["request_id"].to_list()) == sorted([*ids, "direct"])
    assert set(champion.filter(champion["request_id"] != "direct")["version"].to_list()) == {1}
    assert sorted(shadow["request_id"].to_list()) == sorted(ids)
    assert set(shadow["version"].to_list()) == {2}
    for row in shadow.iter_rows(named=True):
        i = int(row["request_id"][1:])
        assert json.loads(row["outputs"]) == {"predict": data["lr"].predict(x[i : i + 1]).tolist()}
        assert json.loads(row["inputs"]) == x[i : i + 1].tolist()


def test_a_slow_or_failing_challenger_does_not_touch_champion_responses(
    services: Services, registry: RegistryService, gbc: Any, home: Path, data: dict[str, Any]
) -> None:
    registry.register("gbc", model=Slow(0.5), flavor="python", example_input=data["x"][:2])
    registry.set_alias("gbc", "challenger", 2)
    serving = start_serving(registry, home, replace(FAST, max_queue=2))
    try:
        with http_client(services, serving) as client:
            t0 = time.perf_counter()
            for i in range(8):
                r = client.post("/v2/models/gbc@champion/infer", json=oip(data["x"][i : i + 1]))
                assert r.status_code == 200
                assert r.json()["outputs"][0]["data"] == data["gbc"].predict(data["x"][i : i + 1]).tolist()
            # waiting on the challenger would take 8 x 0.5 s; a mirror is only enqueued (or dropped)
            assert time.perf_counter() - t0 < 2.0
        stats = serving.served()["gbc@challenger"].stats
        assert stats.shadow_errors >= 1  # its queue filled: mirrors were dropped, not waited for
    finally:
        serving.close()


# -- the prediction log equals the responses ------------------------------------------------


def test_logged_predictions_equal_the_responses(
    client: TestClient[Litestar], serving: ServingService, home: Path, data: dict[str, Any]
) -> None:
    x = data["x"]
    answered: dict[str, tuple[list[Any], list[Any]]] = {}
    for i in range(10):
        rows = x[i : i + 1 + i % 4]
        r = client.post("/v2/models/gbc@champion/infer", json=oip(rows))
        answered[r.json()["id"]] = (rows.tolist(), r.json()["outputs"][0]["data"])
        r = client.post(
            "/api/v1/models/gbc/predict",
            json={"instances": rows.tolist()},
            headers={"x-request-id": f"mine-{i}"},
        )
        assert r.headers["x-request-id"] == f"mine-{i}"
        answered[f"mine-{i}"] = (rows.tolist(), r.json()["predictions"])
    serving.close()  # a clean shutdown writes everything
    log = read_predictions(home / "tables" / "predictions", "gbc")
    assert log.height == len(answered)
    for row in log.iter_rows(named=True):
        inputs, outputs = answered[row["request_id"]]
        assert json.loads(row["inputs"]) == inputs
        assert json.loads(row["outputs"]) == {"predict": outputs}
        assert row["version"] == 1 and not row["shadow"] and row["latency_ms"] > 0


# -- composed models --------------------------------------------------------------------


def test_composed_models_equal_calling_their_parts(
    services: Services, registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    x, y = data["x"], data["y"]
    scaler = StandardScaler().fit(x * 10 + 3)
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x * 10 + 3), y)
    registry.register("scaler", model=scaler, example_input=x[:3], options={"method": "transform"})
    registry.register("clf", model=clf, example_input=x[:3])
    registry.set_alias("clf", "champion", 1)
    registry.register("pipe", model=Composition.chain(["scaler/1", "clf@champion"]))
    registry.register("p1", model=data["gbc"], example_input=x[:3], options={"method": "predict_proba"})
    registry.register("p2", model=data["lr"], example_input=x[:3], options={"method": "predict_proba"})
    registry.register("avg", model=Composition.ensemble(["p1", "p2"], "mean"))
    registry.register("c3", model=Constant(1), flavor="python", example_input=x[:3])
    registry.register("vote", model=Composition.ensemble(["gbc/1", "clf/1", "c3"], "vote"))
    rows = x[:25] * 10 + 3
    with http_client(services, serving) as client:
        r = client.post("/api/v1/models/pipe/predict", json={"instances": rows.tolist()})
        assert r.json() == {"predictions": clf.predict(scaler.transform(rows)).tolist()}, r.text
        r = client.post("/v2/models/avg/infer", json=oip(x[:25]))
        out = r.json()["outputs"][0]
        assert out["shape"] == [25, 2]
        expected = (data["gbc"].predict_proba(x[:25]) + data["lr"].predict_proba(x[:25])) / 2
        np.testing.assert_allclose(np.reshape(out["data"], (25, 2)), expected)
        r = client.post("/api/v1/models/vote/predict", json={"instances": rows.tolist()})
        votes = np.stack([data["gbc"].predict(rows), clf.predict(rows), np.ones(25, dtype=np.int64)])
        majority = [
            int(np.bincount(votes[:, i]).argmax()) if len(set(votes[:, i])) < 3 else int(votes[0, i])
            for i in range(25)
        ]
        assert r.json() == {"predictions": majority}
        # a part's alias moves: the composed model follows it after the next pass
        clf2 = LogisticRegression(C=0.001).fit(scaler.transform(x * 10 + 3), 1 - y)
        registry.register("clf", model=clf2, example_input=x[:3])
        registry.set_alias("clf", "champion", 2)
        serving.sync()
        r = client.post("/api/v1/models/pipe/predict", json={"instances": rows.tolist()})
        assert r.json() == {"predictions": clf2.predict(scaler.transform(rows)).tolist()}


def test_a_composed_version_is_its_graph_and_its_parts_must_exist(
    registry: RegistryService, data: dict[str, Any]
) -> None:
    registry.register("a", model=Constant(1), flavor="python", example_input=data["x"][:2])
    with pytest.raises(NotFound) as missing:
        registry.register("ens", model=Composition.ensemble(["a", "b@champion"], "vote"))
    assert missing.value.field == "parts[1]"
    registry.register("b", model=Constant(2), flavor="python", example_input=data["x"][:2])
    registry.set_alias("b", "champion", 1)
    comp = Composition.ensemble(["a", "b@champion"], "vote")
    version = registry.register("ens", model=comp)
    assert version.flavor == "composed" and [f.path for f in version.files] == ["mlbox-model.json"]
    assert Composition.from_manifest(version.manifest) == comp
    with pytest.raises(InvalidInput, match="inside mlbox serving"):
        registry.load("ens/1").predict([[1.0]])
    with pytest.raises(InvalidInput) as info:
        Composition("ensemble", ["a", "b"])
    assert info.value.field == "combine"
    with pytest.raises(InvalidInput):
        Composition.chain(["only-one"])


# -- metrics -------------------------------------------------------------------------------

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
    r"(-?[0-9.]+(e[+-]?[0-9]+)?|\+Inf|-Inf|NaN)$"
)


def test_prometheus_text_parses_and_counts(client: TestClient[Litestar], data: dict[str, Any]) -> None:
    for i in range(5):
        assert client.post("/v2/models/gbc@champion/infer", json=oip(data["x"][i : i + 2])).status_code == 200
    error(client.post("/v2/models/gbc@champion/infer", json=oip(data["x"][:1], name="x")), 422)
    error(client.post("/v2/models/gbc@champion/infer", content=b"{"), 400)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in r.text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            continue
        assert SAMPLE.match(line), line
        key, value = line.rsplit(" ", 1)
        values[key] = float(value)
    labels = 'model="gbc",version="1"'
    assert values[f'mlbox_serving_requests_total{{{labels},code="200"}}'] == 5
    assert values[f'mlbox_serving_requests_total{{{labels},code="422"}}'] == 1
    assert values[f'mlbox_serving_requests_total{{{labels},code="400"}}'] == 1
    assert values[f"mlbox_serving_errors_total{{{labels}}}"] == 2
    assert values[f"mlbox_serving_rows_total{{{labels}}}"] == 10
    assert values[f"mlbox_serving_request_duration_seconds_count{{{labels}}}"] == 5
    buckets = [v for k, v in values.items() if k.startswith("mlbox_serving_request_duration_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == 5
    assert values[f'mlbox_serving_batch_size_bucket{{{labels},le="+Inf"}}'] >= 1
    assert values[f"mlbox_serving_queue_depth{{{labels}}}"] == 0


# -- who may call what ---------------------------------------------------------------------


def test_scoring_is_open_and_everything_else_still_needs_the_token(
    services: Services, serving: ServingService
) -> None:
    app = create_app(services, token=TOKEN, serving=serving)
    open_scoring = EXPECTED_OPEN_SCORING  # one list, pinned in tests/test_api.py
    seen = set()
    with TestClient(app, base_url=BASE) as anon:
        for route in app.routes:
            assert isinstance(route, HTTPRoute)
            url = route.path_format.format(**{n: "gbc" if n == "name" else 1 for n in route.path_parameters})
            for method in route.methods:
                seen.add((method, route.path_format))
                status = anon.request(method, url, json=oip([ROW])).status_code
                if (method, route.path_format) in open_scoring:
                    assert status != 401, (method, url)
                elif route.path_format not in ("/api/v1/health", "/schema", "/schema/openapi.json"):
                    assert status == 401, (method, url, status)
        assert seen >= open_scoring
        r = anon.post("/v2/models/gbc/infer", json=oip([ROW]), headers={"Host": "evil.example"})
        error(r, 403, "host")


# -- pure parts ------------------------------------------------------------------------------


def test_codecs_keep_types_honest() -> None:
    named = decode_oip(json.dumps(oip([[1, 2]], datatype="INT32")).encode()).payload.value
    assert named["input"].dtype == np.int32
    rows = decode_mlflow(b'{"instances": [[3, "red"], [4, "blue"]]}')
    from mlbox.registry.signature import ColumnSpec, Schema

    schema = Schema("columns", columns=[ColumnSpec("n", "int64"), ColumnSpec("colour", "string")])
    inputs, n = conform(schema, rows)
    assert n == 2 and inputs["n"].tolist() == [3, 4] and inputs["colour"].tolist() == ["red", "blue"]
    assert jsonable(np.array(["a", "b"], dtype=object)) == ("BYTES", ["a", "b"])
    assert jsonable(np.array([1, 2], dtype=object)) == ("INT64", [1, 2])
    assert jsonable(np.array([b"x"])) == ("BYTES", ["x"])
    frame = pd.DataFrame({"a": [1.0], "b": [2]})
    assert list(to_outputs(frame, "out")) == ["a", "b"]
    assert list(to_outputs((np.ones(1), np.zeros(1)), "out")) == ["output_0", "output_1"]
    assert list(to_outputs([1, 2], "out")) == ["out"]


def test_serving_settings_from_env() -> None:
    s = ServingSettings.from_env(
        {
            "MLBOX_SERVING_MAX_BATCH_SIZE": "8",
            "MLBOX_SERVING_SHADOW": "off",
            "MLBOX_SERVING_MAX_DELAY_MS": "2.5",
            "MLBOX_SERVING_GPUS": "none",
        }
    )
    assert (s.max_batch_size, s.shadow, s.max_delay_ms, s.gpus) == (8, False, 2.5, "none")
    for bad in (
        {"MLBOX_SERVING_MAX_QUEUE": "many"},
        {"MLBOX_SERVING_SHADOW": "maybe"},
        {"MLBOX_SERVING_MAX_BATCH_SIZE": "0"},
    ):
        with pytest.raises(InvalidInput) as info:
            ServingSettings.from_env(bad)
        assert info.value.field == next(iter(bad))


def test_binary_bytes_tensors_decode() -> None:
    items = [b"ab", b"", "é".encode()]
    blob = b"".join(struct.pack("<I", len(v)) + v for v in items)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [3],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    ).encode()
    value = decode_oip(header + blob, len(header)).payload.value["s"]
    assert value.tolist() == ["ab", "", "é"]
    with pytest.raises(InvalidInput):
        decode_oip(header + blob[:-1], len(header))
