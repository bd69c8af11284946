"""``mlbox predict --executor ray``: Ray Data on the session's real loopback head (`tests.ray_head`).

The same registered scikit-learn model scores the same Parquet file locally and on Ray;
the two outputs must be equal, row for row. The input has 30 row groups (a block each,
scored by up to 4 workers, so they come back out of order and the driver must restore it)
and the batch size is smaller than a group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from mlbox.services import Services
from tests.helpers import run_main
from tests.ray_head import shared_head

pytest.importorskip("ray.data", reason="ray is not installed: pip install 'mlbox[ray]'")

ROWS = 3_000
FEATURES = ["f0", "f1", "f2", "f3"]


def test_ray_data_scores_a_parquet_file_as_local_predict_does(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(ROWS, len(FEATURES)))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(np.int64)
    frame = pd.DataFrame(x, columns=FEATURES)
    clf = LogisticRegression().fit(frame, y)
    services.registry.register("by-name", model=clf, example_input=frame.head(3))
    source = tmp_path / "in.parquet"
    pl.DataFrame(
        {"id": [f"row-{i}" for i in range(ROWS)], **{n: x[:, i] for i, n in enumerate(FEATURES)}}
    ).write_parquet(source, row_group_size=100)

    local = tmp_path / "local.parquet"
    code, _, err = run_main(capsys, "predict", "by-name/1", str(source), "-o", str(local))
    assert code == 0, err

    monkeypatch.setenv("MLBOX_EXECUTOR", shared_head())
    on_ray = tmp_path / "ray.parquet"
    code, out, err = run_main(
        capsys,
        "predict",
        "by-name/1",
        str(source),
        "-o",
        str(on_ray),
        "--executor",
        "ray",
        "--batch-size",
        "40",
    )
    assert code == 0, err
    assert f"scored {ROWS:,} rows with by-name version 1 -> {on_ray}" in out
    a, b = pq.read_table(local), pq.read_table(on_ray)
    assert b.column_names == ["id", *FEATURES, "prediction"]
    assert a.equals(b)  # same rows, same order, same predictions
    assert np.array_equal(b.column("prediction").to_numpy(), clf.predict(frame))
    assert len(set(b.column("prediction").to_pylist())) == 2  # a constant answer would fail
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [
        "in.parquet",
        "local.parquet",
        "ray.parquet",
    ]

    # what the Ray path cannot do is refused before anything is submitted, naming the option
    csv = tmp_path / "in.csv"
    pl.read_parquet(source).write_csv(csv)
    code, _, err = run_main(capsys, "predict", "by-name/1", str(csv), "-o", str(on_ray), "--executor", "ray")
    assert code == 2 and "Parquet" in err and "Traceback" not in err
    monkeypatch.setenv("MLBOX_EXECUTOR", "local")
    code, _, err = run_main(
        capsys, "predict", "by-name/1", str(source), "-o", str(on_ray), "--executor", "ray"
    )
    assert code == 2 and "--executor" in err
