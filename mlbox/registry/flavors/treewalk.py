"""The compiled trees' walk as numba machine code: one pass per row, every tree, no temporaries.

Why: the numpy walk (`mlbox.registry.flavors.trees.leaf_values`) moves all
trees down one level per step with ``take``s over (rows, trees) index arrays;
for 100 rows of a 100-tree model that is a few dozen array operations of
10,000 elements and ~1 ms, while the arithmetic is ~300 comparisons a row.
Here each row walks each tree to its leaf and adds the leaf's value into the
row's accumulator in the estimator's order (tree by tree, left to right), so
the sums are the same floating-point additions scikit-learn does.

Compiled for explicit signatures when this module is first imported (numba's
on-disk cache makes later processes load it in milliseconds), which the
serving warm-up and `mlbox predict` do before the first row is scored. This
module imports numba: import it lazily (`mlbox.registry.flavors.trees.kernel`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_BLOCK = 64
"""Rows walked together, tree by tree: each row still adds its trees in order (the same sums),
while the block's walks, independent of one another, keep the loads in flight side by side."""

_SIGNATURE = (
    "void(float32[:, ::1], int32[::1], float32[::1], int32[::1],"
    " float64[:, ::1], int32[::1], int64, float64[::1], float64, int64, float64[:, ::1])"
)


@numba.njit(_SIGNATURE, nogil=True, cache=True, boundscheck=False)
def accumulate(
    x: Any,
    feature: Any,
    threshold: Any,
    children: Any,
    value: Any,
    roots: Any,
    depth: int,
    start: Any,
    scale: float,
    per_stage: int,
    out: Any,
) -> None:  # pragma: no cover - machine code; tests compare its answers with the estimator's
    """``out[r] = start + scale * leaf(tree 0) + scale * leaf(tree 1) + ...`` for each row ``r``.

    Rows go in blocks of `_BLOCK`; within a block, tree after tree, all rows take
    each step together. The walk has no branch that depends on the data: every tree takes ``depth``
    steps, a leaf stepping onto itself (its threshold is +inf, its feature 0, both
    its children itself), and each step picks ``children[2 * node + (x > t)]``.
    A data-dependent ``if`` per node is mispredicted half the time, which cost
    ~10 ns per node here, more than everything else together. ``x`` is float32
    and ``threshold`` the largest float32 at or below each float64 threshold, so
    ``x > t`` goes right exactly where scikit-learn's float32 comparison does.
    ``per_stage`` > 1 (multiclass gradient boosting): tree ``t`` adds to output
    ``t % per_stage`` only; otherwise each tree adds its whole value row.
    """
    rows = x.shape[0]
    trees = roots.shape[0]
    outputs = out.shape[1]
    nodes = np.empty(_BLOCK, dtype=np.int64)
    for first in range(0, rows, _BLOCK):
        last = min(first + _BLOCK, rows)
        for r in range(first, last):
            for k in range(outputs):
                out[r, k] = start[k]
        for t in range(trees):
            root = np.int64(roots[t])
            for r in range(first, last):
                nodes[r - first] = root
            for _ in range(depth):  # the block's rows step together: independent loads overlap
                for r in range(first, last):
                    node = nodes[r - first]
                    right = np.int64(x[r, feature[node]] > threshold[node])
                    nodes[r - first] = children[2 * node + right]
            if per_stage > 1:
                k = t % per_stage
                for r in range(first, last):
                    out[r, k] += scale * value[nodes[r - first], 0]
            elif scale == 1.0:
                for r in range(first, last):
                    for k in range(outputs):
                        out[r, k] += value[nodes[r - first], k]
            else:
                for r in range(first, last):
                    for k in range(outputs):
                        out[r, k] += scale * value[nodes[r - first], k]
