"""The demo's monitoring step on a real home: a small torch model on the digits split served by
a real appliance over loopback HTTP, a brightened batch, late labels, the monitor and report."""

from __future__ import annotations

import re
from io import StringIO

import numpy as np
import torch
from rich.console import Console

from mlbox.demo.digits import load_split
from mlbox.demo.monitoring import monitoring
from mlbox.demo.registration import Registered
from mlbox.demo.state import DemoState
from mlbox.demo.trials import TrialResult
from mlbox.services import Services


def _softmax_regression(x: np.ndarray, y: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def test_monitoring_step_flags_the_brightened_digits(services: Services) -> None:
    split = load_split()
    model = _softmax_regression(split.x_train, split.y_train)
    mv = services.registry.register("digits", model=model, example_input=split.x_train[:2])
    services.registry.set_alias("digits", "champion", mv.version)
    run = TrialResult(0, "linear", "torch", 0.0, 0.0, 0.0, "")
    out = StringIO()
    state = DemoState(services=services, console=Console(file=out, width=200), quick=True)
    state.split = split
    state.registered = Registered("digits", mv, run, None, None, 0.0)

    monitoring(state)

    text = out.getvalue()
    mon = services.monitoring
    evaluation = mon.evaluate("digits@champion")
    assert evaluation.rows == 120 and evaluation.performance.labelled == 60
    drifted = [v.column for v in evaluation.drift if v.drifted]
    assert len(drifted) > 10, drifted
    m = re.search(r"drift: (\d+) of 64 pixels drifted", text)
    assert m and int(m.group(1)) == len(drifted)
    assert evaluation.prediction_drift is not None and "predicted digits" in text
    real, est = evaluation.performance.accuracy, evaluation.performance.estimated_accuracy
    assert real is not None and est is not None
    assert f"realised {real:.3f} (60 labelled), estimated {est:.3f}" in text
    assert {a.check for a in mon.alerts(open_only=True)} >= {"drift"}
    report = services.home.root / "reports" / "monitoring-digits.html"
    assert f"report: {report}" in text
    html = report.read_text()
    assert "<svg" in html and not re.search(r"https?://", html)
