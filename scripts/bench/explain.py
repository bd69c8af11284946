"""Explanations benchmark: what a per-prediction explanation costs, per method and model kind.

For each case a model is trained on a scikit-learn bundled dataset (breast cancer: 30 features;
digits: 64), registered in a temporary home, and explained through `Explanations` as the HTTP
route does (the version loaded once, then kept):

* ``cold``: the first explanation in this process (imports of shap/lime/captum, loading and
  verifying the version, building the explainer);
* ``1 row`` and ``20 rows``: the median warm latency of a request of that many rows;
* ``direct``: the same attribution called on shap/captum directly with the estimator in hand
  (for TreeExplainer and integrated gradients), so the figure beside it is mlbox's overhead;
* ``additivity``: the largest |sum(values) − (prediction − expected)| seen (SHAP exact, IG up to
  the integral), a correctness check: the script exits 1 when SHAP's passes 1e-4 (shap walks
  trees with float32 thresholds, so a forest's probability may differ from scikit-learn's by
  ~1e-5 where a row sits near a threshold).

There is no peer product to compare with: the peer is the library itself (``direct``).
Run ``.venv/bin/python scripts/bench/explain.py`` (``--repeat`` for more samples). Figures depend
on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _additivity(found: Any) -> float:
    return max(abs(sum(r.values.values()) - (r.prediction - r.expected_value)) for r in found.rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm samples per figure (median)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    home = tempfile.mkdtemp(prefix="mlbox-bench-explain-")
    os.environ["MLBOX_HOME"] = home

    import torch
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlbox.monitoring.explain import Explanations
    from mlbox.services import Services
    from mlbox.settings import Settings

    services = Services.open(Settings.from_env())
    cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
    digits_x = load_digits().data
    digits_x = digits_x / 16.0
    forest = RandomForestClassifier(n_estimators=200, max_depth=8, random_state=0).fit(cancer_x, cancer_y)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(cancer_x, cancer_y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10)).eval()
    registry = services.registry
    registry.register("forest", model=forest, example_input=cancer_x[:3])
    registry.register("linear", model=linear, example_input=cancer_x[:3])
    registry.register("net", model=net, example_input=digits_x[:2].astype(np.float32))

    def background(name: str, version: int, n: int) -> Any:
        import pandas as pd

        x = digits_x if name == "net" else cancer_x
        return pd.DataFrame(x[:n], columns=[f"input_{j}" for j in range(x.shape[1])])

    explanations = Explanations(registry, background)
    cases: list[tuple[str, str, str, np.ndarray]] = [
        ("forest (200 trees)", "forest", "shap", cancer_x),
        ("forest (200 trees)", "forest", "lime", cancer_x),
        ("logistic pipeline", "linear", "shap", cancer_x),
        ("torch MLP (digits)", "net", "ig", digits_x.astype(np.float32)),
    ]
    worst_shap = 0.0
    print(
        f"{'model':<20} {'method':<6} {'explainer':<28} {'cold s':>7} {'1 row ms':>9} {'20 rows ms':>11}"
        f" {'direct 20 ms':>13} {'additivity':>11}"
    )
    for label, name, method, x in cases:
        t0 = time.perf_counter()
        first = explanations.explain(name, x[:1], method=method)
        cold = time.perf_counter() - t0
        one = _median_ms(partial(explanations.explain, name, x[:1], method=method), args.repeat)
        twenty_rows = x[100:120]
        found = explanations.explain(name, twenty_rows, method=method)
        twenty = _median_ms(partial(explanations.explain, name, twenty_rows, method=method), args.repeat)
        direct = "—"
        if name == "forest" and method == "shap":
            import shap

            tree = shap.TreeExplainer(
                forest, data=cancer_x[:100], feature_perturbation="interventional", model_output="raw"
            )
            direct = f"{_median_ms(partial(tree.shap_values, twenty_rows, check_additivity=False), args.repeat):.1f}"
        if name == "net":
            from captum.attr import IntegratedGradients

            ig = IntegratedGradients(net)
            t = torch.from_numpy(twenty_rows)

            attribute = partial(
                ig.attribute, t, baselines=torch.zeros_like(t), target=net(t).argmax(1), n_steps=64
            )
            direct = f"{_median_ms(attribute, args.repeat):.1f}"
        error = _additivity(found) if method != "lime" else float("nan")
        if method == "shap":
            worst_shap = max(worst_shap, error)
        print(
            f"{label:<20} {method:<6} {first.explainer:<28} {cold:>7.2f} {one:>9.1f} {twenty:>11.1f}"
            f" {direct:>13} {error:>11.2e}"
        )
    ok = worst_shap <= 1e-4
    print(f"SHAP additivity (≤ 1e-4): {'ok' if ok else 'FAIL'} (worst {worst_shap:.2e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
