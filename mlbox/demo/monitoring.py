"""The demo's monitoring step: a brightened batch of digits, late labels, the monitor, the report.

After the serving step, the champion's reference is its training split; the
appliance is started again (or the one beside is used) and receives a batch
of validation digits brightened by `BRIGHTEN` (a visible shift: pixels gain a
quarter of full scale), one OIP request each. Labels for every other request
are posted late, newest first, to ``POST /api/v1/feedback``. A monitor of the
alias then runs: the step prints the drifted pixels, the realised accuracy on
the labelled half beside the CBPE estimate for the whole batch, the alerts
raised, and the path of the self-contained HTML report.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mlbox.demo.state import DemoState
from mlbox.store.errors import MlboxError

BRIGHTEN = 0.25
SHIFTED = 300
SHIFTED_QUICK = 120
WINDOW_S = 3600.0


def _post(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code != 200:
        raise MlboxError(f"POST {path} answered {response.status_code}: {response.text[:200]}")
    data: dict[str, Any] = response.json()
    return data


def send_shifted(url: str, token: str, ref: str, x: np.ndarray, y: np.ndarray) -> list[str]:
    """One OIP request per brightened row; then labels for every other one, newest first."""
    import httpx

    from mlbox.demo.serving import oip_body

    ids: list[str] = []
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:
        for row in x:
            ids.append(str(_post(client, f"/v2/models/{ref}/infer", oip_body(row[None, :]))["id"]))
        labels = [{"request_id": ids[i], "label": int(y[i])} for i in range(0, len(ids), 2)][::-1]
        client.headers["Authorization"] = f"Bearer {token}"
        _post(client, "/api/v1/feedback", {"labels": labels})
    return ids


def monitoring(state: DemoState) -> None:
    """The step (see the module's docstring)."""
    import pandas as pd

    from mlbox.appliance import Appliance
    from mlbox.monitoring.logframe import feature_names

    assert state.split is not None and state.registered is not None, "register and serve run first"
    services = state.services
    mon = services.monitoring
    ref = state.registered.champion_ref
    split = state.split
    console = state.console
    mv = services.registry.resolve(ref)
    columns = feature_names(mv.signature) or [f"input_{j}" for j in range(split.x_train.shape[1])]
    reference = mon.set_reference(
        ref, frame=pd.DataFrame(split.x_train, columns=columns), source="digits training split"
    )
    n = min(SHIFTED_QUICK if state.quick else SHIFTED, len(split.x_val))
    x = np.clip(split.x_val[:n] + BRIGHTEN, 0.0, 1.0).astype(split.x_val.dtype)
    y = split.y_val[:n]
    started = time.time()
    beside = services.home.running_appliance()
    appliance = None
    with console.status(f"Sending {n} brightened digits to {ref} and posting late labels…"):
        if beside is None:
            appliance = Appliance(replace(services, settings=replace(services.settings, port=0)))
            appliance.start_loops()
            url = appliance.start_http()
            if not appliance.serving.wait_ready(timeout=60):
                appliance.stop()
                raise MlboxError(f"{ref} was not ready to serve within 60 s")
        else:
            url = beside.url
        try:
            send_shifted(url, services.home.token(), ref, x, y)
        finally:
            if appliance is not None:
                appliance.stop()
    evaluation = mon.evaluate(ref, since=started - 1)
    existing = [m for m in mon.list() if f"{m.model}@{m.alias}" == ref]
    monitor = (
        existing[0]
        if existing
        else mon.create_monitor(
            ref, window_s=WINDOW_S, checks=["drift", "outliers", "accuracy", "estimated_accuracy"]
        )
    )
    run = mon.run_monitor(monitor.id)
    report_path = services.home.root / "reports" / f"monitoring-{state.registered.name}.html"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(mon.report(ref, since=started - 1), encoding="utf-8")

    drifted = [v for v in evaluation.drift if v.drifted]
    perf = evaluation.performance
    console.print(
        f"  [green]✓[/] reference of {ref} (version {reference.version}): {reference.rows} training rows,"
        f" {len(reference.columns)} pixels",
        highlight=False,
    )
    console.print(
        f"  [green]✓[/] sent {evaluation.rows} brightened digits (+{BRIGHTEN:g}); posted {perf.labelled} late labels",
        highlight=False,
    )
    top = ", ".join(f"{v.column} ({v.test} {v.statistic:.2f})" for v in drifted[:5])
    console.print(
        f"  [green]✓[/] drift: {len(drifted)} of {len(evaluation.drift)} pixels drifted"
        + (f"; most: {top}" if top else ""),
        highlight=False,
    )
    pdv = evaluation.prediction_drift
    if pdv is not None:
        console.print(
            f"  [green]✓[/] predicted digits {'drifted' if pdv.drifted else 'did not drift'} against the"
            f" reference's own predictions ({pdv.test} {pdv.statistic:.3g})",
            highlight=False,
        )
    real = "–" if perf.accuracy is None else f"{perf.accuracy:.3f}"
    est = "–" if perf.estimated_accuracy is None else f"{perf.estimated_accuracy:.3f}"
    console.print(
        f"  [green]✓[/] accuracy on the shifted batch: realised {real} ({perf.labelled} labelled),"
        f" estimated {est} (CBPE, before labels)",
        highlight=False,
    )
    raised = ", ".join(a.check for a in run.raised) or "none new"
    console.print(
        f"  [green]✓[/] monitor {monitor.id} of {ref} ran: alerts raised: {raised}", highlight=False
    )
    console.print(f"  [green]✓[/] report: {_shown(report_path)}", highlight=False)


def _shown(path: Path) -> str:
    return str(path)
