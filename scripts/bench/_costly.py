"""A python-flavor model with a fixed cost per row, importable by `mlbox up` (the overload bench)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class PerRowCost:
    """Sleeps ``cost_s`` per row, then predicts the first column: a model whose capacity is known."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s

    def predict(self, x: Any) -> np.ndarray:
        arr = np.asarray(x)
        time.sleep(self.cost_s * len(arr))
        return arr[:, 0]
