"""Batched requests, JSON and binary: the same answers at 1, 100 and 1,000 rows, in every
combination of JSON or binary inputs and outputs (the OIP binary tensor extension), through the
fast path and the Litestar handlers alike (the ``serving`` fixture runs each test on both)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.serving.codecs import decode_oip
from tests.helpers import error
from tests.serving.server import oip

ROWS = (1, 100, 1000)


def _binary_request(x: np.ndarray, **extra: Any) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(x.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            **extra,
        }
    ).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    return header + x.astype("<f8").tobytes(), headers


def _outputs(response: Any) -> dict[str, np.ndarray]:
    """Each output of an OIP answer as an array, whether it came as JSON or as raw bytes."""
    assert response.status_code == 200, response.text
    length = response.headers.get("inference-header-content-length")
    body = response.content
    header = json.loads(body if length is None else body[: int(length)])
    offset = 0 if length is None else int(length)
    arrays: dict[str, np.ndarray] = {}
    for out in header["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arrays[out["name"]] = np.asarray(out["data"]).reshape(out["shape"])
            continue
        assert out["datatype"] == "INT64" and "data" not in out
        arrays[out["name"]] = np.frombuffer(body[offset : offset + size], dtype="<i8").reshape(out["shape"])
        offset += size
    assert offset == (0 if length is None else len(body))  # every byte belongs to an output
    return arrays


@pytest.mark.parametrize("rows", ROWS)
def test_json_and_binary_requests_answer_the_same(
    client: TestClient[Litestar], data: dict[str, Any], rows: int
) -> None:
    x = np.random.default_rng(rows).normal(size=(rows, 20))
    expected = data["gbc"].predict(x)
    answers = {"json": _outputs(client.post("/v2/models/gbc/infer", json=oip(x)))}
    body, headers = _binary_request(x)
    plain = client.post("/v2/models/gbc/infer", content=body, headers=headers)
    assert "inference-header-content-length" not in plain.headers  # outputs as JSON unless asked
    answers["binary in"] = _outputs(plain)
    body, headers = _binary_request(x, parameters={"binary_data_output": True})
    everything = client.post("/v2/models/gbc/infer", content=body, headers=headers)
    assert everything.headers["content-type"].startswith("application/octet-stream")
    answers["binary in and out"] = _outputs(everything)
    body, headers = _binary_request(x, outputs=[{"name": "output_0", "parameters": {"binary_data": True}}])
    answers["binary output asked by name"] = _outputs(
        client.post("/v2/models/gbc/infer", content=body, headers=headers)
    )
    json_in_binary_out = oip(x, outputs=[{"name": "output_0", "parameters": {"binary_data": True}}])
    answers["json in, binary out"] = _outputs(client.post("/v2/models/gbc/infer", json=json_in_binary_out))
    for how, outputs in answers.items():
        assert list(outputs) == ["output_0"], how
        assert outputs["output_0"].shape == (rows,), how
        assert np.array_equal(outputs["output_0"], expected), how


def test_binary_inputs_are_a_view_of_the_request_body() -> None:
    x = np.arange(40, dtype="<f8").reshape(2, 20)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 20],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 320},
                }
            ]
        }
    ).encode()
    body = header + x.tobytes()
    arr = decode_oip(body, len(header)).payload.value["input"]
    assert np.array_equal(arr, x)
    assert not arr.flags.owndata and np.shares_memory(arr, np.frombuffer(body, dtype=np.uint8))


@pytest.mark.parametrize(
    ("datatype", "values", "dtype"),
    [
        ("FP64", [1.5, -2, 3e300], np.float64),
        ("FP32", [1.5, -2, 0.1], np.float32),
        ("INT64", [1, -(2**63), 2**63 - 1], np.int64),
        ("INT8", [1, -128, 127], np.int8),
        ("UINT32", [0, 7, 2**32 - 1], np.uint32),
        ("BOOL", [True, False, True], np.bool_),
    ],
)
def test_typed_json_tensors_equal_numpys_reading(datatype: str, values: list[Any], dtype: Any) -> None:
    body = json.dumps(
        {"inputs": [{"name": "a", "shape": [3], "datatype": datatype, "data": values}]}
    ).encode()
    arr = decode_oip(body).payload.value["a"]
    assert arr.dtype == np.dtype(dtype)
    assert np.array_equal(arr, np.array(values).astype(dtype))


def test_json_tensors_the_typed_decoder_refuses_are_still_worded(client: TestClient[Litestar]) -> None:
    cases = [
        (
            {"name": "input", "shape": [1, 20], "datatype": "FP64", "data": [True] + [0.5] * 19},
            "inputs[0].data",
        ),
        ({"name": "input", "shape": [1, 20], "datatype": "INT8", "data": [300] + [1] * 19}, "input"),
        ({"name": "input", "shape": [1, 20], "datatype": "INT64", "data": [1.5] + [1] * 19}, "input"),
        ({"name": "input", "shape": [1, 20], "datatype": "FP64", "data": [0.5] * 19}, "input"),
        ({"name": "input", "shape": [1, 20], "datatype": "FP64", "data": ["0.5"] * 20}, "input"),
    ]
    for tensor, field in cases:
        error(client.post("/v2/models/gbc/infer", json={"inputs": [tensor]}), 422, field)
