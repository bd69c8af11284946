"""The Open Inference Protocol (``/v2``) over HTTP: metadata, inference, the binary tensor
extension, and malformed, mismatched or oversized requests answered 4xx naming the field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.service import ServingService
from tests.helpers import error
from tests.serving.server import FAST, ROW, http_client, oip, start_serving


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
    # output names come from the signature, not the flavor: one array is output_0 (not sklearn's "predict")
    assert meta["outputs"] == [{"name": "output_0", "datatype": "INT64", "shape": [-1]}]
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
        assert out["name"] == "output_0" and out["datatype"] == "INT64" and out["shape"] == [rows]
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
    # requested outputs: a known one passes, the name older releases answered still works (under
    # the name asked for), an unknown one is named
    r = client.post("/v2/models/gbc/infer", json=oip(x[:2], outputs=[{"name": "output_0"}]))
    assert [o["name"] for o in r.json()["outputs"]] == ["output_0"]
    r = client.post("/v2/models/gbc/infer", json=oip(x[:2], outputs=[{"name": "predict"}]))
    assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
    assert r.json()["outputs"][0]["data"] == model.predict(x[:2]).tolist()
    error(
        client.post("/v2/models/gbc/infer", json=oip(x[:2], outputs=[{"name": "proba"}])),
        422,
        "outputs[0].name",
    )


def test_output_names_survive_an_alias_moving_to_another_flavor(
    client: TestClient[Litestar], registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    """A client asking for ``output_0`` by name: answered by the scikit-learn champion (whose output
    was called ``predict``) and, after the alias moves, by a torch model (``output_0`` already)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Linear(20, 1).eval()
    registry.register("gbc", model=net, example_input=data["x"][:2].astype(np.float32))
    x = data["x"][:3].astype(np.float32)
    body = oip(x, datatype="FP32", outputs=[{"name": "output_0"}])
    for version in (1, 2):
        registry.set_alias("gbc", "champion", version)
        serving.sync()
        meta = client.get("/v2/models/gbc@champion").json()
        assert [o["name"] for o in meta["outputs"]] == ["output_0"], meta
        r = client.post("/v2/models/gbc@champion/infer", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == str(version)
        assert [o["name"] for o in r.json()["outputs"]] == ["output_0"]


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


def _tensor(**changes: Any) -> str:
    """An OIP body of one ``input`` tensor ([1, 20] FP64 of `ROW`) with ``changes`` applied."""
    tensor = {"name": "input", "shape": [1, 20], "datatype": "FP64", "data": ROW, **changes}
    return json.dumps({"inputs": [tensor]})


# The rule (mlbox.api.serving): a body that cannot be read as a request is 400 ...
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{nope", "body"),
        (b"[1, 2]", None),
        (b'{"inputs": [{"name": "input", "shape": [1, 20], "data": []}]}', "inputs[0]"),
        (
            b'{"inputs": [{"name": "input", "shape": "1,20", "datatype": "FP64", "data": []}]}',
            "inputs[0].shape",
        ),
        (b'{"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP64"}]}', "input"),
    ],
)
def test_oip_unreadable_requests_are_400_naming_the_field(
    client: TestClient[Litestar], body: str | bytes, field: str | None
) -> None:
    content = body.encode() if isinstance(body, str) else body
    error(client.post("/v2/models/gbc@champion/infer", content=content), 400, field)


# ... and one that was read but whose tensors cannot be scored is 422, like a signature mismatch
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"inputs": []}', "inputs"),
        (_tensor(datatype="FP128"), "input"),
        # data length must equal prod(shape): 19 values for [1, 20]
        (_tensor(data=ROW[1:]), "input"),
        # ... for BYTES too (MLServer answers 500 here)
        (_tensor(shape=[3], datatype="BYTES", data=["a", "b"]), "input"),
        (_tensor(datatype="FP32", data=["1"] * 20), "input"),
        (_tensor(datatype="INT64"), "input"),
        (_tensor(shape=[1, 2], datatype="INT8", data=[1, 300]), "input"),
        (_tensor(shape=[2, 2], data=[[1, 2], [3]]), "input"),
        (_tensor(shape=[-1, 20]), "input"),
        (_tensor(shape=[0, 20], data=[]), "inputs"),
        (
            json.dumps(
                {"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP64", "data": ROW}] * 2}
            ),
            "input",
        ),
    ],
)
def test_oip_tensors_that_contradict_themselves_are_422_naming_the_field(
    client: TestClient[Litestar], body: str | bytes, field: str | None
) -> None:
    content = body.encode() if isinstance(body, str) else body
    error(client.post("/v2/models/gbc@champion/infer", content=content), 422, field)


