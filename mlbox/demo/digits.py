"""The demo's data: scikit-learn's digits (8×8 images, bundled, offline), split once.

One seeded, stratified split is shared by every trial, so their validation
accuracies compare like for like, and tests rebuild the same validation set
to check a logged model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

N_FEATURES = 64
N_CLASSES = 10
SOURCE = "sklearn.datasets.load_digits"


@dataclass(frozen=True)
class Split:
    """Pixels scaled to [0, 1] (``x / 16``) as float32, labels as int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    seed: int
    val_fraction: float

    @property
    def description(self) -> str:
        train, val = 1 - self.val_fraction, self.val_fraction
        return f"{SOURCE} (x/16, stratified {train:.0%}/{val:.0%}, seed {self.seed})"


def load_split(seed: int = 0, val_fraction: float = 0.2) -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=val_fraction, random_state=seed, stratify=y
    )
    return Split(x_train, y_train, x_val, y_val, seed, val_fraction)


def as_frame(x: np.ndarray, y: np.ndarray) -> pl.DataFrame:
    """Features ``px00``…``px63`` and a ``label`` column: what `mlbox.log_dataset` versions."""
    import polars as pl

    columns = {f"px{i:02d}": x[:, i] for i in range(x.shape[1])}
    return pl.DataFrame({**columns, "label": y})
