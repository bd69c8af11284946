"""The prediction log as a typed table: one column per input feature and per output.

The log keeps a request's inputs and outputs as JSON text (``[[row], ...]`` for
one tensor, ``{"name": [...]}`` for named inputs, outputs by name). This turns
a window of it into one pandas row per scored row, with the request id (the
join key for labels), version, time, latency and shadow flag, feature columns
named as `feature_names` names them (``input_0`` ... for a tensor's columns),
and ``prediction`` / ``proba_<k>`` read off the outputs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from mlbox.registry.signature import Signature

if TYPE_CHECKING:
    import pandas as pd

META = ("request_id", "row", "version", "ts", "latency_ms", "shadow")
PREDICTION = "prediction"
PROBA = "proba_"


def feature_names(signature: Signature | None) -> list[str] | None:
    """The monitored columns a model takes: its table columns, a named tensor's ``name_j`` per
    column of its second dimension (``name`` alone for a 1-D one); None without a signature."""
    if signature is None:
        return None
    schema = signature.inputs
    if schema.kind == "columns":
        return [c.name for c in schema.columns]
    out: list[str] = []
    for t in schema.tensors:
        name = t.name or "input"
        width = t.shape[1] if len(t.shape) == 2 and t.shape[1] > 0 else None
        out += [f"{name}_{j}" for j in range(width)] if width else [name]
    return out


def _columns(value: Any, default: str) -> dict[str, list[Any]]:
    """Named per-row columns of one decoded inputs or outputs value."""
    named = value if isinstance(value, dict) else {default: value}
    out: dict[str, list[Any]] = {}
    for name, rows in named.items():
        if not isinstance(rows, list):
            continue
        if rows and isinstance(rows[0], list):
            width = max(len(r) for r in rows)
            for j in range(width):
                out[f"{name}_{j}"] = [
                    r[j] if j < len(r) and not isinstance(r[j], list) else None for r in rows
                ]
        else:
            out[str(name)] = rows
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def read_outputs(outputs: dict[str, list[Any]]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(prediction per row, class probabilities or None) from a window's output columns.

    One 1-D output is the prediction. A 2-D output of probabilities (rows summing to one) or
    of logits (softmaxed) gives the probabilities, and its argmax is the prediction.
    """
    if not outputs:
        return None, None
    groups: dict[str, list[str]] = {}
    for col in outputs:
        base, sep, idx = col.rpartition("_")
        key = base if sep and idx.isdigit() else col
        groups.setdefault(key, []).append(col)
    for cols in groups.values():
        if len(cols) > 1:
            try:
                matrix = np.array([outputs[c] for c in cols], dtype=np.float64).T
            except (TypeError, ValueError):
                continue
            sums = matrix.sum(axis=1)
            proba = matrix if (matrix >= 0).all() and np.allclose(sums, 1.0, atol=1e-3) else _softmax(matrix)
            return proba.argmax(axis=1), proba
    first = next(iter(groups.values()))[0]
    return np.asarray(outputs[first], dtype=object), None


def _typed(values: list[Any]) -> pd.Series:
    """Numbers as float64 (None as NaN), anything else as it came."""
    import pandas as pd

    series = pd.Series(values)
    try:
        return pd.to_numeric(series)
    except (TypeError, ValueError):
        return series


