"""Python-flavor models for the serving tests, importable as ``tests.serving.models`` (a
registered model is loaded by importing its class, as the appliance would).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Constant:
    """Predicts one value for every row."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, x: Any) -> np.ndarray:
        return np.full(len(x), self.value, dtype=np.int64)


class Slow:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def predict(self, x: Any) -> np.ndarray:
        time.sleep(self.delay_s)
        return np.asarray(x)[:, 0]


class Picky:
    """Refuses negative inputs the way many models refuse NaN."""

    def predict(self, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        if (arr < 0).any():
            raise ValueError("Input contains negative values")
        return arr.sum(axis=1)


class SlowToLoad:
    """Takes ``delay_s`` to unpickle, as a large model takes to load; predicts the first column."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __setstate__(self, state: dict[str, Any]) -> None:
        time.sleep(state["delay_s"])
        self.__dict__.update(state)

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x)[:, 0]
