"""The `mlbox` command against a database under tmp_path.

Most cases call `mlbox.cli.main` in this process (it is what the console
script runs, error handling included); a few run the installed console script
as a real subprocess, to prove the same from the outside.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import polars as pl
import pytest

from mlbox import __version__
from mlbox.cli import cli
from mlbox.services import Services
from mlbox.tracking.series import group
from tests.helpers import MLBOX, run_main


@pytest.fixture
def seeded(services: Services) -> dict[str, int]:
    """Three runs in two experiments with params, metrics and an artifact."""
    t = services.tracking
    ids = {}
    for name, exp, lr, acc in (
        ("alpha", "digits", 0.1, 0.91),
        ("beta", "digits", 0.01, 0.95),
        ("gamma", "other", 0.5, 0.5),
    ):
        run = t.create_run(exp, name)
        t.log_params(run.id, {"lr": lr})
        t.log_metrics(run.id, group([("acc", s, 1.0, acc * (s + 1) / 3) for s in range(3)]))
        ids[name] = run.id
    t.log_artifact_bytes(ids["alpha"], "model/weights.bin", b"weights")
    t.set_tags(ids["alpha"], {"stage": "dev"})
    t.end_run(ids["alpha"])
    return ids


# -- commands ------------------------------------------------------------------------------------


def test_version_subprocess() -> None:
    proc = subprocess.run([str(MLBOX), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mlbox, version {__version__}"


def test_runs_ls(capsys: pytest.CaptureFixture[str], seeded: dict[str, int]) -> None:
    code, out, err = run_main(capsys, "runs", "ls")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "EXPERIMENT", "NAME", "STATUS"]
    assert [line.split()[2] for line in lines[1:4]] == ["gamma", "beta", "alpha"]  # newest first
    assert "finished" in lines[3] and "acc=0.91" in lines[3]
    assert lines[-1] == "3 of 3 runs"


def test_runs_ls_json_filter_order_paging(capsys: pytest.CaptureFixture[str], seeded: dict[str, int]) -> None:
    code, out, _ = run_main(capsys, "runs", "ls", "--json")
    assert code == 0
    page = json.loads(out)
    assert page["total"] == 3 and [r["name"] for r in page["runs"]] == ["gamma", "beta", "alpha"]
    assert page["runs"][2]["params"] == {"lr": "0.1"} and page["runs"][2]["tags"] == {"stage": "dev"}

    _, out, _ = run_main(
        capsys, "runs", "ls", "--json", "--filter", "metrics.acc > 0.9 and params.lr = '0.01'"
    )
    assert [r["name"] for r in json.loads(out)["runs"]] == ["beta"]
    _, out, _ = run_main(capsys, "runs", "ls", "--json", "--order-by", "metrics.acc ASC")
    assert [r["name"] for r in json.loads(out)["runs"]] == ["gamma", "alpha", "beta"]
    _, out, _ = run_main(capsys, "runs", "ls", "--json", "-e", "digits", "-o", "params.lr")
    assert [r["name"] for r in json.loads(out)["runs"]] == ["beta", "alpha"]
    code, out, _ = run_main(capsys, "runs", "ls", "--limit", "2")
    assert code == 0 and out.splitlines()[-1] == "2 of 3 runs (next: --offset 2)"
    _, out, _ = run_main(capsys, "runs", "ls", "--limit", "2", "--offset", "2")
    assert out.splitlines()[-1] == "1 of 3 runs" and "alpha" in out


def test_runs_show(capsys: pytest.CaptureFixture[str], seeded: dict[str, int]) -> None:
    rid = seeded["alpha"]
    code, out, err = run_main(capsys, "runs", "show", str(rid))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"run {rid}  alpha  [finished]  experiment digits"
    assert "params:\n  lr = 0.1" in out
    assert "tags:\n  stage = dev" in out
    assert "acc = 0.91  (step 2, 3 points)" in out
    assert "model/weights.bin  7 B" in out

    code, out, _ = run_main(capsys, "runs", "show", str(rid), "--json")
    assert code == 0
    detail = json.loads(out)
    assert detail["run"]["id"] == rid and detail["run"]["metrics"] == {"acc": pytest.approx(0.91)}
    assert [a["path"] for a in detail["artifacts"]] == ["model/weights.bin"]
    assert [(m["key"], m["count"]) for m in detail["metrics"]] == [("acc", 3)]


def test_runs_compare(capsys: pytest.CaptureFixture[str], seeded: dict[str, int]) -> None:
    a, b = seeded["alpha"], seeded["beta"]
    code, out, _ = run_main(capsys, "runs", "compare", str(a), str(b))
    assert code == 0
    header, lr, acc = out.splitlines()
    assert header.split() == ["run", str(a), "run", str(b)]
    assert lr.split() == ["lr", "0.1", "0.01"]
    assert acc.split() == ["acc", "0.91", "0.95"]
    _, out, _ = run_main(capsys, "runs", "compare", str(a), str(b), "--json")
    cmp = json.loads(out)
    assert cmp["run_ids"] == [a, b] and cmp["params"] == {"lr": ["0.1", "0.01"]}


def test_runs_export(capsys: pytest.CaptureFixture[str], seeded: dict[str, int], tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.parquet"
    code, out, _ = run_main(capsys, "runs", "export", str(seeded["beta"]), "-o", str(target))
    assert code == 0
    assert out.strip() == f"wrote 3 points to {target}"
    frame = pl.read_parquet(target)
    assert frame["key"].to_list() == ["acc"] * 3 and frame["step"].to_list() == [0, 1, 2]


def test_experiments_ls(capsys: pytest.CaptureFixture[str], seeded: dict[str, int]) -> None:
    code, out, _ = run_main(capsys, "experiments", "ls")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "NAME", "RUNS", "CREATED"]
    assert [line.split()[1:3] for line in lines] == [["digits", "2"], ["other", "1"]]
    _, out, _ = run_main(capsys, "experiments", "ls", "--json")
    assert [(e["name"], e["run_count"]) for e in json.loads(out)] == [("digits", 2), ("other", 1)]


def test_bare_group_prints_its_help(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = run_main(capsys, "runs")
    assert (code, err) == (0, "")
    assert out.startswith("Usage: mlbox runs") and "ls" in out and "show" in out


def test_help(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "runs" in out and "experiments" in out
    code, out, _ = run_main(capsys, "runs", "ls", "-h")
    assert code == 0 and "--filter" in out


# -- errors: one line on stderr, exit code 2 --------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["runs", "show", "424242"], "no run 424242"),
        (["runs", "show", "abc"], "'abc' is not a run id"),
        (["runs", "show"], "Missing argument 'RUN_ID'"),
        (["runs", "ls", "--filter", "metrics.acc >"], "filter: expression ends too early"),
        (["runs", "ls", "--filter", "colour = 'red'"], "unknown attribute 'colour'"),
        (["runs", "ls", "--order-by", "nope"], "order_by: unknown attribute 'nope'"),
        (["runs", "ls", "--bogus"], "No such option '--bogus'"),
        (["runs", "ls", "--limit", "0"], "limit must be between"),
        (["runs", "ls", "--limit", "many"], "'many' is not a valid integer"),
        (["runs", "compare", "1"], "compare needs two or more run ids"),
        (["runs", "compare", "1", "x"], "'x' is not a run id"),
        (["runs", "export", "1"], "Missing option '--output'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["up", "--port", "70000"], "must be between 0 and 65535"),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], seeded: dict[str, int], argv: list[str], fragment: str
) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    assert err.startswith("mlbox: error: ")
    assert fragment in err
    assert "Traceback" not in err


def test_export_to_a_folder_is_an_error(
    capsys: pytest.CaptureFixture[str], seeded: dict[str, int], tmp_path: Path
) -> None:
    code, _, err = run_main(capsys, "runs", "export", str(seeded["alpha"]), "-o", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1 and "is a folder" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_main(capsys, "runs", "export", str(seeded["alpha"]), "-o", str(blocker / "x.parquet"))
    assert code == 2 and err.startswith("mlbox: error: ") and len(err.splitlines()) == 1


def test_bad_setting_is_an_error(
    capsys: pytest.CaptureFixture[str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLBOX_PORT", "eighty")
    code, _, err = run_main(capsys, "runs", "ls")
    assert code == 2 and err.strip() == "mlbox: error: MLBOX_PORT='eighty' is not a number"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["runs", "show", "424242"], "no run 424242"),
        (["runs", "ls", "-f", "metrics.acc > 'x'"], "compares with numbers only"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_errors_from_the_console_script(
    subprocess_env: dict[str, str], argv: list[str], fragment: str
) -> None:
    proc = subprocess.run([str(MLBOX), *argv], env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("mlbox: error: ") and fragment in proc.stderr


def test_closed_pipe_is_quiet(subprocess_env: dict[str, str], services: Services) -> None:
    t = services.tracking
    for _ in range(300):
        t.create_run()
    proc = subprocess.Popen(
        [str(MLBOX), "runs", "ls", "-n", "300"],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "internal error" not in err
    assert proc.returncode in (0, 1)


# -- every command documents itself (the sqlite-utils test_docs idea) ----------------------------------


def _walk(command: click.Command, path: str = "mlbox") -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_walk_finds_the_commands() -> None:
    names = {path for path, _ in _walk(cli)}
    assert {
        "mlbox",
        "mlbox runs",
        "mlbox runs ls",
        "mlbox runs show",
        "mlbox experiments ls",
        "mlbox up",
    } <= names


@pytest.mark.parametrize(("path", "command"), list(_walk(cli)), ids=[p for p, _ in _walk(cli)])
def test_every_command_and_option_has_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    assert (command.get_short_help_str() or "").strip()
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{path} {param.opts[0]} has no help text"
