"""Jobs run where their user is, and a failed job says why where the user looks.

The CLI runs in process (`tests.helpers.run_main`) against a home under
``tmp_path``; the test process then plays the appliance (`reconcile_once`)
with an environment other than the submitter's (``FOO`` removed after the
submit, ``PATH`` without the submitter's folder), so a job that still sees the
submitter's ``FOO`` and ``python`` can only have them from the capture.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.scheduler.environment import activate, base_env, capture
from mlbox.scheduler.outcomes import failure_reason
from mlbox.services import Services
from tests.helpers import run_main

BASE = "http://127.0.0.1"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A folder that looks like an activated virtualenv: ``bin/python`` (a link to this
    interpreter), ``bin/sh`` and ``bin/which`` are found first on its PATH."""
    root = tmp_path / "myenv"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    return root


def _activate(monkeypatch: pytest.MonkeyPatch, venv: Path) -> None:
    monkeypatch.setenv("PATH", f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))


def _run_jobs(services: Services, timeout: float = 30.0) -> None:
    """Play the appliance until no job is waiting or running."""
    sched = services.scheduler
    deadline = time.monotonic() + timeout
    while sched.list_jobs(["queued", "running", "preempted"]):
        assert time.monotonic() < deadline, "jobs did not finish"
        sched.reconcile_once()
        sched.wait_for_work(0.05)


def _log(services: Services, job_id: int) -> str:
    return services.scheduler.read_log(job_id)[0].decode()


def test_capture_leaves_out_secrets_and_the_submitters_session() -> None:
    token = "tok-123456"
    env = {
        "PATH": "/venv/bin:/usr/bin",
        "VIRTUAL_ENV": "/venv",
        "FOO": "x",
        "MLBOX_TOKEN": token,
        "CURL_AUTH": f"Bearer {token}",
        "MLBOX_API_SECRET": "s",
        "MLBOX_RUN_ID": "7",
        "MLBOX_JOB_ID": "3",
        "MLBOX_HOME": "/elsewhere",
        "CUDA_VISIBLE_DEVICES": "0",
        "MLBOX_GPUS": "2",
        "LS_COLORS": "x" * 50,
        "BASH_FUNC_f%%": "() { :; }",
        "HUGE": "y" * 20_000,
    }
    assert capture(env, secrets=[token]) == {
        "PATH": "/venv/bin:/usr/bin",
        "VIRTUAL_ENV": "/venv",
        "FOO": "x",
        "MLBOX_GPUS": "2",
    }
    appliance = {"PATH": "/usr/bin", "HOME": "/root", "VIRTUAL_ENV": "/app", "MLBOX_TOKEN": token}
    assert base_env("inherit", appliance) == {}
    assert base_env("clean", appliance) == {"PATH": "/usr/bin", "HOME": "/root"}
    assert base_env("appliance", appliance) == {"PATH": "/usr/bin", "HOME": "/root", "VIRTUAL_ENV": "/app"}


def test_the_venv_mlbox_runs_from_is_activated_unless_the_shell_activated_one() -> None:
    plain = {"PATH": "/usr/bin"}
    got = activate(plain, prefix="/p/.venv", base_prefix="/usr", bin_dir="/p/.venv/bin")
    assert got == {"PATH": "/p/.venv/bin:/usr/bin", "VIRTUAL_ENV": "/p/.venv"}
    active = {"PATH": "/other/bin:/usr/bin", "VIRTUAL_ENV": "/other"}
    assert activate(active, prefix="/p/.venv", base_prefix="/usr", bin_dir="/p/.venv/bin") == active
    assert activate(plain, prefix="/usr", base_prefix="/usr", bin_dir="/usr/bin") == plain


def test_a_job_runs_in_the_submitters_environment_without_the_token(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    venv: Path,
    tmp_path: Path,
) -> None:
    token = services.home.token()
    _activate(monkeypatch, venv)
    monkeypatch.setenv("FOO", "x")
    monkeypatch.setenv("MLBOX_TOKEN", token)
    monkeypatch.setenv("AUTH_HEADER", f"Bearer {token}")
    monkeypatch.setenv("MLBOX_RUN_ID", "424242")
    monkeypatch.chdir(tmp_path)
    script = "echo FOO=$FOO; which python; env"
    code, out, err = run_main(capsys, "jobs", "submit", "--", "sh", "-c", script)
    assert code == 0, err
    code, _, err = run_main(
        capsys, "jobs", "submit", "--env-clean", "--env", "BAR=y", "--", "sh", "-c", script
    )
    assert code == 0, err
    inherit, clean = sorted(j.id for j in services.scheduler.list_jobs())
    stored = services.scheduler.get(inherit).spec
    assert stored.env["FOO"] == "x" and token not in str(stored.env) and "MLBOX_RUN_ID" not in stored.env
    # the appliance's own environment has neither FOO nor the venv
    for name in ("FOO", "MLBOX_TOKEN", "AUTH_HEADER", "VIRTUAL_ENV", "MLBOX_RUN_ID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", os.environ["PATH"].split(os.pathsep, 1)[1])
    monkeypatch.setenv("APPLIANCE_ONLY", "1")
    _run_jobs(services)

    job = services.scheduler.get(inherit)
    assert job.state == "succeeded", _log(services, inherit)
    log = _log(services, inherit)
    assert "FOO=x" in log and f"{venv}/bin/python\n" in log
    assert token not in log and "APPLIANCE_ONLY" not in log and "MLBOX_RUN_ID=424242" not in log
    assert f"MLBOX_RUN_ID={job.run_id}" in log
    assert (job.python, job.env_prefix) == (str(venv / "bin" / "python"), str(venv))
    code, out, _ = run_main(capsys, "jobs", "show", str(inherit))
    assert f"python    {venv}/bin/python  (env {venv})" in out and "env       inherit" in out

    log = _log(services, clean)
    assert services.scheduler.get(clean).state == "succeeded", log
    assert "FOO=\n" in log and "BAR=y" in log and "APPLIANCE_ONLY" not in log and str(venv) not in log


