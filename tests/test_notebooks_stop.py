"""`mlbox notebook stop` with no appliance running ends real JupyterLab servers, port and all.

Two servers are started the way a foreground ``mlbox notebook start`` starts them (this test
process drives the scheduler until both answer), then the driver goes away (its children are
forgotten, as when the terminal of ``notebook start`` is closed). Stopping must end each
server's whole process group, so its port closes:

* server 1 is stopped once with ``mlbox notebook stop`` (this once printed "stopped" and only
  wrote a cancel request that no appliance was there to act on);
* server 2 was already marked stopped (the cancel request written, as by that old command or
  the API) while it still listens; stopping it again must end it, not say "stopped" again.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlbox.notebooks import probe
from mlbox.notebooks.halt import members
from mlbox.notebooks.schemas import Notebook
from mlbox.services import Services
from mlbox.settings import Settings
from tests.helpers import run_main

DEADLINE_S = 180.0


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def servers(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Services, list[Notebook]]]:
    monkeypatch.setenv("MLBOX_SCHEDULER_KILL_GRACE_S", "5")
    services = Services.open(Settings.from_env())
    root = home.parent / "work"
    root.mkdir()
    nbs = services.notebooks
    started = [nbs.start(root_dir=root) for _ in range(2)]
    deadline = time.monotonic() + DEADLINE_S

    def answering(nb: Notebook) -> bool:
        base = nbs.base_url(nb.id)
        return base is not None and probe.answers(*base, timeout_s=1.0)

    try:
        while not all(answering(nb) for nb in started):
            assert time.monotonic() < deadline, "the servers did not answer"
            services.scheduler.reconcile_once()
            nbs.reconcile_once()
            time.sleep(0.2)
        services.scheduler.close()  # the driver is gone: nothing of this process tends the servers
        yield services, [nbs.get(nb.id) for nb in started]
    finally:
        for job in services.scheduler.list_jobs():
            if job.pid is not None:
                for proc in members(job.pid):
                    proc.kill()


def test_stop_without_an_appliance_ends_the_server(
    servers: tuple[Services, list[Notebook]], capsys: pytest.CaptureFixture[str]
) -> None:
    services, (first, second) = servers
    for nb in (first, second):
        assert nb.url is not None and listening(nb.url)
    jobs = {nb.id: services.scheduler.get(nb.job_id) for nb in (first, second)}

    code, out, err = run_main(capsys, "notebook", "stop", str(first.id))
    assert (code, out) == (0, f"notebook {first.id} stopped\n"), err
    assert not listening(first.url or "")
    assert members(jobs[first.id].pid or 0) == []

    # Marked stopped, its cancel written, yet nothing acted on it: still listening.
    assert services.notebooks.stop(second.id).state == "stopped"
    assert listening(second.url or "")
    code, out, err = run_main(capsys, "notebook", "stop", str(second.id))
    assert (code, out) == (0, f"notebook {second.id} stopped\n"), err
    assert not listening(second.url or "")
    assert members(jobs[second.id].pid or 0) == []
    assert not any(
        "jupyterlab" in " ".join(p.info["cmdline"] or ())
        and str(services.home.root) in str(p.info["environ"])
        for p in psutil.process_iter(["cmdline", "environ"])
    )
    # Stopping a stopped server whose processes are gone is still fine.
    code, out, _ = run_main(capsys, "notebook", "stop", str(second.id))
    assert (code, out) == (0, f"notebook {second.id} stopped\n")
    # The scheduler's next pass records the jobs as cancelled.
    services.scheduler.reconcile_once()
    assert {services.scheduler.get(j.id).state for j in jobs.values()} == {"cancelled"}


def test_a_foreground_server_stops_when_its_terminal_closes(home: Path, tmp_path: Path) -> None:
    """``mlbox notebook start`` without an appliance serves from its own process; a closed
    terminal (SIGHUP) must stop the server as Ctrl-C does, not leave it listening."""
    import os
    import signal
    import subprocess

    from tests.helpers import MLBOX

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOX_")}
    env.update(MLBOX_HOME=str(home), MLBOX_SCHEDULER_KILL_GRACE_S="5")
    proc = subprocess.Popen(
        [str(MLBOX), "notebook", "start", "--root-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and listening(url), proc.stderr
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
        assert "notebook 1 stopped" in err, err
        assert not listening(url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        services = Services.open(Settings(home=home))
        for job in services.scheduler.list_jobs():
            if job.pid is not None:
                for member in members(job.pid):
                    member.kill()
