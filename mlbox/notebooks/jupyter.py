"""How mlbox starts Jupyter: the server's command line, its private folders, its kernels.

Each notebook server gets its own folder under ``$MLBOX_HOME/notebooks/<id>``:
``runtime/`` (Jupyter's runtime files, among them ``jpserver-<pid>.json``,
which says which port the server really bound), ``jupyter/`` (first on
``JUPYTER_PATH``, holding a ``python3`` kernelspec that runs the appliance's
own interpreter, so ``import mlbox`` works whatever other kernels the user
has installed) and the ``token`` file (mode 0600; the token never appears on
a command line, where any local user could read it with ``ps``).

The server binds 127.0.0.1 only and is told not to reach the network:
no news feed, no update check, no PyPI extension manager.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlbox.store import private

KERNEL_NAME = "python3"

LAB_OPTIONS = (
    "--no-browser",
    "--ip=127.0.0.1",
    "--ServerApp.allow_remote_access=False",
    "--LabApp.news_url=None",
    "--LabApp.extension_manager=readonly",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
)


@dataclass(frozen=True)
class ServerPaths:
    """The private folders of one notebook server."""

    root: Path

    @classmethod
    def of(cls, notebooks_dir: Path, notebook_id: int) -> ServerPaths:
        return cls(notebooks_dir / str(notebook_id))

    @property
    def runtime(self) -> Path:
        return self.root / "runtime"

    @property
    def jupyter_path(self) -> Path:
        return self.root / "jupyter"

    @property
    def token_file(self) -> Path:
        return self.root / "token"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (temp file, fsync, rename)."""
    private.make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_kernelspec(jupyter_path: Path, mlbox_home: Path) -> Path:
    """A ``python3`` kernelspec running this interpreter with ``MLBOX_HOME`` set; returns its folder.

    Put first on ``JUPYTER_PATH``, it shadows any other ``python3`` kernel
    (a user's ``~/.local/share/jupyter/kernels``), so a kernel always runs
    where mlbox is installed.
    """
    from ipykernel.kernelspec import get_kernel_dict

    spec: dict[str, Any] = dict(get_kernel_dict())
    spec["argv"] = [sys.executable, *spec["argv"][1:]]
    spec["display_name"] = "Python 3 (mlbox)"
    spec["env"] = {"MLBOX_HOME": str(mlbox_home)}
    folder = jupyter_path / "kernels" / KERNEL_NAME
    write_private(folder / "kernel.json", json.dumps(spec, indent=1))
    return folder


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (Jupyter retries others if it is taken before it binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def lab_argv(port: int, root_dir: Path) -> list[str]:
    # Jupyter refuses to start as root unless told; containers often run as root.
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        *LAB_OPTIONS,
        *as_root,
        f"--port={port}",
        f"--ServerApp.root_dir={root_dir}",
    ]


def read_server_info(runtime_dir: Path) -> dict[str, Any] | None:
    """The newest ``jpserver-*.json`` a server wrote into its runtime folder (port, pid, url)."""
    try:
        files = sorted(runtime_dir.glob("jpserver-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for path in files:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # written as we read it, or a leftover: the next pass looks again
        if isinstance(info, dict) and isinstance(info.get("port"), int):
            return info
    return None
