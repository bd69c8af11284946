"""Search spaces (YAML, mappings, Python) and the Optuna study rebuilt from records: pure parts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from optuna.distributions import FloatDistribution

from mlbox.store.errors import InvalidInput
from mlbox.sweeps import study as studies
from mlbox.sweeps.params import params, substitute, trial_env
from mlbox.sweeps.schemas import SweepSpec
from mlbox.sweeps.space import Space, load_file, parse_mapping, parse_python

YAML = """
metric: val_loss
n_trials: 7
space:
  lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
  layers: {type: int, low: 1, high: 4}
  act: {type: categorical, choices: [relu, gelu]}
  batch: [32, 64]
"""


def test_yaml_space_with_settings(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(YAML)
    space, settings = load_file(path)
    assert settings == {"metric": "val_loss", "n_trials": 7}
    kinds = {p.name: p.kind for p in space.params}
    assert kinds == {"lr": "float", "layers": "int", "act": "categorical", "batch": "categorical"}
    lr = space.distributions()["lr"]
    assert isinstance(lr, FloatDistribution) and lr.log and lr.low == pytest.approx(1e-4)
    # a bare space (no `space:` key) reads the same
    bare = tmp_path / "bare.yml"
    bare.write_text("x: {type: float, low: 0, high: 1}\n")
    assert [p.name for p in load_file(bare)[0].params] == ["x"]
    # what the sweep row keeps reads back equal
    assert Space.from_json(space.to_json()) == space


@pytest.mark.parametrize(
    ("decl", "field"),
    [
        ({"lr": {"type": "float", "low": 1, "high": 0}}, "space.lr.low"),
        ({"lr": {"type": "float", "high": 1}}, "space.lr.low"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "space.lr.low"),
        ({"lr": {"type": "floaty", "low": 0, "high": 1}}, "space.lr.type"),
        ({"lr": {"type": "float", "low": "a", "high": 1}}, "space.lr.low"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "lg": True}}, "space.lr.lg"),
        ({"n": {"type": "int", "low": 0.5, "high": 3}}, "space.n.low"),
        ({"n": {"type": "int", "low": 0, "high": 3, "step": 0}}, "space.n.step"),
        ({"act": {"type": "categorical", "choices": []}}, "space.act.choices"),
        ({"act": {"type": "categorical", "choices": [{"a": 1}]}}, "space.act.choices"),
        ({"act": 3}, "space.act"),
        ({"bad name": [1, 2]}, "space.bad name"),
        ({}, "space"),
    ],
)
def test_bad_space_names_the_field(decl: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_mapping(decl)
    assert err.value.field == field, err.value.message


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("lr: {type: float, low: [\n")
    with pytest.raises(InvalidInput) as err:
        load_file(path)
    assert err.value.field == "space"
    with pytest.raises(InvalidInput, match="cannot read"):
        load_file(tmp_path / "missing.yaml")


def test_python_space_mapping_and_function(tmp_path: Path) -> None:
    assert [p.name for p in parse_python("space = {'x': [1, 2, 3]}").params] == ["x"]
    source = "def space(trial):\n    trial.suggest_float('x', -1, 1)\n    trial.suggest_int('n', 1, 3)\n"
    path = tmp_path / "space.py"
    path.write_text(source)
    space, settings = load_file(path)
    assert space.is_function and settings == {}
    assert Space.from_json(space.to_json()).source == source
    with pytest.raises(InvalidInput) as err:
        parse_python("def space(trial):\n    raise ValueError('boom')\n")
    assert err.value.field == "space" and "boom" in err.value.message
    with pytest.raises(InvalidInput, match="must define 'space'"):
        parse_python("x = 1\n")
    with pytest.raises(InvalidInput, match="failed to load"):
        parse_python("def (:\n")


def test_grid_values() -> None:
    space = parse_mapping(
        {
            "n": {"type": "int", "low": 1, "high": 7, "step": 3},
            "x": {"type": "float", "low": 0, "high": 0.3, "step": 0.1},
            "c": ["a", "b"],
        }
    )
    assert space.grid() == {"n": [1, 4, 7], "x": [0.0, 0.1, 0.2, 0.3], "c": ["a", "b"]}
    with pytest.raises(InvalidInput) as err:
        parse_mapping({"x": {"type": "float", "low": 0, "high": 1}}).grid()
    assert err.value.field == "space.x.step"


def test_params_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert substitute(
        ["--lr={lr}", "{act}", "{unknown}", "-c", "print({'a': 1})"], {"lr": 0.1, "act": True}
    ) == [
        "--lr=0.1",
        "true",
        "{unknown}",
        "-c",
        "print({'a': 1})",
    ]
    monkeypatch.delenv("MLBOX_TRIAL_PARAMS", raising=False)
    assert params({"lr": 1}) == {"lr": 1}
    for k, v in trial_env(3, 4, {"lr": 0.5}).items():
        monkeypatch.setenv(k, v)
    assert params({"lr": 1, "n": 2}) == {"lr": 0.5, "n": 2}
    monkeypatch.setenv("MLBOX_TRIAL_PARAMS", "[1]")
    with pytest.raises(InvalidInput):
        params()


def _spec(**kw: Any) -> SweepSpec:
    return SweepSpec(
        metric="loss", command=["true"], space={"x": {"type": "float", "low": 0, "high": 1}}, **kw
    )


def test_study_rebuilt_from_records_prunes_like_the_original() -> None:
    """A study rebuilt from its records (params, values, system attrs) decides as the original."""
    spec = _spec(pruner="asha", pruner_args={"min_resource": 1, "reduction_factor": 2}, seed=1)
    space = parse_mapping(spec.space)
    study = studies.new_study("sweep-1", spec, space)
    records: list[studies.TrialRecord] = []
    for i in range(4):
        asked = studies.ask(study, space)
        curve = [(s, (i + 1) * 10.0 / (s + 1)) for s in range(4)]
        done, _ = studies.report(study, asked.number, curve, may_prune=False)
        value = studies.tell(study, asked.number, "complete", curve[-1][1])
        records.append(
            studies.TrialRecord(
                asked.number,
                "complete",
                asked.params,
                asked.distributions,
                studies.system_attrs(study, asked.number),
                value,
                dict(done),
            )
        )
    rebuilt = studies.rebuild("sweep-1", spec, space, records)
    assert [t.value for t in rebuilt.trials] == [t.value for t in study.trials]
    assert rebuilt.trials[2].system_attrs == study.trials[2].system_attrs
    # a bad new trial is pruned by both at the first rung
    for s in (study, rebuilt):
        asked = studies.ask(s, space)
        _, prune = studies.report(s, asked.number, [(0, 1000.0), (1, 900.0)])
        assert prune
    # a RUNNING record comes back running and can be told later
    running = studies.TrialRecord(4, "running", {"x": 0.5}, records[0].distributions, {}, None, {0: 5.0})
    again = studies.rebuild("sweep-1", spec, space, [*records, running])
    assert again.trials[4].state.name == "RUNNING"
    assert studies.tell(again, 4, "complete", 0.25) == 0.25


def test_objective_value() -> None:
    assert studies.objective_value([3.0, 1.0, 2.0], "last", "minimize") == 2.0
    assert studies.objective_value([3.0, 1.0, 2.0], "best", "minimize") == 1.0
    assert studies.objective_value([3.0, math.nan, 4.0], "best", "maximize") == 4.0
    assert studies.objective_value([], "last", "minimize") is None


def test_migrations_make_the_schema_once(tmp_path: Path) -> None:
    from mlbox.store.db import Database
    from mlbox.sweeps.migrations import migrations

    db = Database(tmp_path / "m.db")
    assert migrations.apply(db) == ["m001_sweeps"]
    assert migrations.apply(db) == []
    columns = {
        table: {r["name"] for r in db.query(f"PRAGMA table_info({table})")}
        for table in ("sweeps", "sweep_trials", "sweep_values")
    }
    assert {"id", "state", "spec", "space", "revision", "experiment"} <= columns["sweeps"]
    assert {"number", "params", "distributions", "system_attrs", "job_id", "run_id", "last_step"} <= columns[
        "sweep_trials"
    ]
    assert columns["sweep_values"] == {"sweep_id", "number", "step", "value"}
