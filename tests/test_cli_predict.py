"""`mlbox predict`: batch scoring of Parquet and CSV files with registered scikit-learn models.

Models are registered in a real home under tmp_path; the command runs through
`mlbox.cli.main` (its error mapping included) and once as the installed
console script. Every output is compared with the model's own ``predict``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from mlbox.cli import main
from mlbox.services import Services

MLBOX = Path(sys.executable).parent / "mlbox"
ROWS = 2_500
FEATURES = ["f0", "f1", "f2", "f3"]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(ROWS, len(FEATURES)))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.3, size=ROWS) > 0).astype(np.int64)
    return x, y


@pytest.fixture
def arrays_model(services: Services, data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    """Fitted on an array: a one-tensor signature, float64 [N, 4]."""
    x, y = data
    clf = LogisticRegression().fit(x, y)
    services.registry.register("churn", model=clf, example_input=x[:3])
    services.registry.set_alias("churn", "champion", 1)
    return clf


@pytest.fixture
def frame_model(services: Services, data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    """Fitted on a frame: a columns signature (f0..f3 by name)."""
    x, y = data
    frame = pd.DataFrame(x, columns=FEATURES)
    clf = LogisticRegression().fit(frame, y)
    services.registry.register("by-name", model=clf, example_input=frame.head(3))
    return clf


@pytest.fixture
def parquet_in(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> Path:
    """The features plus a string id column the model does not take, written in several row groups."""
    x, _ = data
    frame = pl.DataFrame(
        {"id": [f"row-{i}" for i in range(ROWS)], **{n: x[:, i] for i, n in enumerate(FEATURES)}}
    )
    path = tmp_path / "in.parquet"
    frame.write_parquet(path, row_group_size=1_000)
    return path


def test_scores_a_parquet_file_in_chunks_and_keeps_the_inputs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays_model: LogisticRegression,
    parquet_in: Path,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    out = tmp_path / "out.parquet"
    code, stdout, err = run_main(
        capsys, "predict", "churn@champion", str(parquet_in), "-o", str(out), "--batch-size", "300"
    )
    assert (code, err) == (0, ""), err
    assert f"scored {ROWS:,} rows with churn version 1 -> {out}" in stdout
    result = pq.read_table(out)
    assert result.column_names == ["id", *FEATURES, "prediction"]
    assert result.column("id").to_pylist() == [f"row-{i}" for i in range(ROWS)]
    x, _ = data
    expected = arrays_model.predict(x)
    assert np.array_equal(result.column("prediction").to_numpy(), expected)
    assert len(set(expected)) == 2  # both classes occur, so a constant answer would fail
    # the chunks were written as they came: several row groups, none above the batch size
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups >= ROWS // 300
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in.parquet", "out.parquet"]


def test_scores_a_csv_by_column_name_without_the_inputs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    frame_model: LogisticRegression,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = data
    # columns in another order, plus one the model does not take: selected by name
    source = pl.DataFrame({"f3": x[:, 3], "note": ["n"] * ROWS, "f1": x[:, 1], "f0": x[:, 0], "f2": x[:, 2]})
    csv = tmp_path / "in.csv"
    source.write_csv(csv)
    out = tmp_path / "scored.parquet"
    code, _, err = run_main(
        capsys, "predict", "by-name", str(csv), "-o", str(out), "--batch-size", "1000", "--no-keep-inputs"
    )
    assert (code, err) == (0, ""), err
    result = pq.read_table(out)
    assert result.column_names == ["prediction"]
    expected = frame_model.predict(pd.DataFrame(x, columns=FEATURES))
    assert np.array_equal(result.column("prediction").to_numpy(), expected)


def test_columns_option_picks_the_features(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays_model: LogisticRegression,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = data
    source = pl.DataFrame({"customer": np.arange(ROWS), **{n: x[:, i] for i, n in enumerate(FEATURES)}})
    path = tmp_path / "numeric.parquet"
    source.write_parquet(path)
    out = tmp_path / "out.parquet"
    # five numeric columns for a four-feature model: refused, naming what to do
    code, _, err = run_main(capsys, "predict", "churn", str(path), "-o", str(out))
    assert code == 2 and err.count("\n") == 1, err
    assert "takes 4 features" in err and "--columns" in err
    assert not out.exists()
    code, _, err = run_main(
        capsys, "predict", "churn", str(path), "-o", str(out), "--columns", ",".join(FEATURES)
    )
    assert (code, err) == (0, ""), err
    result = pq.read_table(out)
    assert np.array_equal(result.column("prediction").to_numpy(), arrays_model.predict(x))
    assert result.column("customer").to_pylist() == list(range(ROWS))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["nobody@champion", "{in}"], "no model named 'nobody'"),
        (["churn@nope", "{in}"], "has no alias 'nope'"),
        (["churn", "{tmp}/missing.parquet"], "no such file"),
        (["churn", "{tmp}/in.txt"], "must be a .parquet or .csv file"),
        (["churn", "{tmp}/broken.parquet"], "cannot read"),
        (["by-name", "{tmp}/short.parquet"], "f2: missing column"),
        (["by-name", "{tmp}/text.parquet"], "f1: expected dtype float64, got string"),
        (["churn", "{in}", "--prediction-column", "id"], "id: the input already has this column"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays_model: LogisticRegression,
    frame_model: LogisticRegression,
    parquet_in: Path,
    argv: list[str],
    needle: str,
) -> None:
    (tmp_path / "in.txt").write_text("a,b\n1,2\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    pl.DataFrame({"f0": [1.0], "f1": [2.0], "f3": [3.0]}).write_parquet(tmp_path / "short.parquet")
    pl.DataFrame({"f0": [1.0], "f1": ["x"], "f2": [2.0], "f3": [3.0]}).write_parquet(
        tmp_path / "text.parquet"
    )
    out = tmp_path / "out.parquet"
    out.write_bytes(b"an earlier result")
    args = [a.format(tmp=tmp_path, **{"in": parquet_in}) for a in argv]
    code, stdout, err = run_main(capsys, "predict", *args, "-o", str(out))
    assert code == 2, (stdout, err)
    assert err.startswith("mlbox: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert out.read_bytes() == b"an earlier result"  # a failed run leaves the old output alone
    assert not list(tmp_path.glob(".out.parquet.*"))


def test_console_script_scores_a_file(
    tmp_path: Path,
    subprocess_env: dict[str, str],
    arrays_model: LogisticRegression,
    parquet_in: Path,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    out = tmp_path / "out.parquet"
    proc = subprocess.run(
        [str(MLBOX), "predict", "churn@champion", str(parquet_in), "-o", str(out), "--batch-size", "1024"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"scored {ROWS:,} rows" in proc.stdout
    x, _ = data
    assert np.array_equal(pq.read_table(out).column("prediction").to_numpy(), arrays_model.predict(x))
