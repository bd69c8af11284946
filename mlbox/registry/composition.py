"""A composed model: a graph of other registered models, registered as the ``composed`` flavor.

Two graphs: ``chain`` (``parts[0]``, a preprocessor, feeds ``parts[1]``, and
so on) and ``ensemble`` (every part scores the same input; ``combine`` is
``mean`` or ``vote``). A version stores only this graph, as its manifest
``{"flavor": "composed", "graph": ..., "parts": [...], "combine": ...}``:
parts are references (``name@alias``, ``name/3``) resolved when the model is
served (`mlbox.serving.compose` runs it), so an alias part follows its alias.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from mlbox.registry.refs import parse_ref
from mlbox.store.errors import InvalidInput

Graph = Literal["chain", "ensemble"]
Combine = Literal["mean", "vote"]
MAX_DEPTH = 8


class Composition(msgspec.Struct, frozen=True):
    graph: Graph
    parts: list[str]
    combine: Combine | None = None

    def __post_init__(self) -> None:
        if self.graph not in ("chain", "ensemble"):
            raise InvalidInput(f"graph must be 'chain' or 'ensemble', got {self.graph!r}", field="graph")
        if not isinstance(self.parts, list) or len(self.parts) < 2:
            raise InvalidInput("a composed model needs at least two parts", field="parts")
        for i, part in enumerate(self.parts):
            parse_ref(part, field=f"parts[{i}]")
        if self.graph == "ensemble" and self.combine not in ("mean", "vote"):
            raise InvalidInput("an ensemble needs combine='mean' or combine='vote'", field="combine")
        if self.graph == "chain" and self.combine is not None:
            raise InvalidInput("a chain takes no combine", field="combine")

    @classmethod
    def chain(cls, parts: Sequence[str]) -> Composition:
        return cls("chain", list(parts))

    @classmethod
    def ensemble(cls, parts: Sequence[str], combine: Combine = "mean") -> Composition:
        return cls("ensemble", list(parts), combine)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Composition:
        try:
            return msgspec.convert(
                {k: manifest[k] for k in ("graph", "parts", "combine") if k in manifest}, cls
            )
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"not a composition manifest: {exc}", field="manifest") from None

    def to_manifest(self) -> dict[str, Any]:
        return {"flavor": "composed", **msgspec.to_builtins(self)}
