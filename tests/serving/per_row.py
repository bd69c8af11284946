"""A python-flavor model whose cost grows with its rows, importable by ``mlbox up`` in tests."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class PerRow:
    """Sleeps ``cost_s`` per row (no batching economy), then predicts the first column."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s

    def predict(self, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        time.sleep(self.cost_s * len(arr))
        return arr[:, 0]
