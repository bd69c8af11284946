"""Jobs on a real local Ray head (loopback only): end to end, retries, cancel, kill -9 re-attach.

The head is the session's (`tests.ray_head`: `ray start --head` on free loopback ports, 4 CPUs
and 2 GPUs declared, so a GPU request is Ray's to place). Without ray installed
(`pip install 'mlbox[ray]'`) the module is skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from mlbox.scheduler.config import SchedulerSettings
from mlbox.scheduler.schemas import Job, JobSpec, Resources
from mlbox.services import Services
from mlbox.settings import Settings
from tests.helpers import MLBOX, stop, wait_announced
from tests.ray_head import shared_head

pytest.importorskip("ray.job_submission", reason="ray is not installed: pip install 'mlbox[ray]'")


@pytest.fixture(scope="module")
def ray_head() -> str:
    """The session's loopback head (`tests.ray_head`)."""
    return shared_head()


@pytest.fixture
def ray_services(settings: Settings, ray_head: str) -> Iterator[Services]:
    services = Services.open(
        replace(settings, scheduler=SchedulerSettings(executor=ray_head, tick_s=0.1, cpus=1.0))
    )
    yield services
    services.scheduler.close()


def _until_terminal(services: Services, job_id: int, timeout_s: float = 120.0) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        services.scheduler.reconcile_once()
        job = services.scheduler.get(job_id)
        if job.terminal:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {services.scheduler.get(job_id).state}")


def _log(services: Services, job_id: int) -> str:
    return services.scheduler.read_log(job_id)[0].decode()


def test_a_job_runs_on_ray_with_its_logs_exit_status_and_retries(ray_services: Services) -> None:
    sched = ray_services.scheduler
    ok = sched.submit(
        JobSpec(
            name="hello",
            command=[sys.executable, "-c", "import os; print('hello from ray', os.environ['MLBOX_JOB_ID'])"],
            resources=Resources(gpus=1, cpus=2.0),  # more than the local settings allow: Ray places it
        )
    )
    bad = sched.submit(
        JobSpec(
            name="bad", command=[sys.executable, "-c", "print('boom'); raise SystemExit(3)"], max_retries=1
        )
    )
    job = _until_terminal(ray_services, ok.id)
    assert job.state == "succeeded" and job.exit_code == 0
    assert job.executor_job_id is not None and job.executor_job_id.startswith("mlbox-")
    assert job.executor_job_id.endswith(f"-{ok.id}-1")
    assert job.node  # the driver's node: its address, else the start of its id
    assert f"hello from ray {ok.id}" in _log(ray_services, ok.id)
    assert ray_services.tracking.get_run(job.run_id).status == "finished"  # type: ignore[arg-type]

    failed = _until_terminal(ray_services, bad.id)
    assert failed.state == "failed" and failed.exit_code == 3
    assert [a.exit_code for a in sched.attempts(bad.id)] == [3, 3]  # retried once, as a new Ray job
    assert failed.executor_job_id is not None and failed.executor_job_id.endswith(f"-{bad.id}-2")
    assert _log(ray_services, bad.id).count("\nboom\n") == 2  # each attempt's own output

    # Ray refuses a second submission of an attempt: the id is the attempt's
    ray = sched.reconciler.ray
    assert ray is not None
    assert ray.ray.submit(job.executor_job_id, "echo again", {}) is False
    cluster = sched.cluster()
    assert cluster is not None and cluster["total"].get("CPU") == 4.0 and cluster["total"].get("GPU") == 2.0


def test_cancel_and_timeout_stop_the_ray_job(ray_services: Services) -> None:
    sched = ray_services.scheduler
    slow = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(120)"]
    cancelled = sched.submit(JobSpec(name="cancel-me", command=slow))
    timed = sched.submit(JobSpec(name="too-slow", command=slow, timeout_s=3.0))
    deadline = time.monotonic() + 90
    while "started" not in _log(ray_services, cancelled.id):
        assert time.monotonic() < deadline, _log(ray_services, cancelled.id)
        sched.reconcile_once()
        time.sleep(0.2)
    sched.cancel(cancelled.id)
    job = _until_terminal(ray_services, cancelled.id, 60)
    assert job.state == "cancelled"
    assert _until_terminal(ray_services, timed.id, 90).state == "timed_out"


def test_kill9_of_the_appliance_reattaches_to_its_ray_job(
    ray_head: str, subprocess_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    env = {**subprocess_env, "MLBOX_EXECUTOR": ray_head, "MLBOX_SCHEDULER_TICK_S": "0.1"}
    log = tmp_path / "up.log"

    def up() -> tuple[subprocess.Popen[bytes], httpx.Client]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(MLBOX), "up", "--port", "0"], env=env, stdout=out, stderr=out, start_new_session=True
            )
        url = wait_announced(home, proc, log=log)
        token = (home / "token").read_text().strip()
        return proc, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, trust_env=False
        )

    proc, client = up()
    try:
        code = "import time; print('first half', flush=True); time.sleep(4); print('second half')"
        r = client.post("/api/v1/jobs", json={"name": "survivor", "command": [sys.executable, "-c", code]})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 90
        while client.get(f"/api/v1/jobs/{job_id}").json()["executor_job_id"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.kill()  # kill -9 of the appliance; the Ray job lives on in the cluster
        proc.wait()
        proc, client = up()
        deadline = time.monotonic() + 120
        while (job := client.get(f"/api/v1/jobs/{job_id}").json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert job["state"] == "succeeded", job
        assert job["attempt"] == 1
        logs = client.get(f"/api/v1/jobs/{job_id}/logs").json()
        text = json.dumps(logs)
        assert "second half" in text
    finally:
        stop(proc)
