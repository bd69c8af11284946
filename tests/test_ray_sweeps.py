"""A sweep on the session's real loopback Ray head (`tests.ray_head`, 4 CPUs): trials are Ray jobs.

`mlbox up` drives it with ``MLBOX_EXECUTOR`` naming the head. The trials log their objective
over HTTP with their job tokens; the median pruner stops the bad ones, which ends their Ray
jobs as ``pruned``; and with ``parallel=4`` but 2 CPUs per trial no more than 2 trials are
ever live at once: the cluster's free resources hold two.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlbox.scheduler.ray_executor import cluster_resources
from tests.helpers import MLBOX, stop, wait_announced
from tests.ray_head import shared_head

pytest.importorskip("ray.job_submission", reason="ray is not installed: pip install 'mlbox[ray]'")

TRIAL = """\
import os, time
import mlbox

number = int(os.environ["MLBOX_TRIAL_NUMBER"])
bad = number >= 1  # trial 0 ends at once with every step logged, so each step has its median
for step in range(200):
    mlbox.log_metric("loss", (100.0 if bad else 1.0) + 1.0 / (step + 1), step=step)
    if bad:
        mlbox.flush()
        time.sleep(0.1)
"""


def _all_cpus_free(head: str, cpus: float = 4.0, timeout_s: float = 120.0) -> None:
    """Wait until the head's status says all its CPUs are free: a fresh head's status answers
    nothing for a while (the sweep then had no room to go by and asked four trials), and a
    previous test's job may still hold some (it asked one)."""
    url = head.replace("ray://", "http://", 1) + "/api/cluster_status?format=0"
    deadline = time.monotonic() + timeout_s
    free = None
    while free != cpus:
        assert time.monotonic() < deadline, f"the head's free CPUs: {free}"
        time.sleep(0.2)
        try:
            free = cluster_resources(httpx.get(url, timeout=2).json()).get("available", {}).get("CPU")
        except (httpx.HTTPError, ValueError):
            free = None


def test_trials_run_as_ray_jobs_pruned_alike_and_no_more_than_the_cluster_holds(
    subprocess_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    env = {**subprocess_env, "MLBOX_EXECUTOR": shared_head(), "MLBOX_SCHEDULER_TICK_S": "0.1"}
    _all_cpus_free(env["MLBOX_EXECUTOR"])
    (tmp_path / "trial.py").write_text(TRIAL)
    log = tmp_path / "up.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(MLBOX), "up", "--port", "0"], env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        url = wait_announced(home, proc, log=log)
        admin = (home / "token").read_text().strip()
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30, trust_env=False
        )
        body = {
            "metric": "loss",
            "command": [sys.executable, "trial.py"],
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "n_trials": 4,
            "parallel": 4,
            "cpus_per_trial": 2.0,
            "seed": 3,
            "pruner": "median",
            "pruner_args": {"n_startup_trials": 1, "n_warmup_steps": 2},
            "workdir": str(tmp_path),
        }
        r = client.post("/api/v1/sweeps", json=body)
        assert r.status_code == 201, r.text
        sweep_id = r.json()["id"]
        assert r.json()["counts"] == {"running": 2}  # 4 CPUs free, 2 per trial: two asked, not four
        most = 0
        deadline = time.monotonic() + 240
        while (detail := client.get(f"/api/v1/sweeps/{sweep_id}").json())["sweep"]["state"] == "running":
            assert time.monotonic() < deadline, detail["sweep"]
            most = max(most, detail["sweep"]["counts"].get("running", 0))
            time.sleep(0.2)
        sweep = detail["sweep"]
        said = [
            (
                t["number"],
                t["state"],
                t.get("message"),
                client.get(f"/api/v1/jobs/{t['job_id']}/logs").json()["text"][-1500:],
            )
            for t in detail["trials"]
        ]
        assert sweep["state"] == "finished", (sweep, log.read_text()[-2000:])
        assert sweep["counts"] == {"complete": 1, "pruned": 3}, said
        assert most <= 2
        deadline = time.monotonic() + 90  # a pruned trial's Ray job is being stopped (SIGTERM, then KILL)
        while True:
            jobs = [client.get(f"/api/v1/jobs/{t['job_id']}").json() for t in detail["trials"]]
            if all(j["state"] not in ("queued", "running") for j in jobs):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.2)
        assert all(j["executor_job_id"] and j["executor_job_id"].startswith("mlbox-") for j in jobs)
        assert sorted(j["state"] for j in jobs) == ["pruned", "pruned", "pruned", "succeeded"], said
        # claimed (submitted) intervals: never more than two at once
        edges = sorted([(j["started_at"], 1) for j in jobs] + [(j["finished_at"], -1) for j in jobs])
        live = peak = 0
        for _, step in edges:
            live += step
            peak = max(peak, live)
        assert peak <= 2
    finally:
        stop(proc)
