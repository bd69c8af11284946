"""Exported models in the MLflow world's own servers: ``mlflow models serve`` and MLServer's MLflow
runtime (``mlserver-mlflow``, what KServe runs for ``modelFormat: mlflow``) score the same rows as
mlbox, for every flavor `tests.test_flavor_export` exports.

Opt-in: set ``MLBOX_TEST_MLFLOW_PEERS=1``. The peers live in their own venv,
a venv of `tests.peer_venvs` (never mlbox's ``.venv``): full MLflow, MLServer 1.7
with its MLflow runtime, and the frameworks the models need (torch pinned to the build mlbox
runs, so pip takes it from the local wheel cache where there is one). Installing it takes
minutes and about 2 GB, more than a CI run can spare; once made it is reused while it imports.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlbox.registry.mlflow_flavors import version_of
from mlbox.services import Services
from tests.helpers import ok
from tests.peer_venvs import VENVS, ensure
from tests.test_flavor_export import CASES, _xy, as_list

if os.environ.get("MLBOX_TEST_MLFLOW_PEERS") != "1":
    pytest.skip(
        "set MLBOX_TEST_MLFLOW_PEERS=1 to install and run MLflow and MLServer", allow_module_level=True
    )

pytestmark = pytest.mark.timeout(1800)  # the first run installs the venv
VENV = VENVS / "mlflow-serve"
REQUIREMENTS = (
    "mlflow",
    "mlserver==1.7.*",
    "mlserver-mlflow==1.7.*",
    "uvloop==0.21.0",  # MLServer 1.7 fails to start its workers under later uvloop releases
    "scikit-learn",
    "onnx",
    "onnxruntime",
    "lightgbm",
    "xgboost-cpu",
    f"torch=={version_of('torch')}",
    "keras",
)
PROBE = "import mlflow, mlserver, mlserver_mlflow, sklearn, onnxruntime, lightgbm, xgboost, torch, keras"
PEER_ENV = {
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",  # the default in 3.17/3.18; set in case a later one flips it
    "KERAS_BACKEND": "torch",
    "MLFLOW_TRACKING_URI": "file:///nonexistent",  # nothing is logged anywhere
}


def peer_env() -> dict[str, str]:
    """The environment peers run in: their venv's scripts first (``mlflow models serve`` starts
    ``uvicorn`` by name), MLflow's pickle switch, Keras on torch."""
    return {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", **PEER_ENV}


def ensure_venv() -> Path:
    """The peers' interpreter; the venv is made on the first run (minutes), then reused."""
    return ensure("mlflow-serve", REQUIREMENTS, PROBE, env=peer_env())


@pytest.fixture(scope="module")
def peer_python() -> Path:
    return ensure_venv()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def started(argv: list[str], ready_url: str, log: Path, env: dict[str, str]) -> Iterator[float]:
    """A peer server process, yielded once ``ready_url`` answers 200 (with its start-up seconds)."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env={**peer_env(), **env})
    try:
        deadline = t0 + 240
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2, trust_env=False).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.25)
        yield time.monotonic() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def exported(services: Services, capsys: pytest.CaptureFixture[str], root: Path) -> dict[str, Any]:
    """Every case registered and exported under ``root``; its rows and mlbox's predictions."""
    x, y = _xy()
    rows = x[::9]
    out: dict[str, Any] = {}
    for case, spec in CASES.items():
        name = case.replace("-", "_")
        services.registry.register(name, model=spec.build(x, y), example_input=x[:4], options=spec.options)
        expected = as_list(services.registry.load(name).predict(rows))
        folder = root / name
        ok(capsys, "models", "export", f"{name}/1", str(folder))
        out[name] = (folder, expected)
    return {"rows": rows, "models": out}


def _same(got: list[np.ndarray], expected: list[np.ndarray], who: str) -> None:
    assert len(got) == len(expected), (who, got)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g, dtype=np.float64).reshape(e.shape), e, rtol=1e-5, atol=1e-6)


def test_mlflow_models_serve_scores_the_exports_as_mlbox_does(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path, peer_python: Path
) -> None:
    made = exported(services, capsys, tmp_path / "models")
    rows = made["rows"]
    mlflow = str(peer_python.parent / "mlflow")
    timings = {}
    for name, (folder, expected) in made["models"].items():
        port = free_port()
        argv = [mlflow, "models", "serve", "-m", str(folder), "--env-manager", "local", "-h", "127.0.0.1",
                "-p", str(port)]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        with started(argv, f"{url}/ping", tmp_path / f"{name}.log", {}) as seconds:
            response = httpx.post(
                f"{url}/invocations", json={"inputs": rows.tolist()}, timeout=60, trust_env=False
            )
        assert response.status_code == 200, (name, response.text)
        predictions = response.json()["predictions"]
        got = list(predictions.values()) if isinstance(predictions, dict) else [predictions]
        _same([np.asarray(g) for g in got], expected, f"mlflow {name}")
        timings[name] = round(seconds, 1)
    print(f"[peers] mlflow models serve start-up seconds: {timings}", file=sys.stderr)


def test_mlserver_mlflow_runtime_scores_the_exports_as_mlbox_does(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path, peer_python: Path
) -> None:
    made = exported(services, capsys, tmp_path / "models")
    rows = made["rows"]
    repo = tmp_path / "repository"
    repo.mkdir()
    port, grpc, metrics = free_port(), free_port(), free_port()
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": 0,
                "host": "127.0.0.1",
            }
        )
    )
    for name, (folder, _) in made["models"].items():
        (repo / name).mkdir()
        settings = {
            "name": name,
            "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": str(folder)},
        }
        (repo / name / "model-settings.json").write_text(json.dumps(settings))
    url = f"http://127.0.0.1:{port}"
    mlserver = str(peer_python.parent / "mlserver")
    ready = f"{url}/v2/health/ready"  # every model in the repository loaded
    with started([mlserver, "start", str(repo)], ready, tmp_path / "mlserver.log", {}) as seconds:
        for name, (_, expected) in made["models"].items():
            body = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP32",
                                "data": rows.ravel().tolist()}]}  # fmt: skip
            response = httpx.post(f"{url}/v2/models/{name}/infer", json=body, timeout=60, trust_env=False)
            assert response.status_code == 200, (name, response.text)
            got = [np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]]
            _same(got, expected, f"mlserver {name}")
    print(f"[peers] MLServer start-up with {len(made['models'])} models: {seconds:.1f} s", file=sys.stderr)
