"""The demo's features step: the digits become feature views, and the training set a point-in-time join.

Each image is an entity (``image``, key ``image_id``) scanned at some moment
and labelled an hour later. Two views read Parquet files written under
``$MLBOX_HOME/demo/features``: ``digit_pixels`` (the 64 pixels, ``p0``…``p63``)
and ``digit_stats`` (ink and mean intensity, derived from the pixels). The
entity frame holds one row per labelled image (``image_id``,
``event_timestamp``, ``label``); `FeatureStore.get_historical_features`
joins both views as of each label's time and records the training set, whose
id every training run carries (tag ``training_set``) so lineage leads back
to it. The models read the pixels; the stats are there to show a two-view
join and, once materialized, an online lookup (`online_lookup`).

The split of the joined frame is the same seeded, stratified split
`digits.load_split` makes from scikit-learn directly (same rows, same
order), so tests can rebuild the validation set without the feature store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.demo.digits import N_FEATURES, Split, load_digits_xy, save_split, split_rows
from mlbox.features import Entity, FeatureView, Field, OnDemandFeatureView, ParquetSource
from mlbox.store.errors import MlboxError

if TYPE_CHECKING:
    import polars as pl

    from mlbox.features.service import FeatureStore

ENTITY = "image"
JOIN_KEY = "image_id"
PIXELS_VIEW = "digit_pixels"
STATS_VIEW = "digit_stats"
SCAN_VIEW = "scan_quality"  # on demand, from digit_stats and the request's scanner gain
PIXELS = [f"p{i}" for i in range(N_FEATURES)]
STATS = ["ink", "mean_intensity"]
FEATURE_REFS = [f"{PIXELS_VIEW}:*", f"{STATS_VIEW}:*"]
TRAINING_SET_NAME = "digits-demo"
SCANNED_FROM = datetime(2025, 1, 1, tzinfo=UTC)
SCAN_EVERY = timedelta(minutes=1)
LABEL_AFTER = timedelta(hours=1)
"""Image ``i`` is scanned at ``SCANNED_FROM + i * SCAN_EVERY`` and labelled ``LABEL_AFTER`` later."""


@dataclass(frozen=True)
class FeatureSet:
    """What the step left for later ones: the split (and where jobs read it) and its lineage."""

    training_set_id: int
    entity_rows: int
    rows: int
    views: list[tuple[str, int]]
    """(view, version) the training set was built from."""
    split: Split
    data_dir: Path
    materialized: dict[str, int]
    """Rows written to the online store per view."""
    frame: pl.DataFrame

    @property
    def versions(self) -> str:
        return ", ".join(f"{name}@v{version}" for name, version in self.views)


def scanned_at(n: int) -> list[datetime]:
    return [SCANNED_FROM + i * SCAN_EVERY for i in range(n)]


def source_frames(x: np.ndarray) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The two views' source rows: pixels, and stats derived from them (pure)."""
    import polars as pl

    ids = np.arange(len(x), dtype=np.int64)
    ts = pl.Series("event_ts", scanned_at(len(x)), dtype=pl.Datetime("us", "UTC"))
    pixels = pl.DataFrame({JOIN_KEY: ids, "event_ts": ts, **{p: x[:, i] for i, p in enumerate(PIXELS)}})
    stats = pl.DataFrame(
        {
            JOIN_KEY: ids,
            "event_ts": ts,
            "ink": (x > 0).mean(axis=1).astype(np.float32),
            "mean_intensity": x.mean(axis=1).astype(np.float32),
        }
    )
    return pixels, stats


def entity_frame(y: np.ndarray) -> pl.DataFrame:
    """One row per labelled image: its key, when the label was known, the label."""
    import polars as pl

    times = [t + LABEL_AFTER for t in scanned_at(len(y))]
    return pl.DataFrame(
        {
            JOIN_KEY: np.arange(len(y), dtype=np.int64),
            "event_timestamp": pl.Series(times, dtype=pl.Datetime("us", "UTC")),
            "label": y,
        }
    )


