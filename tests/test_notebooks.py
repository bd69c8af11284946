"""Notebook servers as jobs, with real JupyterLab servers on loopback.

Two servers are started once for the module (Jupyter is slow to start on a
loaded machine), on two simulated GPUs, while a background thread runs the
scheduler's reconciliation pass as the appliance would; the tests drive the
notebook service's own pass themselves. Server A has a kernel running a
long cell; server B is left alone with a 2 s idle timeout. The tests run in
file order: the last one stops A.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlbox.notebooks import probe
from mlbox.notebooks.schemas import Notebook
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking import client as client_module

DEADLINE_S = 180.0
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for(
    what: str, check: Callable[[], Any], deadline_s: float = DEADLINE_S, every_s: float = 0.2
) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)


def api(base: str, token: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"token {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, headers=headers, method=method)
    try:
        with OPENER.open(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


@dataclass
class Lab:
    services: Services
    a: Notebook
    b: Notebook
    kernel: dict[str, Any]
    kernel_env: list[str]
    kernel_pid: int

    def reconcile(self, now: float | None = None) -> dict[str, list[int]]:
        return self.services.notebooks.reconcile_once(now=now)

    def get(self, nb: Notebook) -> Notebook:
        return self.services.notebooks.get(nb.id)


def run_cell(connection_file: Path, code: str, *, wait: bool) -> list[str]:
    """Execute code on a kernel through its connection file; returns the stdout lines when waiting."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(connection_file))
    client.load_connection_file()
    # No heartbeat channel: on a loaded machine a late heartbeat reads as "kernel died".
    client.start_channels(hb=False)
    try:
        client.wait_for_ready(timeout=DEADLINE_S)
        if not wait:
            client.execute(code)
            return []
        lines: list[str] = []

        def output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                lines.extend(msg["content"]["text"].splitlines())

        reply = client.execute_interactive(code, timeout=DEADLINE_S, output_hook=output)
        assert reply["content"]["status"] == "ok", reply["content"]
        return lines
    finally:
        client.stop_channels()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("notebooks") / "home"
    root = home.parent / "work"
    root.mkdir()
    old_client = client_module._default
    client_module._default = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLBOX_HOME", str(home))
        mp.setenv("MLBOX_GPUS", "2")
        mp.setenv("MLBOX_NOTEBOOK_POLL_S", "0.2")
        mp.setenv("MLBOX_SCHEDULER_KILL_GRACE_S", "5")
        mp.delenv("MLBOX_RUN_ID", raising=False)
        services = Services.open(Settings.from_env())
        stop = threading.Event()

        def schedule() -> None:
            while not stop.is_set():
                services.scheduler.reconcile_once()
                stop.wait(0.2)

        loop = threading.Thread(target=schedule, name="test-scheduler", daemon=True)
        loop.start()
        nbs = services.notebooks
        try:
            a = nbs.start(gpus=1, idle_timeout_s=600, root_dir=root)
            b = nbs.start(gpus=1, idle_timeout_s=2, root_dir=root)

            def both_bound() -> bool:
                nbs.reconcile_once()
                return all(nbs.get(n.id).url for n in (a, b))

            wait_for("both servers to bind a port", both_bound)
            a, b = nbs.get(a.id), nbs.get(b.id)
            base, token = nbs.base_url(a.id) or ("", "")
            wait_for("server A to answer", lambda: probe.answers(base, token))
            status, kernel = api(base, token, "POST", "/api/kernels", {"name": "python3"})
            assert status == 201, status
            connection = nbs.paths(a.id).runtime / f"kernel-{kernel['id']}.json"
            wait_for("the kernel's connection file", connection.exists)
            env = run_cell(
                connection,
                "import os, mlbox\n"
                "print(os.environ.get('MLBOX_RUN_ID'), os.environ.get('MLBOX_NOTEBOOK_ID'))\n"
                "print(os.environ.get('MLBOX_HOME'))\n"
                "print(os.getpid())",
                wait=True,
            )
            run_cell(connection, "import time\ntime.sleep(900)", wait=False)
            yield Lab(services, a, b, kernel, env, int(env[-1]))
        finally:
            for nb in nbs.list(states=["starting", "running"]):
                nbs.stop(nb.id)
            for job in services.scheduler.list_jobs():
                if not job.terminal:
                    services.scheduler.wait(job.id, timeout_s=60)
            stop.set()
            loop.join(timeout=30)
            services.scheduler.close(kill=True)
            client_module._default = old_client


