"""The demo's labeling step: a scripted annotator labels a slice of the digits by active learning.

The validation digits become a labeling project. The champion registered by
the ``register`` step pre-labels them (through the registry, with its
confidence) and orders the queue by its uncertainty (margin). A scripted
annotator then takes tasks from the service's queue exactly as the labeling
screen does (claim, label, commit), accepting the pre-label when it is right;
every few labels a small model is refitted on the labels so far and the
queue re-scored. The step prints how many labels that took to reach 95% of
the accuracy of a model given every label of the slice, against the labels
random order needed, then exports the labels as a Parquet dataset (recorded
in tracking with its sha256) that a training run reads and logs as its data
version.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mlbox.demo.state import DemoState

PROJECT = "digits-labeling"
ANNOTATOR = "demo-annotator"
TARGET_SHARE = 0.95


def _fit(x: np.ndarray, y: np.ndarray) -> Any:
    import warnings

    from mlbox.labeling.active import fast_model
    from mlbox.labeling.loop import full_classes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return full_classes(fast_model().fit(x, y), 10)


def labeling(state: DemoState) -> None:
    """The step (see the module's docstring)."""
    import mlbox
    from mlbox.labeling.active import labels_to_reach, uncertainty

    assert state.split is not None and state.registered is not None, "register runs first"
    services = state.services
    lab = services.labeling
    console = state.console
    split = state.split
    n_pool = 160 if state.quick else 300
    step = 10
    pool_x, pool_y = split.x_val[:n_pool], split.y_val[:n_pool]
    test_x, test_y = split.x_val[n_pool:], split.y_val[n_pool:]
    if len(test_y) < 30:  # a small split: test on the training digits the pool never saw
        test_x, test_y = split.x_train[:300], split.y_train[:300]
    full_acc = float((_fit(pool_x, pool_y).predict(test_x) == test_y).mean())
    target = TARGET_SHARE * full_acc
    random_needed, _ = labels_to_reach(
        pool_x, pool_y, test_x, test_y, target, strategy="random", seed=state.seed, start=step, step=step
    )

    name = PROJECT
    existing = {p.name for p in lab.projects()}
    suffix = 2
    while name in existing:
        name = f"{PROJECT}-{suffix}"
        suffix += 1
    started = time.monotonic()
    with console.status(f"Labeling {n_pool} digits in active-learning order…"):
        lab.create_project(
            name,
            {"choices": [str(i) for i in range(10)]},
            instructions="Which digit is it? Accept the pre-label with a when it is right.",
        )
        res = lab.add_tasks(name, [{"pixels": [float(v) for v in row], "width": 8} for row in pool_x])
        truth = {res.first_id + i: int(pool_y[i]) for i in range(n_pool)}
        prelabeled = lab.prelabel(name, state.registered.champion_ref, strategy="margin")
        accepted = labeled = 0
        acc = 0.0
        while True:
            tasks = lab.next_tasks(name, ANNOTATOR, step)
            if not tasks:
                break
            for t in tasks:
                value = {"label": str(truth[t.id])}
                from_pre = t.prelabel is not None and t.prelabel.value == value
                accepted += from_pre
                lab.annotate(t.id, ANNOTATOR, value, from_prelabel=from_pre)
                labeled += 1
            chosen = lab.consensus(name)
            ids = sorted(tid for tid in truth if tid in chosen)
            x = pool_x[[tid - res.first_id for tid in ids]]
            y = np.array([truth[tid] for tid in ids])
            if len(set(y.tolist())) < 2:
                continue
            model = _fit(x, y)
            acc = float((model.predict(test_x) == test_y).mean())
            # the point the labeling screen draws on its accuracy curve
            lab.record_accuracy(name, labeled, acc, method="held-out digits", model="demo refit")
            if acc >= target:
                break
            open_ids = [tid for tid, _ in lab.open_task_data(name)]
            if open_ids:
                scores = uncertainty(
                    model.predict_proba(pool_x[[tid - res.first_id for tid in open_ids]]), "margin"
                )
                lab.set_priorities(name, list(zip(open_ids, scores.tolist(), strict=True)))
        lab.release(name, ANNOTATOR)
    out = services.home.root / "demo" / f"{name}-{int(time.time())}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    exported = lab.export(name, out)

    import polars as pl

    frame = pl.read_parquet(out)
    x_lab = np.asarray(frame.get_column("pixels").to_list(), dtype=np.float32)
    y_lab = frame.get_column("label").cast(pl.Int64).to_numpy()
    with mlbox.start_run(
        f"train on {name}", experiment="labeling", log_code=False, log_environment=False
    ) as run:
        info = mlbox.log_dataset(out, "labeled-digits")
        model = _fit(x_lab, y_lab)
        mlbox.log_metric("test_acc", float((model.predict(test_x) == test_y).mean()))
        mlbox.log_param("labels", len(y_lab))
    run_id = run.id if hasattr(run, "id") else None
    saved = 100 * (1 - labeled / max(random_needed, 1))
    console.print(
        f"  [green]✓[/] labeling {name}: {prelabeled} pre-labels from {state.registered.champion_ref},"
        f" {accepted} accepted as they were"
    )
    console.print(
        f"    active learning reached {acc:.3f} (95% of {full_acc:.3f}, every label) with {labeled} labels;"
        f" random order needed {random_needed} ({saved:.0f}% fewer labels) in {time.monotonic() - started:.1f} s"
    )
    console.print(
        f"    exported {exported.rows} labels to {out.name} (sha256 {exported.digest[:12]});"
        f" training run {run_id} reads it as data version {info.digest[:12]}"
    )
