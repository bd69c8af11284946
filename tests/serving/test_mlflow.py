"""MLflow-style scoring bodies (``/api/v1/models/NAME/predict``): every body shape and CSV,
columns matched by name for a table model, unreadable bodies answered 400 and bodies read but
unscorable 422 (the rule in `mlbox.api.serving`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sklearn.linear_model import LogisticRegression

from mlbox.registry.service import RegistryService
from mlbox.serving.service import ServingService
from tests.helpers import error
from tests.serving.server import ROW


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
        ({"instances": "rows"}, "instances"),
        ({"dataframe_split": [[1]]}, "dataframe_split"),
        ({"dataframe_split": {"columns": ["a"], "data": [1]}}, "dataframe_split.data[0]"),
    ],
)
def test_mlflow_unreadable_bodies_are_400(
    client: TestClient[Litestar], body: dict[str, Any], field: str
) -> None:
    error(client.post("/api/v1/models/gbc/predict", json=body), 400, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instances": []}, "instances"),
        ({"instances": [ROW, ROW[1:]]}, "inputs"),
        ({"dataframe_records": [{"a": 1}, {"b": 2}]}, "dataframe_records[1]"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "dataframe_split.data[0]"),
    ],
)
def test_mlflow_bodies_read_but_unscorable_are_422(
    client: TestClient[Litestar], body: dict[str, Any], field: str
) -> None:
    """The same rule as OIP (`mlbox.api.serving`): read, but what it holds cannot be scored."""
    error(client.post("/api/v1/models/gbc/predict", json=body), 422, field)


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
