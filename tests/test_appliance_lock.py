"""One home, one appliance: real ``mlbox up`` processes racing for one home, a taken port, --host.

The home's lock (`Home.claim_appliance`) decides who serves it; the loser exits 2 with one line
naming the winner's pid and address. The lock goes with the process (a killed appliance leaves
the home free), and the TUI's embedded appliance (`Appliance.start_loops`) takes it too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mlbox.appliance import Appliance
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import Conflict
from mlbox.store.home import CLAIM_WAIT_S
from tests.helpers import MLBOX, mlbox_env, wait_announced

DEADLINE_S = 90.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return mlbox_env(tmp_path / "home")


def up(env: dict[str, str], procs: list[subprocess.Popen[str]], *argv: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [str(MLBOX), "up", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    procs.append(proc)
    return proc


def refused(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert (proc.returncode, out) == (2, ""), err
    assert err.startswith("mlbox: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_two_ups_at_once_one_serves_the_other_names_it(
    env: dict[str, str], started: list[subprocess.Popen[str]]
) -> None:
    home = Path(env["MLBOX_HOME"])
    first, second = up(env, started, "--port", "0"), up(env, started, "--port", "0")
    deadline = time.monotonic() + DEADLINE_S
    while first.poll() is None and second.poll() is None:
        assert time.monotonic() < deadline, "neither mlbox up was refused"
        time.sleep(0.05)
    loser, winner = (first, second) if first.poll() is not None else (second, first)
    url = wait_announced(home, winner, deadline_s=DEADLINE_S)
    err = refused(loser)
    assert f"already running (pid {winner.pid}, {url})" in err and str(home) in err
    # The lock goes with the process, however it ends: after SIGKILL the home is free again.
    winner.kill()
    winner.wait()
    again = up(env, started, "--port", "0")
    wait_announced(home, again, deadline_s=DEADLINE_S)


def test_the_embedded_appliance_holds_the_home_too(
    env: dict[str, str], started: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(env["MLBOX_HOME"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        services = Services.open(Settings(home=home, port=blocker.getsockname()[1]))
        embedded = Appliance(services)
        try:
            embedded.start_loops()  # what the TUI does first, then start_http: its port is taken
            with pytest.raises(Conflict, match="cannot listen"):
                embedded.start_http()
            # the TUI goes on without an HTTP API, holding the home: refused at once, saying so
            # (not after waiting CLAIM_WAIT_S for an address that will not come)
            t0 = time.monotonic()
            err = refused(up(env, started, "--port", "0"))
            assert f"already running (pid {os.getpid()}, its HTTP API did not start)" in err
            assert time.monotonic() - t0 < CLAIM_WAIT_S
            with pytest.raises(Conflict, match="its HTTP API did not start"):
                Appliance(services).start_loops()
        finally:
            embedded.stop()
    after = up(env, started, "--port", "0")
    wait_announced(home, after, deadline_s=DEADLINE_S)


def test_a_taken_port_is_named(env: dict[str, str], started: list[subprocess.Popen[str]]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        err = refused(up(env, started, "--port", str(port)))
        assert f"127.0.0.1 port {port}" in err and "--port" in err
    # Refused before anything started: the home is free for the next one.
    wait_announced(Path(env["MLBOX_HOME"]), up(env, started, "--port", "0"), deadline_s=DEADLINE_S)


def test_host_option_beside_the_variable(env: dict[str, str], started: list[subprocess.Popen[str]]) -> None:
    env["MLBOX_HOST"] = "127.0.0.1"
    proc = up(env, started, "--host", "127.0.0.2", "--port", "0")  # loopback, but not the default
    url = wait_announced(Path(env["MLBOX_HOME"]), proc, deadline_s=DEADLINE_S)
    assert url.startswith("http://127.0.0.2:")
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.2", port), timeout=10):
        pass
    err = refused(up({**env, "MLBOX_HOME": env["MLBOX_HOME"] + "2"}, started, "--host", " "))
    assert "--host" in err
