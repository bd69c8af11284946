"""What produced a run: code version (git) and environment (Python, packages, host).

Captured once at run start. Git is asked with short timeouts and every failure
means "unknown", never an error: a run outside a repository is normal.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class CodeVersion:
    sha: str | None
    dirty: bool | None
    diff: str  # `git diff HEAD` when dirty, else ""
    root: str | None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def code_version(start: Path | None = None) -> CodeVersion:
    """The git state of the folder the program runs from (its script, else cwd)."""
    if start is None:
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None)
        start = Path(script).resolve().parent if script else Path.cwd()
    root = _git(["rev-parse", "--show-toplevel"], start)
    if root is None:
        return CodeVersion(None, None, "", None)
    root_path = Path(root.strip())
    sha = (_git(["rev-parse", "HEAD"], root_path) or "").strip() or None
    status = _git(["status", "--porcelain", "--untracked-files=no"], root_path) or ""
    dirty = bool(status.strip())
    diff = (_git(["diff", "HEAD"], root_path) or "") if dirty and sha else ""
    return CodeVersion(sha, dirty, diff, str(root_path))


def gpus() -> list[dict[str, object]]:
    """GPUs seen through NVML when it is installed; `MLBOX_GPUS` simulates them."""
    simulated = os.environ.get("MLBOX_GPUS")
    if simulated:
        ids = simulated.split(",") if "," in simulated else [str(i) for i in range(int(simulated))]
        return [{"index": i.split(":")[0], "name": "simulated"} for i in ids]
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            found.append({"index": str(i), "name": pynvml.nvmlDeviceGetName(h), "memory": mem.total})
        return found
    except Exception:  # no driver: no GPUs, not an error
        return []


def packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name] = dist.version
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def environment() -> dict[str, object]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "gpus": gpus(),
        "executable": sys.executable,
        "argv": list(sys.argv),
    }
