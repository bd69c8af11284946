"""What the demo's steps share: one `DemoState` that each step reads and fills in.

It sits apart from `runner` (which lists the steps) so that the step modules
(`serving`, `sweep`) can name the state without importing the runner that
imports them: the demo's modules import one another in one direction only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console

from mlbox.demo.digits import Split
from mlbox.demo.featureset import FeatureSet
from mlbox.demo.registration import Registered
from mlbox.demo.trials import Trial, TrialResult
from mlbox.services import Services
from mlbox.sweeps.schemas import Sweep


@dataclass
class DemoState:
    services: Services
    console: Console
    quick: bool
    seed: int = 0
    started: float = field(default_factory=time.monotonic)
    split: Split | None = None
    features: FeatureSet | None = None
    trials: list[Trial] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    results: list[TrialResult] = field(default_factory=list)
    sweep: Sweep | None = None
    sweep_started: float = 0.0
    registered: Registered | None = None

    @property
    def best(self) -> TrialResult | None:
        return max(self.results, key=lambda r: r.val_acc, default=None)
