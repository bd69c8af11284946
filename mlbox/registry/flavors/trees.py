"""scikit-learn tree ensembles compiled to flat numpy arrays, predicted without scikit-learn.

Why: a served tree model otherwise pays ``import sklearn.ensemble`` (1–3 s) at
load and ~0.5 ms of input validation per ``predict`` call, whatever the batch
size. The same trees as arrays load in milliseconds and score a small batch in
tens of microseconds, with the same answers: inputs are compared as float32
against float64 thresholds, and leaf values are accumulated tree by tree in
the estimator's order (a cumulative sum is sequential), as scikit-learn does.

`compile_trees` (needs scikit-learn, runs at registration) returns arrays, or
None for anything it does not reproduce exactly; the flavor then checks the
compiled predictions against the estimator's own on the example input before
it keeps them. `predict_forest` walks the trees with numba machine code
(`mlbox.registry.flavors.treewalk`: trees of up to 64 leaves tested node by
node for blocks of rows in vector instructions, `_Masked`; deeper trees and
lone rows each row down each tree), imported on the first prediction (the
serving warm-up, the first batch of `mlbox predict`) so that importing this
module stays cheap; where numba cannot be imported it walks with numpy
(`leaf_values`), with the same answers.

Supported: DecisionTree, RandomForest and ExtraTrees classifiers and
regressors (one output), GradientBoosting classifiers (log-loss) and
regressors with their default (constant) init.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

TREES_FILE = "trees.npz"

# how leaf values become predictions
KINDS = ("tree_class", "tree_reg", "forest_class", "forest_reg", "gb_binary", "gb_multi", "gb_reg")


@dataclass(frozen=True)
class Forest:
    kind: str
    feature: np.ndarray  # (nodes,) int32, -1 at leaves
    threshold: np.ndarray  # (nodes,) float64
    left: np.ndarray  # (nodes,) int32, global node index (self at leaves)
    right: np.ndarray  # (nodes,) int32
    value: np.ndarray  # (nodes, outputs) float64: class fractions or the leaf's value
    roots: np.ndarray  # (trees,) int32
    depth: int
    n_features: int
    classes: np.ndarray | None
    init_raw: np.ndarray  # (outputs,) gradient boosting's constant start
    scale: float  # gradient boosting's learning rate
    method: str  # predict or predict_proba

    @cached_property
    def walk(self) -> _Walk:
        return _Walk.of(self)

    @cached_property
    def native(self) -> _Native:
        return _Native.of(self)

    @cached_property
    def masked(self) -> _Masked | None:
        return _Masked.of(self)

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "kind": np.array(self.kind),
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "value": self.value,
            "roots": self.roots,
            "depth": np.array(self.depth),
            "n_features": np.array(self.n_features),
            "init_raw": self.init_raw,
            "scale": np.array(self.scale),
            "method": np.array(self.method),
        }
        if self.classes is not None:  # .npz holds no objects: string labels go as str
            arrays["classes"] = self.classes.astype(str) if self.classes.dtype == object else self.classes
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Any) -> Forest:
        return cls(
            kind=str(arrays["kind"]),
            feature=arrays["feature"],
            threshold=arrays["threshold"],
            left=arrays["left"],
            right=arrays["right"],
            value=arrays["value"],
            roots=arrays["roots"],
            depth=int(arrays["depth"]),
            n_features=int(arrays["n_features"]),
            classes=arrays.get("classes"),
            init_raw=arrays["init_raw"],
            scale=float(arrays["scale"]),
            method=str(arrays["method"]),
        )


def _flatten(trees: list[Any], *, normalize: bool) -> tuple[np.ndarray, ...]:
    """Concatenate sklearn ``Tree`` objects into one node table with global child indices."""
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    depth = 0
    for tree in trees:
        n = tree.node_count
        is_leaf = tree.children_left == -1
        own = np.arange(n, dtype=np.int64)
        features.append(np.where(is_leaf, -1, tree.feature).astype(np.int32))
        thresholds.append(tree.threshold.astype(np.float64))
        lefts.append((np.where(is_leaf, own, tree.children_left) + offset).astype(np.int32))
        rights.append((np.where(is_leaf, own, tree.children_right) + offset).astype(np.int32))
        value = np.asarray(tree.value[:, 0, :], dtype=np.float64)
        if normalize:  # DecisionTreeClassifier.predict_proba's normalization, node by node
            total = value.sum(axis=1, keepdims=True)
            total[total == 0.0] = 1.0
            value = value / total
        values.append(value)
        roots.append(offset)
        depth = max(depth, int(tree.max_depth))
        offset += n
    return (
        np.concatenate(features),
        np.concatenate(thresholds),
        np.concatenate(lefts),
        np.concatenate(rights),
        np.concatenate(values),
        np.asarray(roots, dtype=np.int32),
        np.asarray(depth),
    )


def compile_trees(model: Any, method: str) -> Forest | None:
    """``model`` as a `Forest`, or None when it is not a tree model reproduced exactly here."""
    from sklearn import ensemble, tree

    if method not in ("predict", "predict_proba") or getattr(model, "n_outputs_", 1) != 1:
        return None
    n_features = int(getattr(model, "n_features_in_", 0))
    classes = getattr(model, "classes_", None)
    init_raw = np.zeros(1)
    scale = 1.0
    if isinstance(model, tree.DecisionTreeClassifier):
        kind, trees, normalize = "tree_class", [model.tree_], True
    elif isinstance(model, tree.DecisionTreeRegressor):
        kind, trees, normalize = "tree_reg", [model.tree_], False
    elif isinstance(model, ensemble.RandomForestClassifier | ensemble.ExtraTreesClassifier):
        kind, trees, normalize = "forest_class", [e.tree_ for e in model.estimators_], True
    elif isinstance(model, ensemble.RandomForestRegressor | ensemble.ExtraTreesRegressor):
        kind, trees, normalize = "forest_reg", [e.tree_ for e in model.estimators_], False
    elif isinstance(model, ensemble.GradientBoostingClassifier | ensemble.GradientBoostingRegressor):
        from sklearn.dummy import DummyClassifier, DummyRegressor

        constant_init = model.init_ == "zero" or isinstance(model.init_, DummyClassifier | DummyRegressor)
        if not constant_init:
            return None
        if isinstance(model, ensemble.GradientBoostingClassifier):
            if model.loss != "log_loss":
                return None
            kind = "gb_binary" if model.n_trees_per_iteration_ == 1 else "gb_multi"
        else:
            kind = "gb_reg"
        init_raw = np.asarray(model._raw_predict_init(np.zeros((1, n_features)))[0], dtype=np.float64)
        scale = float(model.learning_rate)
        trees = [e.tree_ for e in model.estimators_.ravel()]  # stage-major, as predict_stages walks them
        normalize = False
    else:
        return None
    if method == "predict_proba" and kind not in ("tree_class", "forest_class", "gb_binary", "gb_multi"):
        return None
    feature, threshold, left, right, value, roots, depth = _flatten(trees, normalize=normalize)
    return Forest(
        kind=kind,
        feature=feature,
        threshold=threshold,
        left=left,
        right=right,
        value=value,
        roots=roots,
        depth=int(depth),
        n_features=n_features,
        classes=None if classes is None else np.asarray(classes),
        init_raw=init_raw,
        scale=scale,
        method=method,
    )


def _float32_floor(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each threshold: for a float32 x, ``x <= t`` iff ``x <= floor32(t)``.

    Lets the walk compare in float32 without widening every input value.
    """
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


