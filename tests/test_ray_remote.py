"""A job on the real Ray head logs through the appliance's HTTP API with its own job token.

`mlbox up` runs with ``MLBOX_EXECUTOR`` naming the session's loopback head
(`tests.ray_head`); the job gets no home, only ``MLBOX_URL`` and its token, so
``mlbox.log_metric``, ``log_param``, ``log_artifact`` and ``mlbox.checkpoint`` go over HTTP
as they would from any node. Its first attempt fails after a checkpoint, the retry resumes
from it; the token is refused on routes that are not the job's own, and after the job ends.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import MLBOX, stop, wait_announced
from tests.ray_head import shared_head

pytest.importorskip("ray.job_submission", reason="ray is not installed: pip install 'mlbox[ray]'")

TRAIN = """
import os, sys, urllib.error, urllib.request
from pathlib import Path
import mlbox

out = Path(sys.argv[1])
attempt = int(os.environ["MLBOX_JOB_ATTEMPT"])
assert "MLBOX_HOME" not in os.environ and "MLBOX_CHECKPOINT_DIR" not in os.environ, "a home path reached Ray"
(out / f"token-{attempt}").write_text(os.environ["MLBOX_JOB_TOKEN"])
ckpt = mlbox.checkpoint.load_latest()
start = 0 if ckpt is None else ckpt.obj["step"] + 1
mlbox.log_param(f"resumed_at_{attempt}", start)
for step in range(start, start + 3):
    mlbox.log_metric("loss", 1.0 / (step + 1), step=step)
mlbox.checkpoint.save({"step": start + 2}, start + 2)
report = out / f"report-{attempt}.txt"
report.write_text(f"attempt {attempt} from step {start}")
mlbox.log_artifact(str(report), "reports")
mlbox.flush()

def status(method, path):
    token = os.environ["MLBOX_JOB_TOKEN"]
    req = urllib.request.Request(os.environ["MLBOX_URL"] + path, method=method,
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code

print("elsewhere", status("GET", "/api/v1/jobs"), status("GET", "/api/v1/runs"), flush=True)
sys.exit(3 if attempt == 1 else 0)
"""


def test_a_ray_job_logs_metrics_artifacts_and_checkpoints_over_http_and_resumes(
    subprocess_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    env = {**subprocess_env, "MLBOX_EXECUTOR": shared_head(), "MLBOX_SCHEDULER_TICK_S": "0.1"}
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
        script = tmp_path / "train.py"
        script.write_text(TRAIN)
        r = client.post(
            "/api/v1/jobs",
            json={
                "name": "resumable",
                "command": [sys.executable, str(script), str(tmp_path)],
                "max_retries": 1,
            },
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 180
        while (job := client.get(f"/api/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        logs = client.get(f"/api/v1/jobs/{job_id}/logs").json()["text"]
        assert job["state"] == "succeeded", (job, logs[-3000:])
        assert job["attempt"] == 2 and job["retries_used"] == 1  # the first attempt exited 3

        run = client.get(f"/api/v1/runs/{job['run_id']}").json()
        assert run["run"]["params"] == {"resumed_at_1": "0", "resumed_at_2": "3"}  # the retry resumed
        history = client.get(f"/api/v1/runs/{job['run_id']}/metrics/loss").json()["points"]
        assert [p[0] for p in history] == [0, 1, 2, 3, 4, 5]
        assert {a["path"] for a in run["artifacts"]} >= {"reports/report-1.txt", "reports/report-2.txt"}
        art = client.get(f"/api/v1/runs/{job['run_id']}/artifacts/reports/report-2.txt")
        assert art.content == b"attempt 2 from step 3"
        names = client.get(f"/api/v1/jobs/{job_id}/checkpoints").json()
        assert names[-1].startswith(f"step-{5:012d}.")  # in the appliance's store, for any node

        assert logs.count("elsewhere 403 403") == 2  # each attempt's token: its own routes only
        for attempt in (1, 2):  # ended with its attempt
            token = (tmp_path / f"token-{attempt}").read_text()
            assert token.startswith("mlbj_") and token not in logs
            said = httpx.get(
                f"{url}/api/v1/runs/{job['run_id']}",
                headers={"Authorization": f"Bearer {token}"},
                trust_env=False,
            )
            assert said.status_code == 401, said.text
    finally:
        stop(proc)
