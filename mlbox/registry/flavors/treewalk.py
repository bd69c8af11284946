"""The compiled trees' walks as numba machine code, no temporaries beyond a block's masks.

Why: the numpy walk (`mlbox.registry.flavors.trees.leaf_values`) moves all
trees down one level per step with ``take``s over (rows, trees) index arrays;
for 100 rows of a 100-tree model that is a few dozen array operations of
10,000 elements and ~1 ms, while the arithmetic is ~300 comparisons a row.
Two walks here, both adding each row's leaf values in the estimator's order
(tree by tree, left to right), so the sums are the same floating-point
additions scikit-learn does:

* `accumulate_masked`, for trees of at most 64 leaves (gradient boosting's
  shallow trees): every internal node tested for 512 rows at once with
  vector instructions, the leaf found from a bit mask (~0.1-0.3 us a row
  for 100 depth-3 trees here, 5-8x less than the row-by-row walk);
* `accumulate`, for deeper trees and lone rows: each row down each tree.

Compiled for explicit signatures when this module is first imported (numba's
on-disk cache makes later processes load it in milliseconds), which the
serving warm-up and `mlbox predict` do before the first row is scored. This
module imports numba: import it lazily (`mlbox.registry.flavors.trees.kernel`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

_BLOCK = 64
"""Rows walked together, tree by tree: each row still adds its trees in order (the same sums),
while the block's walks, independent of one another, keep the loads in flight side by side."""

_MASK_BLOCK = 512
"""Rows `accumulate_masked` takes together: their masks and the features' values stay in L1/L2."""

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


_MASK_SIGNATURE = (
    "void(float32[:, ::1], int64, int64, int32[::1], float32[::1], {mask}[::1], int64[::1],"
    " float64[:, ::1], int64[::1], float64[::1], float64, int64, float64[:, ::1])"
)


@numba.njit(
    [_MASK_SIGNATURE.format(mask="uint32"), _MASK_SIGNATURE.format(mask="uint64")],
    nogil=True,
    cache=True,
    boundscheck=False,
)
def accumulate_masked(
    xt: Any,
    lo: int,
    hi: int,
    feature: Any,
    threshold: Any,
    keep: Any,
    node_start: Any,
    leaf_value: Any,
    leaf_start: Any,
    start: Any,
    scale: float,
    per_stage: int,
    out: Any,
) -> None:  # pragma: no cover - machine code; tests compare its answers with the estimator's
    """``out[:, r]`` for rows ``lo <= r < hi`` as `accumulate` sums them, with SIMD across rows.

    Why: `accumulate` walks each row down each tree, one dependent load after
    another, in scalar code (~1-2 us a row for 100 depth-3 trees here). This
    one evaluates every internal node of a tree for 512 rows at once (the
    bitvector scheme of Lucchese et al.'s QuickScorer): a node whose test goes
    right clears the bits of the leaves in its left subtree from each row's
    mask (``keep``), and the row's leaf is the lowest bit still set. The loops
    over rows have no branch and read ``xt`` (features x rows, float32)
    contiguously, so LLVM turns them into vector compares and ands (~0.1 us a
    row for the same model). Trees must have at most 32 (``uint32`` masks) or
    64 (``uint64``) leaves. The sums are `accumulate`'s: each row adds its
    trees' leaf values in the estimator's order, ``scale * value``, one by one.
    ``out`` is (outputs, rows); ``per_stage`` > 1: tree ``t`` adds to output
    ``t % per_stage`` only.
    """
    trees = node_start.shape[0] - 1
    outputs = out.shape[0]
    mask = np.empty(_MASK_BLOCK, dtype=keep.dtype)
    leaf = np.empty(_MASK_BLOCK, dtype=np.int64)
    every = keep[0] | ~keep[0]  # all bits set, in the mask's type
    for first in range(lo, hi, _MASK_BLOCK):
        last = min(first + _MASK_BLOCK, hi)
        m = last - first
        for k in range(outputs):
            block = out[k, first:last]
            for i in range(m):
                block[i] = start[k]
        for t in range(trees):
            for i in range(m):
                mask[i] = every
            for node in range(node_start[t], node_start[t + 1]):
                values = xt[feature[node], first:last]
                limit = threshold[node]
                clear = keep[node]
                for i in range(m):
                    mask[i] &= clear if values[i] > limit else every
            base = leaf_start[t]
            for i in range(m):
                leaf[i] = base + trailing_zeros(mask[i])  # type: ignore[call-arg]
            for k in range(outputs):
                if per_stage > 1 and k != t % per_stage:
                    continue
                column = 0 if per_stage > 1 else k
                block = out[k, first:last]
                for i in range(m):
                    block[i] += scale * leaf_value[leaf[i], column]