@dataclass(frozen=True)
class _Walk:
    """The node table laid out for the walk: flat children, float32 thresholds, leaves that stay."""

    feature: np.ndarray  # intp; 0 at leaves (their threshold is +inf, so they go "left" = stay)
    threshold: np.ndarray  # float32
    children: np.ndarray  # intp (nodes * 2): left, right

    @classmethod
    def of(cls, forest: Forest) -> _Walk:
        leaf = forest.feature < 0
        threshold = _float32_floor(forest.threshold)
        threshold[leaf] = np.inf
        children = np.stack([forest.left, forest.right], axis=1).astype(np.intp).ravel()
        return cls(np.where(leaf, 0, forest.feature).astype(np.intp), threshold, children)


@dataclass(frozen=True)
class _Native:
    """The walk's table as the numba walk takes it: contiguous arrays of fixed dtypes."""

    feature: np.ndarray  # int32, 0 at leaves
    threshold: np.ndarray  # float32, +inf at leaves
    children: np.ndarray  # int32 (nodes * 2): left, right; a leaf's are itself
    value: np.ndarray  # float64 (nodes, outputs)
    roots: np.ndarray  # int32

    @classmethod
    def of(cls, forest: Forest) -> _Native:
        walk = forest.walk
        return cls(
            np.ascontiguousarray(walk.feature, dtype=np.int32),
            np.ascontiguousarray(walk.threshold, dtype=np.float32),
            np.ascontiguousarray(walk.children, dtype=np.int32),
            np.ascontiguousarray(forest.value, dtype=np.float64),
            np.ascontiguousarray(forest.roots, dtype=np.int32),
        )


