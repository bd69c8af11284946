"""Composed models: a registered model that is a graph of other registered models.

Two graphs, served like any model (batched, logged, hot-swapped):

* ``chain``: ``parts[0]`` (a preprocessor) feeds ``parts[1]``, and so on; the
  request is checked against the first part's signature, each later part's
  input against its own;
* ``ensemble``: every part scores the same input and ``combine`` merges the
  outputs: ``mean`` (element-wise, e.g. probabilities) or ``vote`` (the most
  frequent label per row; ties go to the earliest part).

The graph itself (`mlbox.registry.composition.Composition`) is registered as
a version of the ``composed`` flavor; this module runs it. Parts are references
(``name@alias``, ``name/3``): an alias part follows its alias, and the serving
service rebuilds the composed model when one moves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlbox.registry.composition import MAX_DEPTH, Composition
from mlbox.store.errors import InvalidInput

__all__ = ["MAX_DEPTH", "Composition", "compose", "vote"]

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
