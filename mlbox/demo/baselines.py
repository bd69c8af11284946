"""scikit-learn baselines: logistic regression and a random forest grown in stages.

The forest grows with ``warm_start`` so each stage (more trees) is one point
of a validation curve, the tree-count analogue of an epoch. No logging here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlbox.demo.digits import Split
from mlbox.demo.evaluation import Evaluation, evaluate

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class LogRegConfig:
    C: float
    max_iter: int = 2000


@dataclass(frozen=True)
class ForestConfig:
    n_estimators: int
    max_depth: int | None = None
    grow_by: int = 10
    seed: int = 0

    @property
    def stages(self) -> int:
        return -(-self.n_estimators // self.grow_by)


def fit_logreg(config: LogRegConfig, split: Split) -> tuple[LogisticRegression, Evaluation]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=config.C, max_iter=config.max_iter)
    model.fit(split.x_train, split.y_train)
    return model, evaluate(split.y_val, model.predict_proba(split.x_val))


def grow_forest(
    config: ForestConfig,
    split: Split,
    *,
    on_stage: Callable[[int, Evaluation], None] | None = None,
) -> RandomForestClassifier:
    """Add ``grow_by`` trees at a time; ``on_stage(n_trees, val)`` after each stage."""
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=0, max_depth=config.max_depth, warm_start=True, random_state=config.seed, n_jobs=1
    )
    n_trees = 0
    while n_trees < config.n_estimators:
        n_trees = min(n_trees + config.grow_by, config.n_estimators)
        model.set_params(n_estimators=n_trees)
        model.fit(split.x_train, split.y_train)
        if on_stage is not None:
            on_stage(n_trees, evaluate(split.y_val, model.predict_proba(split.x_val)))
    return model
