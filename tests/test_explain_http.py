"""The explanation routes over a real socket: ``mlbox up`` as a subprocess on 127.0.0.1.

Models and a monitoring reference are stored in this process; the appliance and the test meet
only through ``$MLBOX_HOME`` and HTTP. The answers are checked against the model in hand (SHAP
values add up to its probability), and every bad input is a 4xx naming its field.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mlbox.services import Services
from tests.helpers import MLBOX, error, stop, wait_announced

PREFIX = "/api/v1/models"


@pytest.fixture
def models(services: Services) -> dict[str, Any]:
    rng = np.random.default_rng(4)
    x = pd.DataFrame(rng.normal(size=(300, 4)), columns=["age", "income", "tenure", "visits"])
    y = (x["income"] - x["tenure"] > 0).astype(np.int64)
    forest = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(x, y)
    services.registry.register("churn", model=forest, example_input=x.iloc[:3])
    services.monitoring.set_reference("churn", frame=x)
    linear = LogisticRegression().fit(x.to_numpy(), y)
    services.registry.register("lin", model=linear, example_input=x.to_numpy()[:3])
    services.registry.set_alias("lin", "champion", 1)
    return {"x": x, "forest": forest, "linear": linear}


@pytest.fixture
def client(
    models: dict[str, Any], services: Services, home: Path, subprocess_env: dict[str, str], tmp_path: Path
) -> Iterator[httpx.Client]:
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(MLBOX), "up", "--port", "0"], env=subprocess_env, stdout=out, stderr=out)
    try:
        url = wait_announced(home, proc, log=log)
        auth = {"Authorization": f"Bearer {services.home.token()}"}
        with httpx.Client(base_url=url, headers=auth, timeout=60, trust_env=False) as c:
            yield c
    finally:
        stop(proc)


def test_explain_and_importance_over_http(client: httpx.Client, models: dict[str, Any]) -> None:
    x, forest = models["x"], models["forest"]
    rows = x.iloc[:3]
    records = rows.to_dict(orient="records")
    answer = client.post(f"{PREFIX}/churn/explain", json={"dataframe_records": records})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["explainer"] == "shap.TreeExplainer" and body["background"] == "reference"
    assert body["output"] == "probability" and body["features"] == list(x.columns)
    proba = forest.predict_proba(rows)
    for i, row in enumerate(body["rows"]):
        k = int(np.argmax(proba[i]))
        assert row["target"] == str(k)
        assert sum(row["values"].values()) + row["expected_value"] == pytest.approx(proba[i, k], abs=1e-6)

    split = {"columns": list(x.columns), "data": rows.to_numpy().tolist()}
    lime = client.post(
        f"{PREFIX}/churn/explain", json={"dataframe_split": split, "method": "lime", "version": 1}
    )
    assert lime.status_code == 200, lime.text
    assert lime.json()["explainer"] == "lime.LimeTabularExplainer"
    assert all(row["conditions"] for row in lime.json()["rows"])

    importance = client.get(f"{PREFIX}/churn/importance", params={"n": 60})
    assert importance.status_code == 200, importance.text
    ranked = [f["feature"] for f in importance.json()["features"]]
    assert set(ranked[:2]) == {"income", "tenure"} and importance.json()["rows"] == 60

    # an OIP body for a tensor model with no reference: kernel SHAP has no background
    oip = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": x.iloc[0].tolist()}]}
    error(client.post(f"{PREFIX}/lin/explain", json={**oip, "alias": "champion"}), 409, "reference")
    error(client.get(f"{PREFIX}/lin/importance"), 409, "reference")
    _refuses_bad_input_naming_the_field(client, x)  # on the same appliance: it takes seconds to start


def _refuses_bad_input_naming_the_field(client: httpx.Client, x: pd.DataFrame) -> None:
    instances = {"instances": x.iloc[:1].to_dict(orient="records")}
    url = f"{PREFIX}/churn/explain"
    no_token = httpx.post(client.base_url.join(url), json=instances, timeout=30, trust_env=False)
    assert no_token.status_code == 401
    error(client.post(url, json={**instances, "method": "anchors"}), 400, "method")
    error(client.post(url, json={**instances, "method": "ig"}), 400, "method")
    error(client.post(url, json={**instances, "version": 1, "alias": "champion"}), 400, "version")
    error(client.post(url, json={**instances, "target": "7"}), 400, "target")
    error(client.post(url, json={**instances, "version": 9}), 404)
    error(client.post(f"{PREFIX}/nosuch/explain", json=instances), 404)
    error(client.post(url, content=b"{not json"), 400, "body")
    error(client.post(url, json={"rows": [1, 2]}), 400, "body")
    wrong = {"instances": [{"age": 1.0, "income": 2.0, "tenure": 3.0, "height": 4.0}]}
    answer = client.post(url, json=wrong)
    assert answer.status_code in (400, 422) and answer.json()["field"] in ("visits", "height"), answer.text
    error(client.get(f"{PREFIX}/churn/importance", params={"n": 0}), 400, "n")
    error(client.get(f"{PREFIX}/churn/importance", params={"method": "lime"}), 400, "method")
