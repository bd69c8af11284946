"""The README's sweep command, run as written from a user's venv while ``mlbox up`` runs from another.

The construction, cheap and honest:

* the appliance is ``mlbox up`` started from mlbox's own virtualenv (the one
  running the tests), with that environment's ``PATH`` and no ``VIRTUAL_ENV``;
* the user's project is a fresh folder holding ``space.yaml``, ``train.py``
  and its own ``.venv``: ``python -m venv --without-pip`` off the base
  interpreter (a few hundred milliseconds, nothing downloaded), made able to
  import mlbox by one ``.pth`` line that adds mlbox's venv's site-packages as a
  site dir (so its editable install and the dependencies are found), and a
  ``.venv/bin/mlbox`` script on that venv's python, as ``pip install`` would
  write it. Its ``sys.prefix`` is the user's ``.venv``, not mlbox's;
* the tour's line is run from the project folder exactly as the README writes
  it (``.venv/bin/mlbox sweep space.yaml --metric val_loss --trials 20
  --parallel 2 --pruner asha -- python train.py``), the venv not activated;
* ``train.py`` writes ``sys.prefix`` and ``sys.executable`` to a file and logs
  ``val_loss``, so the test proves every trial ran on the user's venv's python
  (before the fix, they ran in the appliance's environment: ``python`` was
  whatever its PATH held, and with no mlbox there each trial failed with
  ``No module named 'mlbox'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import MLBOX, stop, wait_announced

TOUR = ".venv/bin/mlbox sweep space.yaml --metric val_loss --trials 20 --parallel 2 --pruner asha -- python train.py"

TRAIN = """
import json, os, sys
import mlbox

with open(os.environ["TOUR_TRACE"], "a") as f:
    f.write(json.dumps({"prefix": sys.prefix, "executable": sys.executable}) + "\\n")
lr = mlbox.trial_params({"lr": 0.01})["lr"]
for step in range(3):
    mlbox.log_metric("val_loss", (lr - 0.03) ** 2 + 1.0 / (step + 1), step=step)
"""


def _user_venv(project: Path) -> Path:
    venv = project / ".venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    purelib = Path(
        subprocess.check_output(
            [venv / "bin" / "python", "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    mlbox_site = sysconfig.get_paths()["purelib"]
    (purelib / "mlbox_dev.pth").write_text(f"import site; site.addsitedir({mlbox_site!r})\n")
    script = venv / "bin" / "mlbox"
    script.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom mlbox.cli import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    return venv


def test_tour_sweep_runs_in_the_users_venv_beside_an_appliance_from_another(
    subprocess_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "space.yaml").write_text("lr: {type: float, low: 0.001, high: 0.1, log: true}\n")
    (project / "train.py").write_text(TRAIN)
    venv = _user_venv(project)
    trace = tmp_path / "trace.jsonl"

    appliance_env = {k: v for k, v in subprocess_env.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    appliance_env.update({"MLBOX_SCHEDULER_TICK_S": "0.1", "MLBOX_SCHEDULER_CPUS": "2"})
    log = tmp_path / "up.log"
    with open(log, "ab") as out:
        up = subprocess.Popen(
            [str(MLBOX), "up", "--port", "0"],
            env=appliance_env,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=tmp_path,
        )
    try:
        wait_announced(home, up, log=log)
        user_env = {**appliance_env, "TOUR_TRACE": str(trace)}
        user_env.pop("MLBOX_SCHEDULER_TICK_S")
        done = subprocess.run(
            TOUR.split(), cwd=project, env=user_env, capture_output=True, text=True, timeout=240
        )
    finally:
        stop(up)

    assert done.returncode == 0, done.stdout + done.stderr + log.read_text()
    assert "No module named" not in done.stdout + done.stderr
    ran = [json.loads(line) for line in trace.read_text().splitlines()]
    assert ran, done.stdout
    assert {r["prefix"] for r in ran} == {str(venv)}, (ran, done.stdout)
    assert all(os.path.dirname(r["executable"]) == str(venv / "bin") for r in ran)
    assert "best: trial" in done.stdout and "complete" in done.stdout
    # the record says so too: each trial's job names the user's python and venv
    from mlbox.services import Services
    from mlbox.settings import Settings

    jobs = Services.open(Settings.from_env()).scheduler.list_jobs(owner="sweep:1")
    assert len(jobs) == 20
    assert {(j.python, j.env_prefix, j.spec.env_policy) for j in jobs} == {
        (str(venv / "bin" / "python"), str(venv), "inherit")
    }


@pytest.fixture(autouse=True)
def _no_stray_jobs(home: Path) -> object:
    """Trials the sweep left running (a failed assertion mid-sweep) are killed with their groups."""
    yield None
    from mlbox.services import Services
    from mlbox.settings import Settings

    scheduler = Services.open(Settings.from_env()).scheduler
    for job in scheduler.list_jobs(["running"]):
        if job.pid:
            with contextlib.suppress(OSError):
                os.killpg(job.pid, signal.SIGKILL)
