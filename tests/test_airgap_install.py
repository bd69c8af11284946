"""The offline install: ``scripts/wheelhouse`` builds a wheelhouse, pip installs mlbox from it into
a fresh venv inside a network namespace with no interfaces (``unshare -n``), and ``mlbox demo
--quick`` runs there, also with no network.

Slow (the wheelhouse is about 500 MB and 170 wheels; building it takes minutes, installing it
one or two more), so it runs only when asked: ``MLBOX_TEST_OFFLINE_INSTALL=1``, with
``MLBOX_WHEELHOUSE=DIR`` to reuse a wheelhouse made before (else one is built under the test's
tmp folder; torch comes from ``MLBOX_TORCH_INDEX`` as in ``scripts/wheelhouse``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_airgap_urls import external_urls

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("MLBOX_TEST_OFFLINE_INSTALL"),
        reason="slow (minutes, ~500 MB): set MLBOX_TEST_OFFLINE_INSTALL=1 to build and install a wheelhouse",
    ),
    pytest.mark.timeout(1800),
]


def _no_network_namespace() -> str | None:
    """Why ``unshare -n`` cannot run here, or None when it can."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare (util-linux) or ip (iproute2) is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is refused here (needs root or user namespaces): {probe.stderr.strip()}"
    return None


def _offline(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``cmd`` in a new network namespace: loopback only (brought up, as on any air-gapped
    machine: the demo talks to its own appliance on 127.0.0.1), no other interface."""
    up = 'ip link set lo up && exec "$0" "$@"'
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", up, *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_install_from_the_wheelhouse_and_run_the_demo_with_no_network(tmp_path: Path) -> None:
    why = _no_network_namespace()
    if why:
        pytest.skip(why)
    given = os.environ.get("MLBOX_WHEELHOUSE")
    wheelhouse = Path(given) if given else tmp_path / "wheelhouse"
    if not given:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "wheelhouse"), str(wheelhouse)], check=True)
    lock = (wheelhouse / "requirements.lock").read_text().splitlines()
    manifest = json.loads((wheelhouse / "manifest.json").read_text())["wheels"]
    assert len(manifest) == len([x for x in lock if not x.startswith("#")])
    assert {w["name"] for w in manifest} >= {"mlbox", "torch", "jupyterlab", "duckdb", "textual"}
    assert all(w["licence"] and len(w["sha256"]) == 64 for w in manifest)

    # a fresh venv (Python's own bundled pip: nothing fetched), pip isolated from this machine's config
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    work = tmp_path / "elsewhere"  # not the repository: the installed mlbox must be the one imported
    work.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_CACHE_DIR": "1",
        "MLBOX_HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
    }
    # the namespace really has no network: nothing resolves, nothing connects
    probe = _offline(
        [str(venv / "bin" / "python"), "-c", "import socket; socket.create_connection(('1.1.1.1', 53), 3)"],
        env,
        work,
        60,
    )
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower(), probe.stderr
    install = _offline(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--require-hashes",
            "-r",
            str(wheelhouse / "requirements.lock"),
        ],
        env,
        work,
        1200,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    where = _offline(
        [str(venv / "bin" / "python"), "-c", "import mlbox; print(mlbox.__file__)"], env, work, 120
    )
    installed = Path(where.stdout.strip()).parent
    assert installed.is_relative_to(venv), where.stdout + where.stderr

    demo = _offline([str(venv / "bin" / "mlbox"), "demo", "--quick"], env, work, 900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    help_ = _offline([str(venv / "bin" / "mlbox"), "doctor"], env, work, 120)
    assert help_.returncode == 0, help_.stdout + help_.stderr

    # the installed package (a real wheel: store/ and tui/ inside it) names no outside place
    found = sorted(
        {
            (str(p.relative_to(installed)), u)
            for p in installed.rglob("*")
            if p.is_file() and p.suffix in {".py", ".tcss", ".css", ".html", ".j2", ".js", ".json"}
            for u in external_urls(p.read_text(errors="replace"))
        }
    )
    assert found == [("notebooks/export.py", "https://…")], found
