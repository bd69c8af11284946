"""Small models for the registry tests, importable as ``tests.models`` (a pickled or
state-dict model is loaded by importing its class, as the appliance would)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class Doubler:
    """A plain Python model: the `python` flavor's example."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs) * self.factor


class MLP(nn.Module):
    def __init__(self, n_in: int = 8, hidden: int = 16, n_out: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TwoInputs(nn.Module):
    """Named inputs (a dict of arrays) and two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 2)
        self.b = nn.Linear(3, 2)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = self.a(left) + self.b(right)
        return total, total.sum(dim=1)
