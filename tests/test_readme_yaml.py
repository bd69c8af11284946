"""The README's YAML examples load through the real loaders, so the documented formats cannot rot.

The feature definitions are applied to a real home over a Parquet source
written under tmp_path (the path the example names) and a point-in-time
lookup of the on-demand features runs; the sweep space goes through the space
loader and its settings through `SweepSpec`, as ``mlbox sweep`` reads them.
The README's curl line must find the token under ``$MLBOX_HOME``.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import polars as pl
import pytest

from mlbox.features.loader import load_definitions
from mlbox.services import Services
from mlbox.sweeps.schemas import SweepSpec
from mlbox.sweeps.service import spec_from_mapping
from mlbox.sweeps.space import load_file

README = Path(__file__).resolve().parents[1] / "README.md"


def yaml_block(heading: str) -> str:
    """The first ```yaml block after the README heading that starts with ``heading``."""
    text = README.read_text()
    start = text.find(f"\n### {heading}")
    assert start >= 0, f"README has no '### {heading}' section"
    found = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert found, f"README's '{heading}' section has no yaml block"
    return found.group(1)


def test_the_feature_definitions_example_applies_and_serves(tmp_path: Path, services: Services) -> None:
    repo = tmp_path / "repo"
    (repo / "data" / "driver_stats").mkdir(parents=True)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    pl.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "event_ts": [t0, t0 + hour, t0],
            "created_ts": [t0, t0 + hour, t0],
            "trips": [4, 10, 0],
            "conv_rate": [0.5, 0.8, 0.2],
        }
    ).write_parquet(repo / "data" / "driver_stats" / "part-0.parquet")
    defs = repo / "defs.yaml"
    defs.write_text(yaml_block("Feature definitions"))

    loaded = load_definitions(defs)
    assert [d.name for d in loaded] == ["driver", "driver_stats", "driver_derived"]
    result = services.features.apply(defs)
    assert [(c.action, c.name) for c in result.changes] == [
        ("created", "driver"),
        ("created", "driver_stats"),
        ("created", "driver_derived"),
    ]
    entity = pl.DataFrame(
        {"driver_id": [1, 1, 2], "event_timestamp": [t0, t0 + 2 * hour, t0], "fare": [8.0, 20.0, 5.0]}
    )
    refs = ["driver_stats:trips", "driver_derived:trips_per_rate", "driver_derived:fare_per_trip"]
    frame = services.features.get_historical_features(entity, refs).to_polars()
    assert frame["trips"].to_list() == [4, 10, 0]
    assert frame["trips_per_rate"].to_list() == pytest.approx([8.0, 12.5, 0.0])
    assert frame["fare_per_trip"].to_list() == [2.0, 2.0, None]  # nullif(trips, 0): no division by zero


def test_the_sweep_space_example_loads_as_mlbox_sweep_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml_block("Sweep spaces"))
    space, settings = load_file(path)
    assert [p.name for p in space.params] == ["lr", "layers", "act", "batch"]
    assert {p.name: p.kind for p in space.params}["batch"] == "categorical"
    assert set(space.distributions()) == {"lr", "layers", "act", "batch"}  # Optuna takes every declaration
    # every setting is a SweepSpec field, as the README promises
    assert set(settings) <= set(SweepSpec.__struct_fields__), settings
    spec = spec_from_mapping(
        {**settings, "space": space.to_json()["params"], "command": ["python", "train.py", "--lr", "{lr}"]}
    )
    assert (spec.metric, spec.n_trials, spec.parallel, spec.pruner, spec.seed) == (
        "val_loss",
        20,
        2,
        "asha",
        7,
    )


def test_the_readme_reads_the_token_from_mlbox_home(tmp_path: Path) -> None:
    """The curl line's token expression, run by a real shell: ``$MLBOX_HOME`` when set, else ``~/.mlbox``."""
    text = README.read_text()
    lines = [line for line in text.splitlines() if line.startswith("curl") and "Authorization" in line]
    assert lines, "README has no curl line with the token"
    found = re.search(r"(\$\(cat [^)]*\))", lines[0])
    assert found, lines[0]
    for home, user in [(tmp_path / "elsewhere", tmp_path / "user"), (None, tmp_path / "user")]:
        folder = home or user / ".mlbox"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "token").write_text(f"token-of-{folder.name}")
        env = {"HOME": str(user), "PATH": "/usr/bin:/bin", **({"MLBOX_HOME": str(home)} if home else {})}
        shell = subprocess.run(
            ["sh", "-c", f'printf %s "{found.group(1)}"'], env=env, capture_output=True, text=True, timeout=10
        )
        assert shell.stdout == f"token-of-{folder.name}", (found.group(1), shell.stderr)
