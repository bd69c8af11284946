"""One real local Ray head for the whole test session (loopback only), shared by the test_ray_* modules.

`ray start --head` on free loopback ports, 4 CPUs and 2 GPUs declared (so a GPU request
is Ray's to place); its processes are stopped by pid when the session's Python exits.
``MLBOX_TEST_RAY=ray://127.0.0.1:PORT`` uses a head already running instead.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

RAY = Path(sys.executable).with_name("ray")
START_TRIES = 3
_started: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours(temp: str) -> list[psutil.Process]:
    """Every process of this head: their command lines name its temp folder."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(temp in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_head(temp: str) -> None:
    procs = _ours(temp)
    for proc in list(procs):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.extend(proc.children(recursive=True))
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)
    shutil.rmtree(temp, ignore_errors=True)


def shared_head() -> str:
    """``ray://127.0.0.1:<dashboard port>``, started on first use. On a busy machine the raylet
    may give up waiting for its agent (a fixed wait in Ray), so a start is retried."""
    given = os.environ.get("MLBOX_TEST_RAY")
    if given:
        assert given.startswith("ray://127.0.0.1:"), "MLBOX_TEST_RAY must be a loopback head"
        return given
    if "address" in _started:
        return _started["address"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOX_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", PATH=f"{RAY.parent}{os.pathsep}{env.get('PATH', '')}")
    env["RAY_JOB_STOP_SIGNAL_TIMEOUT_S"] = "2"
    said = ""
    for _ in range(START_TRIES):
        temp = tempfile.mkdtemp(prefix="mlbox-ray-", dir="/tmp")  # short: Ray's socket paths
        dashboard = _free_port()
        cmd = [
            str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
            f"--ray-client-server-port={_free_port()}", "--num-cpus=4", "--num-gpus=2",
            f"--temp-dir={temp}", "--disable-usage-stats",
        ]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        if done.returncode == 0:
            atexit.register(stop_head, temp)
            _started["address"] = f"ray://127.0.0.1:{dashboard}"
            return _started["address"]
        said = (done.stdout + done.stderr)[-2000:]
        stop_head(temp)
    pytest.fail(f"ray start --head failed {START_TRIES} times: {said}")
