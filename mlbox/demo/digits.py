"""The demo's data: scikit-learn's digits (8×8 images, bundled, offline), split once.

One seeded, stratified split is shared by every trial, so their validation
accuracies compare like for like. The demo builds it from a feature-store
training set (`featureset`) and hands it to its training jobs as two Parquet
files (`save_split` / `read_split`); `load_split` builds the very same split
straight from scikit-learn, which is how tests rebuild the validation set to
check a logged model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

N_FEATURES = 64
N_CLASSES = 10
SOURCE = "sklearn.datasets.load_digits"
SPLIT_FILES = ("train.parquet", "val.parquet")
SPLIT_META = "split.json"


@dataclass(frozen=True)
class Split:
    """Pixels scaled to [0, 1] (``x / 16``) as float32, labels as int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    seed: int
    val_fraction: float
    source: str = SOURCE
    training_set_id: int | None = None
    """The feature-store training set the rows came from (None: straight from scikit-learn)."""

    @property
    def description(self) -> str:
        train, val = 1 - self.val_fraction, self.val_fraction
        return f"{self.source} (x/16, stratified {train:.0%}/{val:.0%}, seed {self.seed})"


def load_digits_xy() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as (pixels / 16 in float32, labels in int64), in scikit-learn's order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def split_rows(y: np.ndarray, seed: int = 0, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of a stratified train/validation split of labels ``y``."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    train, val = train_test_split(rows, test_size=val_fraction, random_state=seed, stratify=y)
    return np.asarray(train), np.asarray(val)


def load_split(seed: int = 0, val_fraction: float = 0.2) -> Split:
    x, y = load_digits_xy()
    train, val = split_rows(y, seed, val_fraction)
    return Split(x[train], y[train], x[val], y[val], seed, val_fraction)


def as_frame(x: np.ndarray, y: np.ndarray) -> pl.DataFrame:
    """Features ``px00``…``px63`` and a ``label`` column: what `mlbox.log_dataset` versions."""
    import polars as pl

    columns = {f"px{i:02d}": x[:, i] for i in range(x.shape[1])}
    return pl.DataFrame({**columns, "label": y})


def save_split(split: Split, folder: Path) -> Path:
    """Write the split where a job's process can read it (`read_split`); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in zip(
        SPLIT_FILES, ((split.x_train, split.y_train), (split.x_val, split.y_val)), strict=True
    ):
        tmp = folder / f".{name}.tmp"
        as_frame(x, y).write_parquet(tmp)
        tmp.replace(folder / name)  # atomic: a job never reads half a file
    meta = {
        "seed": split.seed,
        "val_fraction": split.val_fraction,
        "source": split.source,
        "training_set_id": split.training_set_id,
    }
    tmp = folder / f".{SPLIT_META}.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(folder / SPLIT_META)
    return folder


def read_split(folder: Path) -> Split:
    import polars as pl

    arrays = []
    for name in SPLIT_FILES:
        frame = pl.read_parquet(folder / name)
        arrays.append(frame.drop("label").to_numpy().astype(np.float32))
        arrays.append(frame.get_column("label").to_numpy().astype(np.int64))
    meta = json.loads((folder / SPLIT_META).read_text())
    return Split(
        arrays[0],
        arrays[1],
        arrays[2],
        arrays[3],
        seed=int(meta["seed"]),
        val_fraction=float(meta["val_fraction"]),
        source=str(meta["source"]),
        training_set_id=meta["training_set_id"],
    )
