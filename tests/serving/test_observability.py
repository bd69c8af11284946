"""What serving records: the prediction log equals the responses, and the Prometheus text
parses and counts requests, errors, rows and batches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from mlbox.serving.predlog import read_predictions
from mlbox.serving.service import ServingService
from tests.helpers import error
from tests.serving.server import oip


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
        assert json.loads(row["outputs"]) == {"output_0": outputs}
        assert row["version"] == 1 and not row["shadow"] and row["latency_ms"] > 0


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