def definitions(folder: Path) -> list[Any]:
    image = Entity(ENTITY, [JOIN_KEY], description="one 8×8 scanned digit")
    pixels = FeatureView(
        PIXELS_VIEW,
        entities=[image],
        source=ParquetSource(folder / f"{PIXELS_VIEW}.parquet"),
        timestamp_field="event_ts",
        features=[Field(p, "float32") for p in PIXELS],
        description="pixel intensities scaled to [0, 1] (x / 16), row by row",
    )
    stats = FeatureView(
        STATS_VIEW,
        entities=[image],
        source=ParquetSource(folder / f"{STATS_VIEW}.parquet"),
        timestamp_field="event_ts",
        features=[
            Field("ink", "float32", "fraction of pixels that are not blank"),
            Field("mean_intensity", "float32", "mean of the scaled pixels"),
        ],
        description="per-image summaries derived from the pixels",
    )
    scan = OnDemandFeatureView(
        SCAN_VIEW,
        sources=[stats],
        features=[Field("ink_at_gain", "float32", "ink as a scanner with this gain would see it")],
        expressions={"ink_at_gain": "ink * gain"},
        request=[Field("gain", "float32")],
        description="computed at lookup time from digit_stats and the request's scanner gain",
    )
    return [image, pixels, stats, scan]


def _write(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)


def build_training_set(features: FeatureStore, root: Path, *, seed: int = 0) -> FeatureSet:
    """Write the sources, apply the definitions, join, split, materialize; check the join on the way."""
    x, y = load_digits_xy()
    folder = root / "features"
    folder.mkdir(parents=True, exist_ok=True)
    pixels, stats = source_frames(x)
    _write(pixels, folder / f"{PIXELS_VIEW}.parquet")
    _write(stats, folder / f"{STATS_VIEW}.parquet")
    features.apply(definitions(folder))
    entities = entity_frame(y)
    job = features.get_historical_features(entities, FEATURE_REFS, name=TRAINING_SET_NAME)
    frame = job.to_polars()
    record = job.training_set
    if frame.height != entities.height or frame.get_column(JOIN_KEY).to_list() != list(range(len(y))):
        raise MlboxError(f"training set {record.id}: {frame.height} rows for {entities.height} entity rows")
    x_fs = frame.select(PIXELS).to_numpy().astype(np.float32)
    y_fs = frame.get_column("label").to_numpy().astype(np.int64)
    if not np.array_equal(x_fs, x):  # every image was scanned before its label: nothing may be missing
        raise MlboxError(f"training set {record.id} does not hold the pixels its sources hold")
    train, val = split_rows(y_fs, seed)
    versions = sorted({(v.name, v.version) for v in record.views})
    split = Split(
        x_fs[train],
        y_fs[train],
        x_fs[val],
        y_fs[val],
        seed=seed,
        val_fraction=0.2,
        source=f"mlbox feature store: training set {record.id} ("
        + ", ".join(f"{n}@v{v}" for n, v in versions)
        + ")",
        training_set_id=record.id,
    )
    data_dir = save_split(split, root / "training-sets" / str(record.id))
    last = SCANNED_FROM + (len(y) - 1) * SCAN_EVERY
    done = features.materialize(SCANNED_FROM, last, [PIXELS_VIEW, STATS_VIEW])
    return FeatureSet(
        training_set_id=record.id,
        entity_rows=entities.height,
        rows=frame.height,
        views=versions,
        split=split,
        data_dir=data_dir,
        materialized={m.view: m.rows for m in done},
        frame=frame,
    )


def online_lookup(
    features: FeatureStore, fs: FeatureSet, image_ids: list[int], gain: float = 1.5
) -> dict[str, list[Any]]:
    """The stats and two pixels of ``image_ids`` from the online store, and the on-demand
    ``ink_at_gain`` from the request's ``gain``; they must equal the training set's values
    (the materialized rows are the latest, and each image has one)."""
    refs = [
        f"{STATS_VIEW}:ink",
        f"{STATS_VIEW}:mean_intensity",
        f"{PIXELS_VIEW}:p20",
        f"{PIXELS_VIEW}:p36",
        f"{SCAN_VIEW}:ink_at_gain",
    ]
    got = features.get_online_features([{JOIN_KEY: i, "gain": gain} for i in image_ids], refs)
    for name in ("ink", "mean_intensity", "p20", "p36", "ink_at_gain"):
        offline = [fs.frame.row(i, named=True)[name.removesuffix("_at_gain")] for i in image_ids]
        scale = gain if name == "ink_at_gain" else 1.0
        if not np.allclose(np.asarray(got[name], dtype=float), scale * np.asarray(offline, dtype=float)):
            raise MlboxError(f"online {name} {got[name]} differs from the training set's {offline}")
    return got