def test_server_answers_its_token_only(lab: Lab) -> None:
    nbs = lab.services.notebooks
    url = nbs.url(lab.a.id)
    assert url.startswith("http://127.0.0.1:") and url.endswith(f"/lab?token={nbs._row(lab.a.id)['token']}")
    base, token = nbs.base_url(lab.a.id) or ("", "")
    status, body = api(base, token, "GET", "/api/status")
    assert status == 200 and "last_activity" in body
    assert api(base, None, "GET", "/api/status")[0] in (401, 403)
    assert api(base, "not-the-token", "GET", "/api/status")[0] in (401, 403)
    # The token lives in a private file, never on the server's command line.
    job = lab.services.scheduler.get(lab.a.job_id)
    assert token not in " ".join(job.spec.command or [])
    assert (nbs.paths(lab.a.id).token_file.stat().st_mode & 0o777) == 0o600


def test_servers_hold_their_gpus(lab: Lab) -> None:
    leases = {lease.owner: lease.gpu for lease in lab.services.scheduler.leases()}
    assert set(leases) == {f"notebook:{lab.a.id}", f"notebook:{lab.b.id}"}
    assert sorted(leases.values()) == [0, 1]
    assert lab.services.scheduler.get(lab.a.job_id).spec.owner == f"notebook:{lab.a.id}"


def test_kernels_run_mlbox_but_not_in_the_servers_run(lab: Lab) -> None:
    run_id, notebook_id = lab.kernel_env[0].split()
    assert run_id == "None" and notebook_id == str(lab.a.id)
    assert lab.kernel_env[1] == str(lab.services.home.root)


def test_idle_server_is_culled_and_frees_its_gpu(lab: Lab) -> None:
    def culled() -> bool:
        lab.reconcile()
        return lab.get(lab.b).state == "culled"

    wait_for("server B to be culled", culled)
    b = lab.get(lab.b)
    assert b.message is not None and b.message.startswith("culled: idle")
    job = lab.services.scheduler.wait(b.job_id, timeout_s=DEADLINE_S)
    assert job.state == "cancelled"
    assert [lease.owner for lease in lab.services.scheduler.leases()] == [f"notebook:{lab.a.id}"]
    base, token = lab.services.notebooks.base_url(b.id) or ("", "")
    assert not probe.answers(base, token)
    with pytest.raises(Conflict):
        lab.services.notebooks.url(b.id)


def test_a_busy_kernel_is_never_culled(lab: Lab) -> None:
    base, token = lab.services.notebooks.base_url(lab.a.id) or ("", "")

    def kernel_busy() -> bool:
        status, kernels = api(base, token, "GET", "/api/kernels")
        return status == 200 and any(k["execution_state"] == "busy" for k in kernels)

    wait_for("the long cell to run", kernel_busy)
    # Hours later by the clock passed in, far past A's 600 s limit: the cell still runs.
    later = time.time() + 7200
    for step in range(3):
        lab.reconcile(now=later + step)
    a = lab.get(lab.a)
    assert a.state == "running" and a.busy, a
    assert a.message == "1 kernel(s) busy"
    assert lab.services.scheduler.get(a.job_id).state == "running"


def test_stop_frees_the_job_and_ends_its_kernels(lab: Lab) -> None:
    nbs = lab.services.notebooks
    assert [n.id for n in nbs.list(states=["running"])] == [lab.a.id]
    stopped = nbs.stop(lab.a.id)
    assert stopped.state == "stopped" and stopped.finished_at is not None
    assert nbs.stop(lab.a.id).state == "stopped"  # stopping twice is fine
    job = lab.services.scheduler.wait(lab.a.job_id, timeout_s=DEADLINE_S)
    assert job.state == "cancelled"
    assert lab.services.scheduler.leases() == []
    wait_for("the kernel process to end", lambda: not psutil.pid_exists(lab.kernel_pid), deadline_s=60)


def test_bad_requests_name_their_field(services: Services, tmp_path: Path) -> None:
    nbs = services.notebooks
    for kwargs, field in (
        ({"gpus": -1}, "gpus"),
        ({"idle_timeout_s": 0}, "idle_timeout_s"),
        ({"root_dir": tmp_path / "missing"}, "root_dir"),
    ):
        with pytest.raises(InvalidInput) as err:
            nbs.start(**kwargs)
        assert err.value.field == field
    with pytest.raises(NotFound) as missing:
        nbs.get(99)
    assert missing.value.field == "notebook_id"
    assert nbs.list() == []


def test_stop_before_it_ever_ran(services: Services) -> None:
    # No scheduler pass runs here: the job stays queued, and stopping cancels it outright.
    nb = services.notebooks.start()
    assert nb.state == "starting" and nb.url is None and nb.idle_timeout_s == 3600.0
    with pytest.raises(Conflict):
        services.notebooks.url(nb.id)
    assert services.notebooks.stop(nb.id).state == "stopped"
    assert services.scheduler.get(nb.job_id).state == "cancelled"
    assert services.notebooks.reconcile_once() == {"notebooks_culled": [], "notebooks_ended": []}
