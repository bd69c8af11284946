"""How a step's output is stored for the steps after it: never pickled.

* a pandas or polars frame: Parquet bytes in the artifact store (content-addressed);
* a numpy array: ``.npy`` bytes (``allow_pickle=False``) in the artifact store;
* a model: a `ModelRef` to a registry version (the registry holds the weights);
* a dataset: a `DatasetRef` naming its content hash;
* a feature store training set: a `TrainingSetRef` naming its record;
* a segment of the prediction log: a `PredictionsRef` (model version and time range);
* anything else: JSON, kept in the step run's row.

Each stored value has a hash (the artifact's sha256, or the JSON's), which is what the
cache key of the steps reading it is made of.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import msgspec

from mlbox.store import ArtifactStore
from mlbox.store.errors import InvalidInput


@dataclass(frozen=True)
class ModelRef:
    """A registered model version passed between steps (``name`` and ``version``)."""

    name: str
    version: int

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class DatasetRef:
    """A dataset passed between steps by its content hash (and a name for people)."""

    sha256: str
    name: str = ""


@dataclass(frozen=True)
class TrainingSetRef:
    """A feature store training set passed between steps by its record's id (the record pins
    the view versions and the entity frame's hash, so the frame can be rebuilt)."""

    id: int
    name: str = ""


@dataclass(frozen=True)
class PredictionsRef:
    """A segment of the prediction log: a model version's predictions logged from ``start`` to
    ``end`` (epoch seconds), e.g. written by a batch scoring step."""

    model: str
    version: int
    start: float
    end: float
    rows: int = 0

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}@{self.start:.3f}..{self.end:.3f}"


@dataclass(frozen=True)
class Stored:
    kind: str
    payload: str
    """The JSON text (``json``, ``model``, ``dataset``) or the artifact's sha256 (``frame``, ``array``)."""
    hash: str


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode(value: Any, artifacts: ArtifactStore, *, step: str) -> Stored:
    """Store ``value``; `InvalidInput` naming the step when it has no safe form."""
    module = type(value).__module__.split(".")[0]
    name = type(value).__name__
    if module == "pandas" and name == "DataFrame":
        buf = io.BytesIO()
        value.to_parquet(buf)
        blob = artifacts.put_bytes(buf.getvalue())
        return Stored("frame", blob.sha256, blob.sha256)
    if module == "polars" and name == "DataFrame":
        buf = io.BytesIO()
        value.write_parquet(buf)
        blob = artifacts.put_bytes(buf.getvalue())
        return Stored("polars", blob.sha256, blob.sha256)
    if module == "numpy" and name == "ndarray":
        import numpy as np

        buf = io.BytesIO()
        try:
            np.save(buf, value, allow_pickle=False)
        except ValueError:
            raise InvalidInput(
                f"step {step!r} returned an object array, which cannot be stored safely", field=step
            ) from None
        blob = artifacts.put_bytes(buf.getvalue())
        return Stored("array", blob.sha256, blob.sha256)
    if isinstance(value, ModelRef):
        text = msgspec.json.encode({"name": value.name, "version": value.version}).decode()
        return Stored("model", text, _sha(text.encode()))
    if isinstance(value, TrainingSetRef):
        text = msgspec.json.encode({"id": value.id, "name": value.name}).decode()
        return Stored("training_set", text, _sha(text.encode()))
    if isinstance(value, PredictionsRef):
        text = msgspec.json.encode(
            {"model": value.model, "version": value.version, "start": value.start, "end": value.end,
             "rows": value.rows}
        ).decode()  # fmt: skip
        return Stored("predictions", text, _sha(text.encode()))
    if isinstance(value, DatasetRef):
        text = msgspec.json.encode({"sha256": value.sha256, "name": value.name}).decode()
        return Stored("dataset", text, value.sha256)
    try:
        data = msgspec.json.encode(value, order="sorted")
    except (TypeError, msgspec.EncodeError):
        raise InvalidInput(
            f"step {step!r} returned a {name}, which cannot pass between steps"
            " (frames, arrays, models, datasets or JSON values; never pickle)",
            field=step,
        ) from None
    return Stored("json", data.decode(), _sha(data))


def decode(kind: str, payload: str, artifacts: ArtifactStore) -> Any:
    if kind == "json":
        return msgspec.json.decode(payload)
    if kind == "frame":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(artifacts.read_bytes(payload)))
    if kind == "polars":
        import polars as pl

        return pl.read_parquet(io.BytesIO(artifacts.read_bytes(payload)))
    if kind == "array":
        import numpy as np

        return np.load(io.BytesIO(artifacts.read_bytes(payload)), allow_pickle=False)
    if kind == "model":
        raw = msgspec.json.decode(payload)
        return ModelRef(raw["name"], int(raw["version"]))
    if kind == "dataset":
        raw = msgspec.json.decode(payload)
        return DatasetRef(raw["sha256"], raw.get("name", ""))
    if kind == "training_set":
        raw = msgspec.json.decode(payload)
        return TrainingSetRef(int(raw["id"]), raw.get("name", ""))
    if kind == "predictions":
        raw = msgspec.json.decode(payload)
        return PredictionsRef(raw["model"], int(raw["version"]), raw["start"], raw["end"], raw.get("rows", 0))
    raise InvalidInput(f"unknown stored value kind {kind!r}", field="kind")
