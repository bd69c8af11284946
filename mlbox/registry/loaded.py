"""A registered version loaded into memory, ready to predict.

`LoadedModel.predict` is the one call path for every caller (serving, batch
scoring, notebooks): inputs are checked against the version's signature
before the model sees them, so a wrong column or dtype fails with a
`SchemaMismatch` naming the field instead of an error deep in a framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlbox.registry.flavors.base import Predictor
from mlbox.registry.schemas import ModelVersion
from mlbox.registry.signature import Signature, validate


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    predictor: Predictor
    folder: Path
    device: str = "cpu"

    @property
    def signature(self) -> Signature | None:
        return self.version.signature

    def prepare(self, inputs: Any, *, tolerant: bool = True) -> Any:
        """``inputs`` validated and cast as the signature says (unchanged without a signature)."""
        signature = self.version.signature
        if signature is None:
            return inputs
        return validate(signature.inputs, inputs, tolerant=tolerant)

    def predict(self, inputs: Any, *, tolerant: bool = True) -> Any:
        return self.predictor.predict(self.prepare(inputs, tolerant=tolerant))
