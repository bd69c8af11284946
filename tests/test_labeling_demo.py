"""The demo's labeling step, called on its own over a registered digits champion."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from mlbox.demo.digits import load_split
from mlbox.demo.labeling import labeling
from mlbox.demo.registration import Registered
from mlbox.demo.state import DemoState
from mlbox.demo.trials import TrialResult
from mlbox.services import Services


def test_labeling_step(services: Services, home: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    split = load_split(seed=0)
    model = LogisticRegression(max_iter=100).fit(split.x_train[:300], split.y_train[:300])
    mv = services.registry.register(
        "digits", model=model, example_input=split.x_train[:2], options={"method": "predict_proba"}
    )
    services.registry.set_alias("digits", "champion", mv.version)
    result = TrialResult(0, "logreg", "sklearn-logreg", 0.9, 0.3, 1.0, "")
    out = io.StringIO()
    state = DemoState(services=services, console=Console(file=out, width=200), quick=True)
    state.split = split
    state.registered = Registered("digits", mv, result, None, None, 0.9)
    labeling(state)
    text = out.getvalue()
    assert "160 pre-labels from digits@champion" in text
    assert "random order needed" in text and "training run" in text
    (project,) = services.labeling.projects()
    assert project.name == "digits-labeling" and project.labels > 0
    # each refit's held-out accuracy, the curve the labeling screen draws, up to the last label
    curve = services.labeling.accuracy_history(project.name)
    assert curve and [h.labels for h in curve] == sorted({h.labels for h in curve})
    assert curve[-1].labels == project.labels and f"reached {curve[-1].accuracy:.3f}" in text
    exports = services.labeling.db.query("SELECT digest, run_id FROM label_exports")
    assert len(exports) == 1
    # the training run that read the export shows it as its data version
    train_runs = [
        r[0]
        for r in services.tracking.db.query("SELECT run_id FROM datasets WHERE digest = ?", (exports[0][0],))
    ]
    assert len(train_runs) == 2 and exports[0][1] in train_runs  # the export's record and the training run
