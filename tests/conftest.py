"""Shared fixtures. Tests use real files under tmp_path and real sockets on loopback.

A guard refuses any socket connection to a non-loopback address in the test
process (rule: offline always), so a test that reaches the network fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Hypothesis keeps its example database outside the working folder.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "mlbox-hypothesis"))

from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.tracking import client as client_module
from tests.helpers import stop

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkAccessError(AssertionError):
    pass


def _check(address: object) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            if host == "localhost":
                return
        raise NetworkAccessError(f"test tried to open a non-loopback socket to {address!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh $MLBOX_HOME; the process's default client follows it."""
    path = tmp_path / "home"
    monkeypatch.setenv("MLBOX_HOME", str(path))
    monkeypatch.delenv("MLBOX_RUN_ID", raising=False)
    monkeypatch.delenv("MLBOX_EXPERIMENT", raising=False)
    old = client_module._default
    client_module._default = None
    yield path
    if client_module._default is not None and client_module._default.active_run() is not None:
        client_module._default.end_run("killed")
    client_module._default = old


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test, so rendered times (snapshots) read the same everywhere."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings.from_env()


@pytest.fixture
def services(settings: Settings) -> Services:
    return Services.open(settings)


@pytest.fixture
def subprocess_env(home: Path) -> dict[str, str]:
    """Environment for child processes: same home, no inherited run."""
    env = dict(os.environ)
    env["MLBOX_HOME"] = str(home)
    env.pop("MLBOX_RUN_ID", None)
    return env


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test starts (append them); any still running at the end are stopped
    (SIGTERM, then SIGKILL), so a failed test leaves no ``mlbox up`` serving its home."""
    procs: list[subprocess.Popen[Any]] = []
    yield procs
    for proc in procs:
        stop(proc)


@pytest.fixture
def gpu_services(settings: Settings) -> Iterator[Services]:
    """Services over two simulated GPUs and four cores, ticking fast; jobs left running are killed."""
    from dataclasses import replace

    from mlbox.scheduler.config import SchedulerSettings

    services = Services.open(
        replace(settings, scheduler=SchedulerSettings(gpus="2", cpus=4.0, tick_s=0.05, kill_grace_s=2.0))
    )
    yield services
    services.scheduler.close(kill=True)


@pytest.fixture
def loop(gpu_services: Services) -> Iterator[None]:
    """The appliance's job loop in a thread for as long as the test runs: a scheduler pass, then
    the sweeps' and the notebooks' (the order of `Appliance.schedule_once`)."""
    import threading

    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            for service in (gpu_services.scheduler, gpu_services.sweeps, gpu_services.notebooks):
                service.reconcile_once()
            stop.wait(0.05)

    thread = threading.Thread(target=run, name="job-loop", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)
