"""Virtual environments for the real clients and peers some tests talk to (tritonclient,
TensorFlow, MLflow …), kept apart from mlbox's own ``.venv``.

Each lives under ``.bench/venvs/NAME`` (git-ignored), is made on its first use (pip needs an
index once) and is reused while its probe imports; a test that cannot have its venv is
skipped with pip's last words, never failed: the peer, not mlbox, is missing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench" / "venvs"


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

    def probed() -> bool:
        if not python.exists():
            return False
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, env=env, timeout=300, check=False
        )
        return done.returncode == 0

    if probed():
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(python.parents[1])], check=True, timeout=300)
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
    assert probed(), f"{' '.join(requirements)} installed in {python.parents[1]} but `{probe}` fails"
    print(
        f"[{name}] installed into {python.parents[1]} in {time.monotonic() - started:.0f} s", file=sys.stderr
    )
    return python
