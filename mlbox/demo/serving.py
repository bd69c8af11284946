"""The demo's serving step: the champion answers real HTTP requests, then shows how to call it.

The appliance is started in this process on a free loopback port (port 0,
so a running ``mlbox up`` on 5151 never collides) exactly as ``mlbox up``
runs it: the serving service loads every aliased model, and the scoring
routes are the open ones. Single-row Open Inference Protocol requests measure
latency; MLflow-style ``instances`` requests score the whole validation set,
whose served accuracy must equal the one the champion's run logged: a server
that answered with another model, or mangled the rows, fails the demo here.
Stopping the appliance flushes the prediction log, which must then hold
every request (the challenger's shadow copies included).

When an appliance already serves this home, the requests go to it instead
(two appliances on one home would fight over its announcement file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.demo.registration import Registered
from mlbox.demo.state import DemoState
from mlbox.store.errors import MlboxError

if TYPE_CHECKING:
    import httpx

OIP_REQUESTS = 200
OIP_REQUESTS_QUICK = 100
INSTANCES_PER_REQUEST = 60
LOG_WAIT_S = 5.0
ONLINE_IMAGES = [0, 1]


@dataclass(frozen=True)
class ServingReport:
    url: str
    oip_requests: int
    predict_requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    served_acc: float
    logged: int
    shadow_logged: int
    curl: str


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code != 200:
        raise MlboxError(f"POST {path} answered {response.status_code}: {response.text[:200]}")
    data: dict[str, Any] = response.json()
    return data


def oip_body(rows: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }


def curl_example(port: int, ref: str, row: np.ndarray) -> str:
    """A copy-pasteable call of the MLflow-style route with one real validation row."""
    values = ",".join(f"{float(v):g}" for v in row)
    return (
        f"curl -s -X POST http://127.0.0.1:{port}/api/v1/models/{ref}/predict "
        f"-H 'Content-Type: application/json' -d '{{\"instances\": [[{values}]]}}'"
    )


def _count_logged(root: Any, name: str, expect: int, wait_s: float) -> tuple[int, int]:
    """(all, shadow) predictions logged for ``name``; polls while a running appliance flushes."""
    from mlbox.serving.predlog import read_predictions

    deadline = time.monotonic() + wait_s
    while True:
        frame = read_predictions(root, name)
        logged, shadow = frame.height, int(frame.get_column("shadow").sum()) if frame.height else 0
        if logged - shadow >= expect or time.monotonic() >= deadline:
            return logged, shadow
        time.sleep(0.1)


def _await_shadows(client: httpx.Client, name: str, expected: int, wait_s: float = LOG_WAIT_S) -> int:
    """Wait (bounded) until ``/metrics`` counts every mirrored request answered by the shadow model.

    Mirrors are fire-and-forget: the champion's answer does not wait for them,
    so the last few may still be scoring when the client is done.
    """
    prefix = "mlbox_serving_shadow_requests_total{"
    deadline = time.monotonic() + wait_s
    while True:
        text = client.get("/metrics").text
        done = sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith(prefix) and f'model="{name}"' in line
        )
        if done >= expected or time.monotonic() >= deadline:
            return done
        time.sleep(0.05)


def score_over_http(
    url: str, ref: str, x: np.ndarray, y: np.ndarray, oip_requests: int, *, shadowed: bool = False
) -> dict[str, Any]:
    """Single-row OIP requests (timed), then the whole set as ``instances``; returns what was measured.

    With ``shadowed`` (a challenger receives mirrored copies) it returns once
    the mirrors are answered too, so stopping the server then loses none.
    """
    import httpx

    name = ref.split("@")[0]
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:
        _post(client, f"/v2/models/{ref}/infer", oip_body(x[:1]))  # warm the connection and the model
        latencies = []
        oip_labels = []
        versions = set()
        started = time.perf_counter()
        for i in range(oip_requests):
            row = x[i % len(x)][None, :]
            t0 = time.perf_counter()
            answer = _post(client, f"/v2/models/{ref}/infer", oip_body(row))
            latencies.append(time.perf_counter() - t0)
            oip_labels.append(answer["outputs"][0]["data"][0])
            versions.add(answer["model_version"])
        elapsed = time.perf_counter() - started
        labels: list[int] = []
        predict_requests = 0
        path = f"/api/v1/models/{ref}/predict"
        for start in range(0, len(x), INSTANCES_PER_REQUEST):
            chunk = x[start : start + INSTANCES_PER_REQUEST]
            labels.extend(_post(client, path, {"instances": chunk.tolist()})["predictions"])
            predict_requests += 1
        if shadowed:
            _await_shadows(client, name, oip_requests + 1 + predict_requests)
    served = np.asarray(labels)
    oip_served = np.asarray(oip_labels)
    idx = np.arange(oip_requests) % len(x)
    if not np.array_equal(oip_served, served[idx]):
        raise MlboxError(f"{name}: the OIP and the MLflow-style routes answered differently")
    return {
        "oip_requests": oip_requests + 1,
        "predict_requests": predict_requests,
        "requests_per_s": oip_requests / elapsed,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "served_acc": float((served == y).mean()),
        "versions": versions,
    }


def serve_champion(state: DemoState) -> ServingReport:
    """Serve ``digits@champion`` over HTTP, score the validation set, stop, count the log."""
    from mlbox.appliance import Appliance

    assert state.split is not None and state.registered is not None, "register runs first"
    reg: Registered = state.registered
    split = state.split
    services = state.services
    ref = reg.champion_ref
    oip_requests = OIP_REQUESTS_QUICK if state.quick else OIP_REQUESTS
    beside = services.home.running_appliance()
    appliance = None
    if beside is None:
        settings = replace(services.settings, port=0)
        appliance = Appliance(replace(services, settings=settings))
        appliance.start_loops()
        url = appliance.start_http()
        if not appliance.serving.wait_ready(timeout=60):
            appliance.stop()
            raise MlboxError(f"{ref} was not ready to serve within 60 s")
    else:
        url = beside.url
    try:
        measured = score_over_http(
            url, ref, split.x_val, split.y_val, oip_requests, shadowed=reg.challenger is not None
        )
    finally:
        if appliance is not None:
            appliance.stop()  # drains the batchers, then flushes the prediction log
    if measured["versions"] != {str(reg.champion.version)}:
        raise MlboxError(f"{ref} was answered by versions {sorted(measured['versions'])}")
    if abs(measured["served_acc"] - reg.champion_run.val_acc) > 1e-9:
        raise MlboxError(
            f"{ref} served accuracy {measured['served_acc']:.4f}, its run logged {reg.champion_run.val_acc:.4f}"
        )
    requests = measured["oip_requests"] + measured["predict_requests"]
    logged, shadow = _count_logged(
        services.home.tables / "predictions", reg.name, requests, 0.0 if appliance else LOG_WAIT_S
    )
    return ServingReport(
        url=url,
        oip_requests=measured["oip_requests"],
        predict_requests=measured["predict_requests"],
        requests_per_s=measured["requests_per_s"],
        p50_ms=measured["p50_ms"],
        p99_ms=measured["p99_ms"],
        served_acc=measured["served_acc"],
        logged=logged,
        shadow_logged=shadow,
        curl=curl_example(services.settings.port, ref, split.x_val[0]),
    )


def serve(state: DemoState) -> None:
    """The step: serve, score, print the numbers and a curl example for ``mlbox up``."""
    assert state.registered is not None, "register runs first"
    ref = state.registered.champion_ref
    with state.console.status(f"Serving {ref} over HTTP and sending requests…"):
        report = serve_champion(state)
    console = state.console
    console.print(
        f"  [green]✓[/] served {ref} at {report.url}: {report.oip_requests} OIP requests "
        f"(/v2/models/{ref}/infer) and {report.predict_requests} instances requests "
        f"(/api/v1/models/{ref}/predict)",
        highlight=False,
    )
    console.print(
        f"  [green]✓[/] single-row: {report.requests_per_s:,.0f} requests/s, "
        f"p50 {report.p50_ms:.2f} ms, p99 {report.p99_ms:.2f} ms (one client, sequential)",
        highlight=False,
    )
    console.print(
        f"  [green]✓[/] served accuracy {report.served_acc:.4f} on the validation set "
        f"(matches the run's val_acc)",
        highlight=False,
    )
    console.print(
        f"  [green]✓[/] {report.logged} predictions logged ({report.shadow_logged} of them shadow copies "
        f"on @challenger) under {state.services.home.tables / 'predictions'}",
        highlight=False,
    )
    if state.features is not None:
        from mlbox.demo.featureset import JOIN_KEY, online_lookup

        ids = ONLINE_IMAGES
        online = online_lookup(state.services.features, state.features, ids)
        values = "; ".join(
            f"{JOIN_KEY} {i}: " + ", ".join(f"{k} {online[k][n]:.3f}" for k in online if k != JOIN_KEY)
            for n, i in enumerate(ids)
        )
        console.print(
            f"  [green]✓[/] online features (materialized, what a model registered with features= "
            f"would look up; ink_at_gain computed on demand from the request's gain 1.5): {values}; "
            "equal to the training set's",
            highlight=False,
        )
    console.print("  score it yourself with `mlbox up` running:", highlight=False)
    console.print(f"    {report.curl}", markup=False, highlight=False, soft_wrap=True)