@pytest.mark.parametrize(
    ("tensor", "field", "words"),
    [
        ({"name": "x", "shape": [1, 20], "datatype": "FP64", "data": ROW}, "x", "unexpected input"),
        ({"name": "input", "shape": [1, 19], "datatype": "FP64", "data": ROW[1:]}, "input", "shape [N, 20]"),
        ({"name": "input", "shape": [20], "datatype": "FP64", "data": ROW}, "input", "shape"),
        (
            {"name": "input", "shape": [1, 20], "datatype": "BYTES", "data": ["a"] * 20},
            "input",
            "expected datatype FP64",
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
    error(client.post("/v2/models/gbc/versions/x1/infer", json=oip([ROW])), 404, "version")
    error(client.post("/v2/models/gbc/versions/0/infer", json=oip([ROW])), 404, "version")
    error(client.get("/v2/models/gbc/versions/99999999999/ready"), 404, "version")
    error(client.post("/v2/models/gbc:1/versions/1/infer", json=oip([ROW])), 400, "name")
    error(client.post("/v2/models/bad%20name/infer", json=oip([ROW])), 400)
    error(client.post("/api/v1/models/nope/predict", json={"instances": [ROW]}), 404)


def test_model_ready_answers_from_what_is_loaded_and_loads_nothing(
    client: TestClient[Litestar], registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    """An open readiness probe never loads a version (issue 12): ``gbc`` is ready while its newest
    version is the loaded champion, and a newer unaliased version is reported not loaded, and stays so."""
    assert client.get("/v2/models/gbc/ready").json() == {"name": "gbc", "ready": True}
    registry.register("gbc", model=data["lr"], example_input=data["x"][:2])  # version 2, no alias
    for _ in range(3):
        for path in ("/v2/models/gbc/ready", "/v2/models/gbc/versions/2/ready"):
            body = error(client.get(path), 503)
            assert "gbc/2 is not loaded" in body["error"]
        time.sleep(FAST.poll_s * 2)
    assert {dep.number for dep in serving.served().values()} == {1}
    assert client.get("/v2/models/gbc/versions/1/ready").json() == {"name": "gbc", "ready": True}
    assert client.get("/v2/models/gbc@champion/ready").json() == {"name": "gbc@champion", "ready": True}


def test_the_versions_an_alias_lists_are_served_under_the_alias(
    client: TestClient[Litestar], data: dict[str, Any]
) -> None:
    """``GET /v2/models/NAME@ALIAS`` lists versions; ``NAME@ALIAS/versions/N/...`` serves each of them
    (it answered 400 before), and a version or alias the model does not have is 404."""
    meta = client.get("/v2/models/gbc@champion").json()
    assert meta["versions"] == ["1"]
    for v in meta["versions"]:
        r = client.post(f"/v2/models/gbc@champion/versions/{v}/infer", json=oip(data["x"][:2]))
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == v
        assert r.json()["outputs"][0]["data"] == data["gbc"].predict(data["x"][:2]).tolist()
        assert client.get(f"/v2/models/gbc@champion/versions/{v}").json()["inputs"] == meta["inputs"]
        ready = client.get(f"/v2/models/gbc@champion/versions/{v}/ready")
        assert ready.json() == {"name": "gbc@champion", "ready": True}
    error(client.post("/v2/models/gbc@champion/versions/2/infer", json=oip([ROW])), 404)
    error(client.get("/v2/models/gbc@champion/versions/2"), 404)
    error(client.get("/v2/models/gbc@champion/versions/2/ready"), 404)
    error(client.post("/v2/models/gbc@staging/versions/1/infer", json=oip([ROW])), 404)
    error(client.get("/v2/models/gbc@staging/versions/1/ready"), 404)


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
