"""``mlflow.data``: datasets for ``log_input``, with a digest of their content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source: str
    rows: int | None = None
    schema: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any) -> Dataset:
        for attr in ("name", "digest", "source"):
            if not hasattr(value, attr):
                raise TypeError(
                    f"a dataset needs name, digest and source; {type(value).__name__} has no {attr}"
                )
        return cls(str(value.name), str(value.digest), str(getattr(value.source, "uri", value.source)))


def from_pandas(
    df: Any, source: str | None = None, targets: str | None = None, name: str | None = None
) -> Dataset:
    import pandas as pd

    digest = hashlib.sha256(pd.util.hash_pandas_object(df, index=True).values.tobytes()).hexdigest()[:8]
    schema = {str(c): str(t) for c, t in df.dtypes.items()}
    return Dataset(name or "dataset", digest, source or "in-memory", len(df), schema)


def from_numpy(
    features: Any, source: str | None = None, targets: Any = None, name: str | None = None
) -> Dataset:
    import numpy as np

    arr = np.ascontiguousarray(features)
    h = hashlib.sha256(arr.tobytes())
    if targets is not None:
        h.update(np.ascontiguousarray(targets).tobytes())
    schema = {"features": f"{arr.dtype}{list(arr.shape[1:])}"}
    return Dataset(name or "dataset", h.hexdigest()[:8], source or "in-memory", int(arr.shape[0]), schema)