def test_mlbox_submit_captures_and_runs_on_the_submitters_python(
    monkeypatch: pytest.MonkeyPatch, services: Services, venv: Path, tmp_path: Path
) -> None:
    import mlbox

    _activate(monkeypatch, venv)
    monkeypatch.setenv("FOO", "from-python")
    script = tmp_path / "show.py"
    script.write_text("import os, sys\nprint('FOO', os.environ.get('FOO'))\nprint('EXE', sys.executable)\n")
    job = mlbox.submit(str(script))
    assert job.spec.env_policy == "inherit" and job.spec.python == sys.executable
    monkeypatch.delenv("FOO")
    _run_jobs(services)
    log = _log(services, job.id)
    assert "FOO from-python" in log and f"EXE {sys.executable}" in log


def test_api_drops_the_token_from_an_explicit_env(services: Services, tmp_path: Path) -> None:
    token = services.home.token()
    with TestClient(create_app(services, token=token), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        body = {
            "name": "e",
            "command": ["sh", "-c", "env"],
            "env": {"A": "1", "T": token},
            "env_policy": "clean",
            "workdir": str(tmp_path),
        }
        r = c.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["env"] == {"A": "1"} and r.json()["spec"]["env_policy"] == "clean"
        bad = c.post("/api/v1/jobs", json={**body, "env_policy": "host"})
        assert bad.status_code == 400 and "env_policy" in bad.text


# -- a failed job says why ----------------------------------------------------------------------


def test_failure_reason_from_a_log() -> None:
    traceback = (
        "--- mlbox: job 1 attempt 1 on GPUs [] at 2024-01-01 00:00:00; python /x ---\n"
        "Traceback (most recent call last):\n"
        '  File "train.py", line 1, in <module>\n'
        "    import mlbox\n"
        "ModuleNotFoundError: No module named 'mlbox'\n"
    )
    assert failure_reason(traceback) == "ModuleNotFoundError: No module named 'mlbox'"
    assert failure_reason("mlbox: cannot start 'x': no such file\n") == "cannot start 'x': no such file"
    assert failure_reason("loss 3\nsomething went wrong\n") == "something went wrong"
    assert failure_reason("") is None


def test_failed_jobs_say_why_in_ls_show_and_the_api(
    capsys: pytest.CaptureFixture[str], services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_main(capsys, "jobs", "submit", "--", "nosuchcommand")[0] == 0
    assert run_main(capsys, "jobs", "submit", "--", sys.executable, "-c", "import nosuchmodule")[0] == 0
    _run_jobs(services)
    missing, broken = sorted(j.id for j in services.scheduler.list_jobs())
    code, out, _ = run_main(capsys, "jobs", "ls")
    assert code == 0
    assert "cannot start 'nosuchcommand': no such file" in out
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in out
    code, out, _ = run_main(capsys, "jobs", "show", str(missing))
    assert "[failed]  attempt 1 failed (exit code 127): cannot start 'nosuchcommand': no such file" in out
    token = services.home.token()
    with TestClient(create_app(services, token=token), base_url=BASE) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        got = c.get(f"/api/v1/jobs/{broken}").json()
    assert got["message"].endswith("ModuleNotFoundError: No module named 'nosuchmodule'")


def test_jobs_wait_without_an_appliance_says_so(
    capsys: pytest.CaptureFixture[str], services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_main(capsys, "jobs", "submit", "--", "true")[0] == 0
    job_id = services.scheduler.list_jobs()[0].id
    started = time.monotonic()
    code, out, err = run_main(capsys, "jobs", "wait", str(job_id))
    assert time.monotonic() - started < 5
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no appliance is running" in err and "mlbox up" in err


def test_submit_help_has_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (("jobs", "submit"), ("sweep",)):
        code, out, _ = run_main(capsys, *command, "--help")
        assert code == 0 and "``" not in out and "--env-clean" in out


@pytest.fixture
def sweep_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "space.yaml").write_text("lr: {type: float, low: 0.001, high: 0.1, log: true}\n")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_sweep_exits_non_zero_and_says_why_when_every_trial_failed(
    capsys: pytest.CaptureFixture[str], services: Services, sweep_dir: Path
) -> None:
    code, out, err = run_main(
        capsys,
        "sweep",
        "space.yaml",
        "--metric",
        "loss",
        "--trials",
        "2",
        "--",
        sys.executable,
        "-c",
        "import nosuchmodule",
    )
    assert code == 1, out + err
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in out  # each trial's line
    assert "every trial failed" in err and "nosuchmodule" in err and err.count("\n") == 1
