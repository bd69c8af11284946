"""The demo's registry step: the best run becomes ``digits@champion``, the runner-up ``@challenger``.

Each run logged its ``model/`` folder with `mlbox.log_model`, so registering
copies nothing: the version points at the run's verified blobs. An example
from the validation set gives the signature. The champion is then loaded
back through the registry (verified files, the flavor's loader, the
signature check), exactly as serving will load it, and must reproduce the
validation accuracy its run logged; a registry that served a different model
than the one measured would fail the demo here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlbox.demo.digits import Split
from mlbox.demo.trials import MODEL_DIR, TrialResult
from mlbox.registry.schemas import ModelVersion
from mlbox.registry.service import RegistryService
from mlbox.store.errors import MlboxError

MODEL_NAME = "digits"
CHAMPION = "champion"
CHALLENGER = "challenger"
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Registered:
    """What the step left for later ones (serving reads ``champion``)."""

    name: str
    champion: ModelVersion
    champion_run: TrialResult
    challenger: ModelVersion | None
    challenger_run: TrialResult | None
    reproduced_acc: float

    @property
    def champion_ref(self) -> str:
        return f"{self.name}@{CHAMPION}"


def ranked(results: list[TrialResult]) -> list[TrialResult]:
    """Best validation accuracy first; ties go to the earlier run (as the summary's ★ does)."""
    return sorted(results, key=lambda r: (-r.val_acc, r.run_id))


def _register(registry: RegistryService, result: TrialResult, split: Split, alias: str) -> ModelVersion:
    mv = registry.register(
        MODEL_NAME,
        run_id=result.run_id,
        artifact_path=MODEL_DIR,
        example_input=split.x_val[:EXAMPLE_ROWS],
        description=f"{result.name} ({result.family}): val_acc {result.val_acc:.4f}",
    )
    registry.set_alias(MODEL_NAME, alias, mv.version, note=f"mlbox demo: run {result.run_id} {result.name}")
    return mv


def register_champion(registry: RegistryService, results: list[TrialResult], split: Split) -> Registered:
    """Register the two best runs, alias them, and check the champion as loaded from the registry."""
    order = ranked(results)
    if not order:
        raise MlboxError("no trained runs to register")
    best = order[0]
    champion = _register(registry, best, split, CHAMPION)
    runner_up = order[1] if len(order) > 1 else None
    challenger = None if runner_up is None else _register(registry, runner_up, split, CHALLENGER)
    loaded = registry.load(f"{MODEL_NAME}@{CHAMPION}")
    predicted = np.asarray(loaded.predict(split.x_val))
    accuracy = float((predicted == split.y_val).mean())
    if abs(accuracy - best.val_acc) > 1e-9:
        raise MlboxError(
            f"{MODEL_NAME}@{CHAMPION} (version {champion.version}) scores {accuracy:.4f} on the validation"
            f" set as loaded from the registry, but run {best.run_id} logged {best.val_acc:.4f}"
        )
    return Registered(MODEL_NAME, champion, best, challenger, runner_up, accuracy)