@dataclass(frozen=True)
class _Masked:
    """The trees as `mlbox.registry.flavors.treewalk.accumulate_masked` takes them.

    Each tree's internal nodes (in any order: their tests combine by ``and``)
    with the leaves of its left subtree as the bits a right turn clears
    (``keep``), and its leaves numbered left to right, so that the leftmost
    leaf whose bit survives every test is the one the walk would reach.
    """

    feature: np.ndarray  # int32 (internal nodes,)
    threshold: np.ndarray  # float32, the largest float32 at or below each threshold
    keep: np.ndarray  # uint32 or uint64: every bit but the node's left subtree's leaves
    node_start: np.ndarray  # int64 (trees + 1,): tree t's nodes are node_start[t]:node_start[t + 1]
    leaf_value: np.ndarray  # float64 (leaves, outputs)
    leaf_start: np.ndarray  # int64 (trees + 1,)

    @classmethod
    def of(cls, forest: Forest) -> _Masked | None:
        """None when a tree has more than 64 leaves (the walk serves those)."""
        ends = [*forest.roots[1:].tolist(), forest.feature.shape[0]]
        leaves_per_tree = [
            int((forest.feature[a:b] < 0).sum()) for a, b in zip(forest.roots.tolist(), ends, strict=True)
        ]
        widest = max(leaves_per_tree, default=1)
        if widest > 64:
            return None
        bits = 32 if widest <= 32 else 64
        every = (1 << bits) - 1
        threshold32 = _float32_floor(forest.threshold)
        feature: list[int] = []
        threshold: list[float] = []
        keep: list[int] = []
        leaves: list[int] = []
        node_start, leaf_start = [0], [0]

        def visit(node: int) -> tuple[int, int]:
            """The leaves under ``node`` as a range of leaf numbers, recording its internal nodes."""
            if forest.feature[node] < 0:
                leaves.append(node)
                return len(leaves) - 1, len(leaves)
            first, middle = visit(int(forest.left[node]))
            _, end = visit(int(forest.right[node]))
            base = leaf_start[-1]
            left_bits = ((1 << (middle - base)) - 1) ^ ((1 << (first - base)) - 1)
            feature.append(int(forest.feature[node]))
            threshold.append(float(threshold32[node]))
            keep.append(every ^ left_bits)
            return first, end

        for root in forest.roots.tolist():
            visit(int(root))
            node_start.append(len(feature))
            leaf_start.append(len(leaves))
        return cls(
            np.asarray(feature, dtype=np.int32),
            np.asarray(threshold, dtype=np.float32),
            np.asarray(keep, dtype=np.uint32 if bits == 32 else np.uint64),
            np.asarray(node_start, dtype=np.int64),
            np.ascontiguousarray(forest.value[np.asarray(leaves, dtype=np.int64)], dtype=np.float64),
            np.asarray(leaf_start, dtype=np.int64),
        )


_WALKS: list[Any] = []  # [the treewalk module] once imported, [None] when numba is not there


def kernel() -> Any:
    """The numba walks (`mlbox.registry.flavors.treewalk`), compiled or loaded from numba's
    cache on the first call; None when numba cannot be imported (the numpy walk serves)."""
    if not _WALKS:
        try:
            from mlbox.registry.flavors import treewalk
        except ImportError:  # pragma: no cover - numba is a declared dependency
            _WALKS.append(None)
        else:
            _WALKS.append(treewalk)
    return _WALKS[0]


MASKED_MIN_ROWS = 2
"""A lone row walks down its trees (`accumulate`): the masked walk tests every internal node,
which pays from two rows on (100 depth-3 trees here: 1 row 20 vs 22 us, 4 rows 30 vs 23 us,
100 rows 241 vs 55 us, 10,000 rows 26 vs 3.1 ms)."""


def _raw_native(forest: Forest, x: np.ndarray, walks: Any) -> np.ndarray:
    """(rows, outputs): the summed leaf values as `predict_forest`'s numpy branch sums them."""
    native = forest.native
    n = x.shape[0]
    gradient = forest.kind.startswith("gb_")
    per_stage = forest.init_raw.shape[0] if gradient else 1
    outputs = per_stage if gradient else native.value.shape[1]
    start = np.ascontiguousarray(forest.init_raw, dtype=np.float64) if gradient else np.zeros(outputs)
    scale = forest.scale if gradient else 1.0
    masked = forest.masked if n >= MASKED_MIN_ROWS else None
    if masked is not None:
        matrix = x if x.ndim == 2 else x.reshape(n, -1)
        xt = np.empty((matrix.shape[1], n), dtype=np.float32)  # features x rows: the rows' loops in SIMD
        np.copyto(xt, matrix.T, casting="same_kind")
        by_output = np.empty((outputs, n), dtype=np.float64)

        def walk(lo: int, hi: int) -> None:
            walks.accumulate_masked(
                xt,
                lo,
                hi,
                masked.feature,
                masked.threshold,
                masked.keep,
                masked.node_start,
                masked.leaf_value,
                masked.leaf_start,
                start,
                scale,
                per_stage,
                by_output,
            )

        _spread(walk, n)
        return by_output.T
    rows = np.ascontiguousarray(x, dtype=np.float32)
    if rows.ndim != 2:
        rows = rows.reshape(n, -1)
    out = np.empty((n, outputs), dtype=np.float64)

    def walk_rows(lo: int, hi: int) -> None:
        walks.accumulate(
            rows[lo:hi],
            native.feature,
            native.threshold,
            native.children,
            native.value,
            native.roots,
            forest.depth,
            start,
            scale,
            per_stage,
            out[lo:hi],
        )

    _spread(walk_rows, n)
    return out


