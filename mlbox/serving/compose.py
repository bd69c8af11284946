"""Composed models: a registered model that is a graph of other registered models.

Two graphs, served like any model (batched, logged, hot-swapped):

* ``chain``: ``parts[0]`` (a preprocessor) feeds ``parts[1]``, and so on; the
  request is checked against the first part's signature, each later part's
  input against its own;
* ``ensemble``: every part scores the same input and ``combine`` merges the
  outputs: ``mean`` (element-wise, e.g. probabilities) or ``vote`` (the most
  frequent label per row; ties go to the earliest part).

The format (`Composition`) is the manifest a ``composed`` registry flavor
stores: ``{"flavor": "composed", "graph": ..., "parts": [...], "combine": ...}``.
Until the registry has that flavor a `Composition` is registered as a
``python``-flavor object (it pickles by reference to this module) and the
serving service recognises it after a verified load. Parts are references
(``name@alias``, ``name/3``): an alias part follows its alias, and the serving
service rebuilds the composed model when one moves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from mlbox.registry.refs import parse_ref
from mlbox.store.errors import InvalidInput

Graph = Literal["chain", "ensemble"]
Combine = Literal["mean", "vote"]
COMPOSITION_CLASS = "mlbox.serving.compose.Composition"
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

    def predict(self, inputs: Any) -> Any:
        """Only the serving service (or `bind`) can run a composition: it needs the registry."""
        raise InvalidInput(
            "a composed model runs inside mlbox serving, which loads its parts from the registry",
            field="model",
        )


Step = Callable[[Any], Any]
"""A part ready to call: validates its input against the part's signature, then predicts."""


def _single(output: Any) -> np.ndarray:
    if isinstance(output, Mapping):
        if len(output) != 1:
            raise InvalidInput(
                f"an ensemble part returned several outputs {list(output)}; combine needs one", field="parts"
            )
        output = next(iter(output.values()))
    if hasattr(output, "to_numpy"):
        output = output.to_numpy()
    return np.asarray(output)


def vote(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """The most frequent value per row; ties go to the earliest part."""
    rows = len(outputs[0])
    result = np.empty(
        rows,
        dtype=np.result_type(*[o.dtype for o in outputs])
        if all(o.dtype.kind != "O" for o in outputs)
        else object,
    )
    for r in range(rows):
        values = [o[r].item() if hasattr(o[r], "item") else o[r] for o in outputs]
        counts = Counter(values)
        best = max(counts.values())
        result[r] = next(v for v in values if counts[v] == best)
    return result


def compose(composition: Composition, steps: Sequence[Step]) -> Step:
    """One predict function over the parts' steps (already loaded, in ``parts`` order)."""
    if composition.graph == "chain":

        def run_chain(inputs: Any) -> Any:
            value = inputs
            for step in steps:
                value = step(value)
            return value

        return run_chain

    combine = composition.combine

    def run_ensemble(inputs: Any) -> Any:
        outputs = [_single(step(inputs)) for step in steps]
        shapes = {o.shape for o in outputs}
        if len(shapes) != 1:
            raise InvalidInput(f"ensemble parts disagree on output shape: {sorted(shapes)}", field="parts")
        if combine == "mean":
            return np.mean(np.stack([o.astype(np.float64) for o in outputs]), axis=0)
        return vote(outputs)

    return run_ensemble
