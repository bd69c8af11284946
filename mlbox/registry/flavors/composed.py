"""The ``composed`` flavor: a version that is a graph of other versions, with no files of its own.

Its manifest is the graph (`mlbox.registry.composition.Composition`); the
serving service resolves and loads the parts. Loaded outside serving it
cannot predict, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from mlbox.registry.composition import Composition
from mlbox.registry.flavors.base import Flavor, Predictor
from mlbox.store.errors import InvalidInput


class ComposedPredictor:
    def __init__(self, composition: Composition) -> None:
        self.model = composition

    def predict(self, inputs: Any) -> Any:
        raise InvalidInput(
            "a composed model runs inside mlbox serving, which loads its parts from the registry",
            field="model",
        )


class ComposedFlavor(Flavor):
    name = "composed"

    def detect(self, model: object) -> bool:
        return isinstance(model, Composition)

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(model, Composition):
            raise InvalidInput("the composed flavor takes a Composition", field="model")
        return msgspec.to_builtins(model)

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        raise InvalidInput("a composed model has no files: register a Composition", field="flavor")

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        return ComposedPredictor(Composition.from_manifest(manifest))


FLAVOR = ComposedFlavor()