def decode(predictions: Any, signature: Signature | None) -> pd.DataFrame:
    """A polars frame of logged predictions (`read_predictions`) as one pandas row per scored row."""
    import pandas as pd

    input_default = "input"
    if signature is not None and signature.inputs.kind != "columns" and signature.inputs.tensors:
        input_default = signature.inputs.tensors[0].name or "input"
    decoder = msgspec.json.Decoder()
    meta: dict[str, list[Any]] = {k: [] for k in META}
    inputs: dict[str, list[Any]] = {}
    outputs: dict[str, list[Any]] = {}
    total = 0
    for rid, version, ts, latency, shadow, raw_in, raw_out in zip(
        predictions.get_column("request_id").to_list(),
        predictions.get_column("version").to_list(),
        predictions.get_column("ts").to_list(),
        predictions.get_column("latency_ms").to_list(),
        predictions.get_column("shadow").to_list(),
        predictions.get_column("inputs").to_list(),
        predictions.get_column("outputs").to_list(),
        strict=True,
    ):
        cols_in = _columns(decoder.decode(raw_in), input_default)
        cols_out = _columns(decoder.decode(raw_out), "output")
        n = max((len(v) for v in cols_in.values()), default=0)
        for target, cols in ((inputs, cols_in), (outputs, cols_out)):
            for name, values in cols.items():
                column = target.setdefault(name, [None] * total)
                column.extend(values[:n] + [None] * (n - len(values)))
            for name, column in target.items():
                if name not in cols:
                    column.extend([None] * n)
        meta["request_id"] += [rid] * n
        meta["row"] += list(range(n))
        meta["version"] += [version] * n
        meta["ts"] += [ts] * n
        meta["latency_ms"] += [latency] * n
        meta["shadow"] += [shadow] * n
        total += n
    frame = pd.DataFrame(meta)
    if signature is not None and signature.inputs.kind != "columns":
        for name in feature_names(signature) or []:  # a column never logged is all missing
            inputs.setdefault(name, [None] * total)
    features = pd.DataFrame({k: _typed(v) for k, v in inputs.items()}, index=frame.index)
    prediction, proba = read_outputs(outputs)
    parts = [frame, features]
    if prediction is not None:
        parts.append(pd.DataFrame({PREDICTION: prediction}))
    if proba is not None:
        parts.append(pd.DataFrame(proba, columns=[f"{PROBA}{k}" for k in range(proba.shape[1])]))
    return pd.concat(parts, axis=1) if total else frame


def _typed_frame(files: list[Path], signature: Signature | None, filters: list[Any]) -> pd.DataFrame:
    """Typed rows files (`mlbox.serving.predlog.rows_table`) as the frame `decode` makes."""
    import pandas as pd
    import polars as pl

    from mlbox.serving.predlog import INPUT, OUT

    scan = pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed")
    for f in filters:
        scan = scan.filter(f)
    frame = scan.collect().to_pandas()
    name = INPUT
    if signature is not None and signature.inputs.kind != "columns" and signature.inputs.tensors:
        name = signature.inputs.tensors[0].name or INPUT
    if name != INPUT:
        frame = frame.rename(
            columns={c: name + c[len(INPUT) :] for c in frame.columns if c.startswith(f"{INPUT}_")}
        )
    outs = [c for c in frame.columns if c.startswith(OUT)]
    outputs = {c[len(OUT) :]: frame[c].tolist() for c in outs}
    frame = frame.drop(columns=outs)
    for feature in feature_names(signature) or []:
        if feature not in frame.columns:
            frame[feature] = np.nan
    prediction, proba = read_outputs(outputs)
    parts = [frame.reset_index(drop=True)]
    if prediction is not None:
        parts.append(pd.DataFrame({PREDICTION: prediction}))
    if proba is not None:
        parts.append(pd.DataFrame(proba, columns=[f"{PROBA}{k}" for k in range(proba.shape[1])]))
    return pd.concat(parts, axis=1)


def read_window(
    root: Path,
    model: str,
    signature: Signature | None,
    *,
    since: float | None = None,
    until: float | None = None,
    shadow: bool | None = False,
    version: int | None = None,
) -> pd.DataFrame:
    """One model's logged rows in ``[since, until)`` (champion traffic only by default): typed rows
    files where the log has them, the JSON of older segments and of requests Arrow could not type."""
    import polars as pl

    from mlbox.serving.predlog import log_files, read_segments

    typed_files, whole, rest = log_files(root / model)
    typed_numbers = {p.name[len("rows-") :] for p in typed_files}
    # an older segment with typed rows beside it holds the same requests: the typed ones win
    json_files = [p for p in whole if p.name[len("seg-") :] not in typed_numbers] + rest
    filters: list[Any] = []
    if since is not None:
        filters.append(pl.col("ts") >= datetime.fromtimestamp(since, UTC))
    if until is not None:
        filters.append(pl.col("ts") < datetime.fromtimestamp(until, UTC))
    if shadow is not None:
        filters.append(pl.col("shadow") == shadow)
    if version is not None:
        filters.append(pl.col("version") == version)
    parts = []
    if json_files:
        frame = read_segments(json_files)
        for f in filters:
            frame = frame.filter(f)
        parts.append(decode(frame, signature))
    if typed_files:
        parts.append(_typed_frame(typed_files, signature, filters))
    parts = [p for p in parts if len(p)]
    if not parts:
        return decode(read_segments([]), signature)
    if len(parts) == 1:
        return parts[0]
    import pandas as pd

    both = pd.concat(parts, ignore_index=True)
    return both.sort_values(["ts", "request_id", "row"], kind="stable").reset_index(drop=True)