def _spread(walk: Any, n: int) -> None:
    """``walk(lo, hi)`` over rows ``0..n``: in this thread, or split across the cores for large inputs."""
    parts = min(_cores(), n // PARALLEL_ROWS)
    if parts < 2:
        walk(0, n)
        return
    bounds = np.linspace(0, n, parts + 1).astype(int)
    list(_pool().map(walk, bounds[:-1], bounds[1:]))  # the walks release the GIL: real threads


PARALLEL_ROWS = 4096
"""Rows per thread below which a call walks in the caller's thread: a file's chunk (`mlbox
predict`) spreads over the cores, a scoring request does not take them from its neighbours."""

_POOL: list[Any] = []


def _cores() -> int:
    return max(
        1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 16)
    )


def _pool() -> Any:
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="mlbox-trees"))
    return _POOL[0]


def leaf_values(forest: Forest, x: np.ndarray) -> np.ndarray:
    """(rows, trees, outputs): each tree's leaf value for each row.

    All trees walk down together, one level per step: a row's node moves to a
    child or, at a leaf, stays (leaves point at themselves). Flat ``take``s
    keep each step a handful of vector operations.
    """
    walk = forest.walk
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    rows = x32.shape[0]
    flat_x = x32.ravel()
    row_base = (np.arange(rows, dtype=np.intp) * x32.shape[1])[:, None]
    node = np.broadcast_to(forest.roots.astype(np.intp), (rows, forest.roots.shape[0]))
    for _ in range(forest.depth):
        feat = walk.feature.take(node)
        go_right = flat_x.take(row_base + feat) > walk.threshold.take(node)
        node = walk.children.take(node * 2 + go_right)
    outputs = forest.value.shape[1]
    if outputs == 1:
        return forest.value[:, 0].take(node)[:, :, None]
    return forest.value.take(node[:, :, None] * outputs + np.arange(outputs), mode="raise").reshape(
        rows, node.shape[1], outputs
    )


def _sequential_sum(start: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """``start + terms[:, 0] + terms[:, 1] + ...`` added left to right (as scikit-learn's loops do)."""
    stacked = np.concatenate([start[:, None, :], terms], axis=1)
    return np.cumsum(stacked, axis=1)[:, -1, :]


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def predict_forest(forest: Forest, x: np.ndarray, *, native: bool = True) -> np.ndarray:
    """What the compiled estimator's ``predict`` (or ``predict_proba``) returns for ``x``.

    ``native=False`` walks with numpy (the reference the numba walk is tested against).
    """
    walks = kernel() if native else None
    kind = forest.kind
    trees = forest.roots.shape[0]
    if walks is not None:
        summed = _raw_native(forest, x, walks)
        if kind in ("tree_class", "tree_reg"):
            out = summed
        elif kind in ("forest_class", "forest_reg"):
            out = summed / trees
        else:
            raw = summed
    else:
        values = leaf_values(forest, x)
        rows = values.shape[0]
        zeros = np.zeros((rows, values.shape[2]))
        if kind in ("tree_class", "tree_reg"):
            out = values[:, 0, :]
        elif kind in ("forest_class", "forest_reg"):
            out = _sequential_sum(zeros, values) / trees
        else:  # gradient boosting: init + lr * leaf, stage after stage
            per_stage = forest.init_raw.shape[0]
            steps = (forest.scale * values[:, :, 0]).reshape(rows, trees // per_stage, per_stage)
            raw = _sequential_sum(np.broadcast_to(forest.init_raw, (rows, per_stage)), steps)
    if kind.startswith("gb_"):
        if kind == "gb_reg":
            return raw[:, 0]
        if kind == "gb_binary":
            p1 = _expit(raw[:, 0])
            if forest.method == "predict_proba":
                return np.stack([1.0 - p1, p1], axis=1)
            assert forest.classes is not None
            return forest.classes[(raw[:, 0] >= 0).astype(np.int64)]
        if forest.method == "predict_proba":
            shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        assert forest.classes is not None
        return forest.classes[np.argmax(raw, axis=1)]
    if kind in ("tree_reg", "forest_reg"):
        return out[:, 0]
    if forest.method == "predict_proba":
        return out
    assert forest.classes is not None
    return forest.classes[np.argmax(out, axis=1)]
