"""Peer tools (MLflow, …) in their own virtual environments, for benchmarks.

A peer must never be installed into mlbox's own ``.venv``: its dependencies
would shadow ours and the comparison would measure a different mlbox. Each
peer gets ``<repo>/.bench/venvs/<name>`` (git-ignored), made once with
``python -m venv`` and ``pip install``, and reused while it still imports.
Installing needs the network; running a benchmark afterwards does not.

On a machine without the network (the lent 16-core GPU machine, say), a peer
installed beforehand (wheels carried and unpacked with ``pip install
--target``) is named instead: ``MLBOX_BENCH_<NAME>_PYTHON`` (``<NAME>`` is the
peer's name upper-cased, ``-`` as ``_``; ``MLBOX_BENCH_MLFLOW_PYTHON=python3``)
is the interpreter that imports it, and no venv is made. That interpreter finds
the peer through ``PYTHONPATH``, so its processes keep it (`Peer.environ`),
where a venv peer's processes drop it lest mlbox's path shadow the peer's.
Such a peer has no ``bin/`` of console scripts: a benchmark runs one through
`Peer.script` (``mlflow``, ``mlserver``: the venv's script, or the interpreter
calling that script's entry point), and a peer that starts another by name from
``PATH`` (``mlflow models serve`` runs ``uvicorn``) gets it through
``Peer.environ(..., path_scripts=...)``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".bench" / "venvs"
SHIMS = ROOT / ".bench" / "shims"
"""Per preinstalled peer, executable files standing in for its console scripts on ``PATH``."""

RUN_SCRIPT = (
    "import sys\n"
    "from importlib.metadata import entry_points\n"
    "name = sys.argv.pop(1)\n"
    "found = entry_points(group='console_scripts', name=name)\n"
    "if not found:\n"
    "    sys.exit(f'no console script {name!r} installed for this interpreter')\n"
    "sys.argv[0] = name\n"
    "sys.exit(next(iter(found)).load()())\n"
)
"""Source run by ``python -c`` with the script's name first: what pip's console script would do."""


@dataclass(frozen=True)
class Peer:
    """A ready peer venv: its interpreter and the installed version of the package."""

    name: str
    python: Path
    version: str
    preinstalled: bool = False  # named by MLBOX_BENCH_<NAME>_PYTHON, found through PYTHONPATH

    def environ(self, base: Mapping[str, str], *, path_scripts: Sequence[str] = ()) -> dict[str, str]:
        """The environment the peer's processes run with, from ``base``: a venv peer drops
        ``PYTHONPATH`` (mlbox's path must not shadow the venv's packages); a preinstalled one keeps
        it, since that is where its packages are. ``path_scripts``: console scripts the peer starts
        by name, put first on ``PATH`` (the venv's ``bin``, or shims calling the interpreter)."""
        env = dict(base)
        if not self.preinstalled:
            env.pop("PYTHONPATH", None)
        if path_scripts:
            folder = self._shims(path_scripts) if self.preinstalled else self.python.parent
            env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
        return env

    def script(self, name: str) -> list[str]:
        """The command that runs the peer's console script ``name`` (``mlflow``, ``mlserver``): the
        venv's ``bin/NAME``, or the preinstalled interpreter running that entry point (`RUN_SCRIPT`)."""
        if not self.preinstalled:
            return [str(self.python.parent / name)]
        return [str(self.python), "-c", RUN_SCRIPT, name]

    def _shims(self, names: Sequence[str]) -> Path:
        """A folder of executables named ``names``, each running the script through `script`."""
        folder = SHIMS / self.name
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shim = folder / name
            command = " ".join(shlex.quote(part) for part in self.script(name))
            text = f'#!/bin/sh\nexec {command} "$@"\n'
            if not shim.exists() or shim.read_text() != text:
                tmp = shim.with_suffix(".tmp")
                tmp.write_text(text)
                tmp.chmod(0o755)
                tmp.replace(shim)
        return folder


class PeerUnavailable(Exception):
    """The peer could not be installed or imported; the message says why."""


def _python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed_version(python: Path, module: str) -> str | None:
    """The module's ``__version__`` as the venv sees it, or None if it does not import."""
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", f"import json, {module}; print(json.dumps({module}.__version__))"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        return None
    try:
        return str(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return None


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def override_variable(name: str) -> str:
    """The environment variable naming a preinstalled interpreter for peer ``name``."""
    return f"MLBOX_BENCH_{name.upper().replace('-', '_')}_PYTHON"


def ensure_peer(name: str, requirement: str, module: str, *, log: bool = True) -> Peer:
    """The peer's venv, made and filled on first use (pip picks the latest release), or the
    interpreter ``MLBOX_BENCH_<NAME>_PYTHON`` names, where the peer is already installed.

    Raises `PeerUnavailable` with pip's last lines when the install fails
    (offline machine, no wheel for this Python, …), or when the named interpreter
    does not import the module.
    """
    variable = override_variable(name)
    named = os.environ.get(variable, "").strip()
    if named:
        found = shutil.which(named)
        if found is None:
            raise PeerUnavailable(f"{variable}={named}: no such interpreter")
        version = _installed_version(Path(found), module)
        if version is None:
            raise PeerUnavailable(f"{variable}={named} does not import {module} (PYTHONPATH?)")
        return Peer(name, Path(found), version, preinstalled=True)
    venv = VENVS / name
    python = _python_of(venv)
    version = _installed_version(python, module)
    if version is not None:
        return Peer(name, python, version)
    if log:
        print(f"[bench] installing {requirement} into {venv} (first run only; a minute or two) …", flush=True)
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300
        )
        if made.returncode != 0:
            raise PeerUnavailable(f"python -m venv {venv} failed:\n{_tail(made.stderr or made.stdout)}")
    try:
        pip = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--upgrade",
                requirement,
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"pip install {requirement} took longer than 30 minutes") from None
    if pip.returncode != 0:
        raise PeerUnavailable(f"pip install {requirement} failed:\n{_tail(pip.stderr or pip.stdout)}")
    version = _installed_version(python, module)
    if version is None:
        raise PeerUnavailable(f"{requirement} installed into {venv} but `import {module}` fails")
    return Peer(name, python, version)
