"""Which checks of an evaluation breach their thresholds: pure, so alert logic is tested alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlbox.monitoring.schemas import DEFAULT_THRESHOLDS, CheckResult, Evaluation

LOWER_IS_WORSE = {"accuracy", "estimated_accuracy"}


def check_results(
    evaluation: Evaluation, checks: Sequence[str], thresholds: Mapping[str, float]
) -> list[CheckResult]:
    """One result per check that has something to say (accuracy needs labels, a prediction
    drift needs a prediction in the reference): a missing figure is no breach."""
    out: list[CheckResult] = []
    for name in checks:
        limit = float(thresholds.get(name, DEFAULT_THRESHOLDS[name]))
        value: float | None
        if name == "drift":
            value = evaluation.drift_share
            drifted = [v.column for v in evaluation.drift if v.drifted]
            message = f"{len(drifted)} of {len(evaluation.drift)} features drifted ({value:.0%})"
            if drifted:
                message += ": " + ", ".join(drifted[:8]) + (" …" if len(drifted) > 8 else "")
        elif name == "prediction_drift":
            pd_ = evaluation.prediction_drift
            if pd_ is None:
                continue
            value = 1.0 if pd_.drifted else 0.0
            message = f"predictions {'drifted' if pd_.drifted else 'stable'} ({pd_.test} {pd_.statistic:.3g})"
        elif name == "quality":
            problems = evaluation.quality.problems
            value = float(len(problems))
            message = "; ".join(problems[:5]) if problems else "no data-quality problems"
        elif name == "bias":
            if evaluation.bias is None:
                continue
            value = evaluation.bias.demographic_parity_difference
            message = f"demographic-parity difference {value:.3f} over {evaluation.bias.column!r}"
        elif name == "outliers":
            value = evaluation.outlier_rate
            message = f"outlier rate {value:.1%}"
        else:
            value = getattr(evaluation.performance, name)
            if value is None:
                continue
            message = f"{name.replace('_', ' ')} {value:.3f}"
        breached = value < limit if name in LOWER_IS_WORSE else value > limit
        if breached:
            message += f" ({'below' if name in LOWER_IS_WORSE else 'above'} {limit:g})"
        out.append(CheckResult(name, bool(breached), value, limit, message))
    return out
