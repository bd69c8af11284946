"""End to end scoring: `mlbox up` as a subprocess serves a registered champion over real HTTP.

The model is registered in this process; the appliance, the alias move
(`mlbox models alias`, another subprocess) and this test meet only through
``$MLBOX_HOME`` and a socket on 127.0.0.1. The alias move must switch the
answering version within seconds with no failed request, and after SIGTERM
the prediction log on disk must hold every answered request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlbox
from mlbox.services import Services
from mlbox.serving.predlog import read_predictions
from tests.helpers import MLBOX, stop, wait_announced
from tests.serving.models import SlowToLoad

REPO = Path(__file__).resolve().parents[1]
SWITCH_WITHIN_S = 10.0


def _start_up(env: dict[str, str], cwd: Path, home: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(MLBOX), "up", "--port", "0"], env=env, cwd=cwd, stdout=out, stderr=out)
    return proc, wait_announced(home, proc, log=log)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """Its exit status after SIGTERM; failing the test if it had to be killed (a clean stop is
    what flushes the prediction log)."""
    code = stop(proc)
    if code == -signal.SIGKILL:
        pytest.fail("mlbox up did not stop within 20 s of SIGTERM")
    return code


def _oip(rows: np.ndarray, name: str = "input") -> dict[str, object]:
    return {
        "inputs": [
            {"name": name, "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
        ]
    }


def test_up_serves_the_champion_follows_an_alias_move_and_logs_every_request(
    home: Path, services: Services, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int64)
    first = LogisticRegression().fit(x, y)
    second = LogisticRegression().fit(x, 1 - y)  # answers the opposite class: a switch shows
    registry = services.registry
    registry.register("churn", model=first, example_input=x[:3])
    registry.register("churn", model=second, example_input=x[:3])
    registry.set_alias("churn", "champion", 1)
    rows = x[:8]
    assert not np.array_equal(first.predict(rows), second.predict(rows))

    env = {**subprocess_env, "MLBOX_SERVING_POLL_S": "0.2", "MLBOX_SERVING_LOG_FLUSH_S": "0.2"}
    proc, url = _start_up(env, tmp_path, home, tmp_path / "up.log")
    answered: dict[str, list[int]] = {}  # request id -> the labels the response carried
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
            # scoring routes are open on loopback: no token
            response = client.post("/v2/models/churn@champion/infer", json=_oip(rows))
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["model_name"], body["model_version"]) == ("churn@champion", "1")
            [output] = body["outputs"]
            assert output["shape"] == [len(rows)] and output["datatype"] == "INT64"
            assert output["data"] == first.predict(rows).tolist()
            answered[body["id"]] = output["data"]

            response = client.post("/api/v1/models/churn@champion/predict", json={"instances": rows.tolist()})
            assert response.status_code == 200, response.text
            assert response.json() == {"predictions": first.predict(rows).tolist()}
            assert response.headers["mlbox-model-version"] == "1"
            answered[response.headers["x-request-id"]] = response.json()["predictions"]

            moved = subprocess.run(
                [str(MLBOX), "models", "alias", "churn", "champion", "2", "--note", "e2e promotion"],
                env=subprocess_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert moved.returncode == 0, moved.stderr
            assert moved.stdout.strip() == "churn@champion: 1 -> 2"

            # every request during the swap succeeds; within seconds version 2 answers
            versions = []
            deadline = time.monotonic() + SWITCH_WITHIN_S
            while time.monotonic() < deadline:
                response = client.post("/v2/models/churn@champion/infer", json=_oip(rows))
                assert response.status_code == 200, response.text
                body = response.json()
                versions.append(body["model_version"])
                answered[body["id"]] = body["outputs"][0]["data"]
                expected = (first if body["model_version"] == "1" else second).predict(rows).tolist()
                assert body["outputs"][0]["data"] == expected
                if body["model_version"] == "2":
                    break
                time.sleep(0.02)
            assert versions[-1] == "2", (
                f"still version 1 after {SWITCH_WITHIN_S} s ({len(versions)} requests)"
            )
            assert set(versions) <= {"1", "2"}
            assert versions == sorted(versions)  # never back to the old version
    finally:
        code = _stop(proc)
    assert code == 0, (tmp_path / "up.log").read_text()
    assert not (home / "appliance.json").exists()

    logged = read_predictions(home / "tables" / "predictions", "churn")
    assert sorted(logged["request_id"].to_list()) == sorted(answered)
    assert not logged["shadow"].any()
    assert set(logged["version"].to_list()) == {1, 2}
    for rid, outputs_text in zip(logged["request_id"], logged["outputs"], strict=True):
        # the logged outputs are the ones the response carried
        logged_out = json.loads(outputs_text)
        values = next(iter(logged_out.values())) if isinstance(logged_out, dict) else logged_out
        assert np.asarray(values).ravel().tolist() == answered[rid], rid


def test_up_is_ready_for_every_aliased_model_when_it_announces_itself(
    home: Path, services: Services, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """tritonclient's ``is_model_ready`` said False once on a fresh ``mlbox up`` while ``infer`` on the
    same name worked: the appliance announced itself before its aliased models were loaded, and
    ``/v2/models/NAME/ready`` only looked at routes already asked for. Both are checked here, on a
    model that takes 2 s to load, and on one logged and registered the README's way."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 4))
    services.registry.register("slow", model=SlowToLoad(2.0), flavor="python", example_input=x[:2])
    services.registry.set_alias("slow", "champion", 1)
    with mlbox.start_run("fit", log_code=False, log_environment=False) as run:
        model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64))
        mlbox.log_model(model, "model", example_input=x[:5])
    mlbox.register_model("lr", run_id=run.id)
    services.registry.set_alias("lr", "champion", 1)

    env = {**subprocess_env, "PYTHONPATH": os.pathsep.join([str(REPO), subprocess_env.get("PYTHONPATH", "")])}
    proc, url = _start_up(env, tmp_path, home, tmp_path / "up.log")
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
            # the first requests after the announcement: no retry, no wait
            assert client.get("/v2/health/ready").status_code == 200
            for name in ("slow", "slow@champion", "lr", "lr@champion"):
                response = client.get(f"/v2/models/{name}/ready")
                assert response.status_code == 200, (name, response.text)
                assert response.json() == {"name": name, "ready": True}
            assert client.get("/v2/models/slow@champion/versions/1/ready").status_code == 200
            response = client.post("/v2/models/slow/infer", json=_oip(x[:3]))
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == x[:3, 0].tolist()
            # the README's model has the signature inferred at log_model: metadata lists it, and
            # an input name it does not take is refused
            meta = client.get("/v2/models/lr@champion").json()
            assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
            assert meta["outputs"] == [{"name": "output_0", "datatype": "INT64", "shape": [-1]}]
            response = client.post("/v2/models/lr@champion/infer", json=_oip(x[:3], name="features"))
            assert response.status_code == 422 and response.json()["field"] == "features", response.text
    finally:
        code = _stop(proc)
    assert code == 0, (tmp_path / "up.log").read_text()
