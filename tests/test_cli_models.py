"""`mlbox models` against a real home under tmp_path: register from a run, list, show, move aliases.

Models are logged the way a training script logs them (`mlbox.log_model`
inside a run) and the commands run through `mlbox.cli.main`, error handling
included; one case runs the installed console script as a subprocess.
"""

from __future__ import annotations

import json
import pickle
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlbox
from mlbox.services import Services
from tests.helpers import MLBOX, ok, run_main

QUICK = {"log_code": False, "log_environment": False}
ok = partial(ok, quiet=True)  # the models commands succeed in silence: nothing on stderr


class Scaler:
    """A plain Python model (the `python` flavor), importable as ``tests.test_cli_models.Scaler``."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs) * self.factor


@pytest.fixture
def runs(home: Path) -> dict[str, int]:
    """Two finished runs, each with a model logged under ``model/`` and a dataset."""
    ids = {}
    for name, factor in (("double", 2.0), ("triple", 3.0)):
        with mlbox.start_run(name, experiment="scaling", **QUICK) as run:
            mlbox.log_dataset(np.arange(6.0).reshape(2, 3), "train-x")
            mlbox.log_model(Scaler(factor))
        ids[name] = run.id
    return ids


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "example.npy"
    np.save(path, np.ones((2, 3), dtype=np.float32))
    return path


def test_ls_with_no_models_says_how_to_register(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    assert "mlbox models register NAME --run RUN_ID" in ok(capsys, "models", "ls")
    assert json.loads(ok(capsys, "models", "ls", "--json")) == []


def test_register_from_a_run_then_ls_and_show(
    capsys: pytest.CaptureFixture[str], runs: dict[str, int], example: Path, services: Services
) -> None:
    rid = runs["double"]
    out = ok(capsys, "models", "register", "scaler", "--run", str(rid), "--example", str(example), "-d", "x2")
    assert out.splitlines() == [
        f"registered scaler version 1  (python, run:{rid}/model)",
        "  inputs   tensor float32 [*, 3]",
    ]
    assert ok(capsys, "models", "register", "scaler", "--run", str(runs["triple"])).startswith(
        "registered scaler version 2  (python,"
    )

    header, row = ok(capsys, "models", "ls").splitlines()
    assert header.split() == ["NAME", "LATEST", "VERSIONS", "CREATED", "ALIASES"]
    assert row.split()[:3] == ["scaler", "2", "2"]
    [listed] = json.loads(ok(capsys, "models", "ls", "--json"))
    assert (listed["name"], listed["latest_version"], listed["version_count"]) == ("scaler", 2, 2)

    out = ok(capsys, "models", "show", "scaler/1")
    stored = services.registry.get_version("scaler", 1)
    assert out.startswith("model scaler  2 versions")
    assert "aliases: none" in out
    assert "version 1  [python]" in out and "  x2\n" in out
    assert f"  source run:{rid}/model\n  run {rid}  double  experiment scaling\n" in out
    assert "  dataset training/train-x  " in out
    assert "  inputs   tensor float32 [*, 3]\n  outputs  tensor float32 [*, 3]\n" in out
    for f in stored.files:  # full digests: what a user compares against a copy
        assert f"  {f.path}  {f.size} B  sha256 {f.sha256}\n" in out
    assert {f.path for f in stored.files} == {"mlbox-model.json", "model.pkl"}
    # a bare name shows the latest version, which has no signature
    out = ok(capsys, "models", "show", "scaler")
    assert "version 2  [python]" in out and "signature:\n  none" in out

    shown = json.loads(ok(capsys, "models", "show", "scaler:1", "--json"))
    assert shown["version"]["version"] == 1 and shown["version"]["lineage"]["run_id"] == rid
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["model"]["name"] == "scaler"
    versions = ok(capsys, "models", "versions", "scaler").splitlines()
    assert [line.split()[:3] for line in versions[1:]] == [
        ["1", "python", str(rid)],
        ["2", "python", str(runs["triple"])],
    ]
    assert [v["version"] for v in json.loads(ok(capsys, "models", "versions", "scaler", "--json"))] == [1, 2]


def test_alias_moves_print_from_and_to_and_are_kept_in_history(
    capsys: pytest.CaptureFixture[str], runs: dict[str, int], services: Services
) -> None:
    for rid in runs.values():
        ok(capsys, "models", "register", "scaler", "--run", str(rid))
    assert ok(capsys, "models", "alias", "scaler", "champion", "1") == "scaler@champion: - -> 1\n"
    assert ok(capsys, "models", "alias", "scaler", "champion", "2", "--note", "better") == (
        "scaler@champion: 1 -> 2\n"
    )
    assert (
        ok(capsys, "models", "alias", "scaler", "champion", "2") == "scaler@champion: 2 -> 2  (unchanged)\n"
    )
    assert ok(capsys, "models", "alias", "scaler", "challenger", "1") == "scaler@challenger: - -> 1\n"
    assert services.registry.resolve("scaler@champion").version == 2

    out = ok(capsys, "models", "show", "scaler@champion")
    assert "aliases: challenger -> 1  champion -> 2" in out and "version 2  [python]  @champion" in out
    row = ok(capsys, "models", "ls").splitlines()[1]
    assert row.endswith("challenger=1  champion=2")

    assert ok(capsys, "models", "alias", "scaler", "challenger", "--delete") == (
        "scaler@challenger: 1 -> removed\n"
    )
    lines = ok(capsys, "models", "history", "scaler").splitlines()
    assert [line.split()[2:5] for line in lines[1:]] == [
        ["champion", "-", "1"],
        ["champion", "1", "2"],
        ["challenger", "-", "1"],
        ["challenger", "1", "removed"],
    ]
    assert lines[2].endswith("better")
    moves = json.loads(ok(capsys, "models", "history", "scaler", "--alias", "champion", "--json"))
    assert [(m["from_version"], m["to_version"], m["note"]) for m in moves] == [
        (None, 1, ""),
        (1, 2, "better"),
    ]


def test_register_a_local_file_with_flavor_and_options(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "scaler.pkl"
    path.write_bytes(pickle.dumps(Scaler(5.0)))
    rows = tmp_path / "rows.json"
    rows.write_text("[[1, 2, 3]]")
    out = ok(
        capsys,
        "models",
        "register",
        "five",
        "--file",
        str(path),
        "--flavor",
        "python",
        "--option",
        "method=predict",
        "--example",
        str(rows),
    )
    assert out.startswith(f"registered five version 1  (python, file:{path.resolve()})")
    assert "inputs   tensor int64 [*, 3]" in out
    predicted = mlbox.load_model("five").predict(np.array([[1, 1, 1]]))
    assert predicted.tolist() == [[5.0, 5.0, 5.0]]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["models", "show", "nope"], "no model named 'nope'"),
        (["models", "show", "scaler/x"], "version 'x' is not a positive integer"),
        (["models", "show", "bad name"], "model name 'bad name' must start"),
        (["models", "show", "scaler@nope"], "model 'scaler' has no alias 'nope'"),
        (["models", "show", "scaler/9"], "model 'scaler' has no version 9"),
        (["models", "versions", "nope"], "no model named 'nope'"),
        (["models", "history", "nope"], "no model named 'nope'"),
        (["models", "history", "scaler", "--alias", "Nope"], "alias 'Nope' must match"),
        (["models", "alias", "scaler", "Champion", "1"], "alias 'Champion' must match"),
        (["models", "alias", "scaler", "latest", "1"], "'latest' is reserved"),
        (["models", "alias", "nope", "champion", "1"], "no model named 'nope'"),
        (["models", "alias", "scaler", "champion", "9"], "model 'scaler' has no version 9"),
        (["models", "alias", "scaler", "champion", "0"], "version must be a positive integer"),
        (["models", "alias", "scaler", "champion", "x"], "'x' is not a valid integer"),
        (["models", "alias", "scaler", "champion"], "give VERSION to move the alias, or --delete"),
        (["models", "alias", "scaler", "champion", "1", "--delete"], "(not both)"),
        (["models", "alias", "scaler", "staging", "--delete"], "model 'scaler' has no alias 'staging'"),
        (["models", "register", "scaler"], "give --run RUN_ID"),
        (["models", "register", "scaler", "--run", "999"], "no run with id 999"),
        (["models", "register", "scaler", "--run", "1", "--artifact-path", "nope"], "has no artifact 'nope'"),
        (
            ["models", "register", "scaler", "--file", "x.pkl", "--artifact-path", "m"],
            "does not go with --file",
        ),
        (["models", "register", "scaler", "--file", "/no/such/file.pkl"], "no such file or folder"),
        (["models", "register", "scaler", "--run", "1", "--flavor", "cobol"], "'cobol' is not one of"),
        (["models", "register", "scaler", "--run", "1", "--option", "form"], "'form' is not KEY=VALUE"),
        (["models", "register", "scaler", "--run", "1", "--example", "x.txt"], "must be a .npy, .json"),
        (["models", "register", "scaler", "--run", "1", "--example", "no.npy"], "no such file: no.npy"),
        (["models", "register", "bad/name", "--run", "1"], "model name 'bad/name' must start"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], runs: dict[str, int], argv: list[str], fragment: str
) -> None:
    ok(capsys, "models", "register", "scaler", "--run", str(runs["double"]))
    code, out, err = run_main(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("mlbox: error: ") and len(err.splitlines()) == 1, err
    assert fragment in err
    assert "Traceback" not in err


def test_unreadable_example_and_unregistrable_files_are_errors(
    capsys: pytest.CaptureFixture[str], runs: dict[str, int], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"not numpy")
    code, _, err = run_main(
        capsys, "models", "register", "m", "--run", str(runs["double"]), "--example", str(broken)
    )
    assert code == 2 and f"cannot read {broken}" in err and len(err.splitlines()) == 1
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Scaler(1.0)))
    code, _, err = run_main(capsys, "models", "register", "m", "--file", str(raw))
    assert code == 2 and "give flavor=" in err and len(err.splitlines()) == 1
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((2, 4)))
    code, out, err = run_main(
        capsys, "models", "register", "m", "--run", str(runs["double"]), "--example", str(wrong)
    )
    assert code == 0, err  # a Scaler runs on any shape: the example, not the file, sets the signature
    assert "inputs   tensor float64 [*, 4]" in out


def test_console_script_registers_and_refuses(subprocess_env: dict[str, str], runs: dict[str, int]) -> None:
    def mlbox_cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MLBOX), "models", *argv], env=subprocess_env, capture_output=True, text=True, timeout=60
        )

    proc = mlbox_cli("register", "scaler", "--run", str(runs["double"]))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("registered scaler version 1")
    proc = mlbox_cli("alias", "scaler", "champion", "1")
    assert proc.stdout == "scaler@champion: - -> 1\n"
    listed = json.loads(mlbox_cli("ls", "--json").stdout)
    assert listed[0]["aliases"] == {"champion": 1}
    proc = mlbox_cli("alias", "scaler", "champion", "7")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "mlbox: error: model 'scaler' has no version 7\n"


def test_compose_registers_a_chain_or_an_ensemble_of_existing_parts(
    capsys: pytest.CaptureFixture[str], runs: dict[str, int], services: Services
) -> None:
    ok(capsys, "models", "register", "double", "--run", str(runs["double"]))
    ok(capsys, "models", "register", "triple", "--run", str(runs["triple"]))
    ok(capsys, "models", "alias", "triple", "champion", "1")
    out = ok(capsys, "models", "compose", "x6", "double/1", "triple@champion")
    assert "registered x6 version 1  (composed: double/1 -> triple@champion)" in out
    out = ok(capsys, "models", "compose", "avg", "double", "triple", "--ensemble", "mean")
    assert "(composed: mean of double, triple)" in out
    version = services.registry.get_version("avg", 1)
    assert version.manifest["graph"] == "ensemble" and version.manifest["combine"] == "mean"
    code, _, err = run_main(capsys, "models", "compose", "bad", "double", "nope@champion")
    assert code == 2 and "part 'nope@champion'" in err
    code, _, err = run_main(capsys, "models", "compose", "bad", "double")
    assert code == 2 and "at least two parts" in err
