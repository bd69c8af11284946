"""Virtual environments for the real clients and peers some tests talk to (tritonclient,
TensorFlow, MLflow …), kept apart from mlbox's own ``.venv``.

Each lives under ``~/.cache/mlbox/test-venvs/NAME`` (``$MLBOX_TEST_VENVS`` overrides), is made
on its first use (pip needs an index once) and is reused while its probe imports; a test that
cannot have its venv is skipped with pip's last words, never failed: the peer, not mlbox, is
missing. Outside the checkout so that a clean clone (CI) reuses them as it reuses pip's cache:
made inside, MLflow's alone cost every CI run 40-60 s. A lock per venv keeps two test runs
from installing into one at once.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

VENVS = (
    Path(
        os.environ.get("MLBOX_TEST_VENVS")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlbox" / "test-venvs"
    )
    / f"py{sys.version_info.major}{sys.version_info.minor}"
)


def python_of(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure(
    name: str,
    requirements: Sequence[str],
    probe: str,
    *,
    env: Mapping[str, str] | None = None,
    install_timeout_s: float = 1800,
) -> Path:
    """The interpreter of venv ``name`` in which ``probe`` (Python source) runs; made or
    completed with ``requirements`` first when it does not."""
    python = python_of(name)
    venv = python.parents[1]

    def probed() -> bool:
        if not python.exists():
            return False
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, env=env, timeout=300, check=False
        )
        return done.returncode == 0

    VENVS.mkdir(parents=True, exist_ok=True)
    with open(venv.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be making it: wait for it
        if probed():
            return python
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        started = time.monotonic()
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
            capture_output=True,
            text=True,
            timeout=install_timeout_s,
            check=False,
        )
        if pip.returncode != 0:
            pytest.skip(f"cannot install {' '.join(requirements)} (offline?): {pip.stderr.strip()[-400:]}")
        assert probed(), f"{' '.join(requirements)} installed in {venv} but `{probe}` fails"
    print(f"[{name}] installed into {venv} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return python
