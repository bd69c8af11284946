"""A JSON ``true``/``false`` is not a number: scoring refuses it where numbers are expected
(422 by the status rule of `mlbox.api.serving`, naming the field) instead of scoring 1.0 and 0.0.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.helpers import error
from tests.serving.server import ROW


def tensor(data: Any, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}


@pytest.mark.parametrize(
    ("values", "datatype", "shape"),
    [
        ([[True, False, True, False] * 5], "FP32", [1, 20]),  # bools only, as float32 features
        ([[*ROW[:19], True]], "FP64", [1, 20]),  # one bool among floats (numpy would make it 1.0)
        ([True] * 20, "INT64", [1, 20]),  # true as an INT64 value
        ([1] * 19 + [True], "INT64", [1, 20]),
    ],
    ids=["bools-as-fp32", "bool-among-floats", "bools-as-int64", "bool-among-ints"],
)
def test_oip_refuses_a_bool_where_the_datatype_is_a_number(
    client: TestClient[Litestar], values: Any, datatype: str, shape: list[int]
) -> None:
    r = client.post("/v2/models/gbc/infer", json=tensor(values, datatype, shape))
    body = error(r, 422, "inputs[0].data")
    assert "bool" in body["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [[True, False, True, False] * 5]},
        {"instances": [[*ROW[:19], False]]},
        {"inputs": {"input": [[True] * 20]}},
        {"dataframe_split": {"data": [[True] * 20]}},
    ],
    ids=["inputs-bools", "instances-mixed", "named-bools", "split-bools"],
)
def test_mlflow_bodies_refuse_a_bool_where_the_model_takes_numbers(
    client: TestClient[Litestar], body: dict[str, Any]
) -> None:
    r = client.post("/api/v1/models/gbc@champion/predict", json=body)
    answer = error(r, 422)
    assert "bool" in answer["error"] or "true/false" in answer["error"]


def test_numbers_and_strings_that_say_true_still_score(client: TestClient[Litestar]) -> None:
    r = client.post("/v2/models/gbc/infer", json={**tensor([ROW], "FP64", [1, 20]), "id": "true-false"})
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/models/gbc@champion/predict", json={"instances": [ROW]})
    assert r.status_code == 200, r.text
