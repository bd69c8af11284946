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
from mlbox.registry.signature import Schema, Signature, TensorSpec
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


def check_chain(parts: Sequence[str], signatures: Sequence[Signature | None]) -> None:
    """Refuse a chain whose step ``i``'s output cannot be step ``i + 1``'s input by their
    signatures, naming the step and both sides: it would register and then answer 422 on every
    request. Unknown dimensions (-1) fit any size; a step without a signature fits anything."""
    for i in range(1, len(parts)):
        before, after = signatures[i - 1], signatures[i]
        if before is None or before.outputs is None or after is None:
            continue
        why = schema_misfit(before.outputs, after.inputs)
        if why is not None:
            raise InvalidInput(
                f"parts[{i}] {parts[i]!r} cannot take the output of {parts[i - 1]!r}: {why} "
                f"({parts[i - 1]!r} outputs {before.outputs.line()}, "
                f"{parts[i]!r} takes {after.inputs.line()})",
                field=f"parts[{i}]",
            )


def schema_misfit(output: Schema, inputs: Schema) -> str | None:
    """Why values of ``output`` cannot pass ``inputs``' validation (None: they can, or the
    signatures do not say). The rules are `signature.validate`'s, tolerant as serving is."""
    if output.kind == "tensor" and output.tensors:
        out = output.tensors[0]
        if inputs.kind == "tensor" and inputs.tensors:
            return _tensor_misfit(out, inputs.tensors[0])
        if inputs.kind == "columns":
            return "an array where a table with named columns is expected"
        return None
    if output.kind == "columns":
        names = [c.name for c in output.columns]
        if inputs.kind == "columns":
            missing = [c.name for c in inputs.columns if c.name not in names]
            return f"columns {missing} are missing" if missing else None
        if inputs.kind == "tensor" and inputs.tensors:
            shape = inputs.tensors[0].shape
            if len(shape) != 2:
                return f"a table where {len(shape)} dimensions are expected"
            if shape[1] != -1 and shape[1] != len(names):
                return f"{len(names)} columns where {shape[1]} values a row are expected"
    return None


def _tensor_misfit(out: TensorSpec, into: TensorSpec) -> str | None:
    if len(out.shape) != len(into.shape) or any(
        a != -1 and b != -1 and a != b for a, b in zip(out.shape, into.shape, strict=True)
    ):
        return "the shapes differ"
    if not dtype_fits(out.dtype, into.dtype):
        return f"dtype {out.dtype} is not cast to {into.dtype}"
    return None


def dtype_fits(got: str, expected: str) -> bool:
    """Whether `signature.cast_values` (tolerant) can take ``got`` values as ``expected``: the
    same dtype, anything as object, a number widened to a float, an integer to an integer (its
    range is checked per request); not a float to an integer, a bool to a number, or text."""
    import numpy as np

    if got == expected or expected == "object":
        return True
    try:
        source, target = np.dtype(got), np.dtype(expected)
    except TypeError:
        return False
    if source.kind not in "biuf" or target.kind not in "biuf":
        return False
    if source.kind == "b" or target.kind == "b":
        return False
    return target.kind == "f" or source.kind in "iu"
