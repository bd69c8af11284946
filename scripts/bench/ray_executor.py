"""Ray executor benchmark: submit-to-running latency of short jobs, mlbox on Ray beside plain Ray
and beside mlbox's local executor.

For N short jobs (default 100) the time from just before the submission to the moment the job's
own process writes ``time.time()`` (its first statement), three ways:

1. plain ``JobSubmissionClient.submit_job`` calls on the local Ray head;
2. ``SchedulerService.submit`` with ``MLBOX_EXECUTOR=ray://...`` and a loop that wakes on submit
   (the appliance's), which claims each attempt and submits it to the same head;
3. the same with the local executor (processes on this machine).

Overhead per job = median(2) - median(1). Target: mlbox adds <= 20 ms per job over plain Ray.
The head is started on loopback ports (``--dashboard-host=127.0.0.1``) unless ``--ray
ray://127.0.0.1:PORT`` names one already running; it is stopped (by pid) at the end.

Not done: the 10,000,000-row Ray Data batch scoring comparison (``mlbox predict --executor
ray`` does not exist yet).

Run: ``.venv/bin/python scripts/bench/ray_executor.py [--jobs 100] [--ray ray://127.0.0.1:8265] [--json]``.
A benchmark, not a test: a missed target prints FAIL and the exit code stays 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STARTER = "import time, sys; t = time.time(); open(sys.argv[1], 'w').write(repr(t))"
TARGET_MS = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_head() -> tuple[str, str]:
    """A loopback head (never bound elsewhere); its address and temp folder."""
    ray = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    for _ in range(3):
        temp = tempfile.mkdtemp(prefix="mlbox-ray-", dir="/tmp")
        port = _free_port()
        cmd = [
            ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={port}", "--num-cpus=8",
            f"--temp-dir={temp}", "--disable-usage-stats",
        ]  # fmt: skip
        if subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0:
            return f"ray://127.0.0.1:{port}", temp
        stop_head(temp)
    raise SystemExit("ray start --head failed 3 times (a busy machine: the raylet's wait for its agent)")


def stop_head(temp: str) -> None:
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(temp in part for part in p.info["cmdline"] or ()):
                procs.append(p)
                procs.extend(p.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=10)
    shutil.rmtree(temp, ignore_errors=True)


def _wait_files(paths: list[Path], timeout_s: float) -> list[float]:
    deadline = time.monotonic() + timeout_s
    out: list[float] = []
    for p in paths:
        while True:
            try:
                out.append(float(p.read_text()))
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{p} never written") from None
                time.sleep(0.01)
    return out


def plain_ray(address: str, n: int, folder: Path) -> list[float]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address.replace("ray://", "http://"))
    marks, sent = [], []
    for i in range(n):
        mark = folder / f"plain-{i}"
        marks.append(mark)
        sent.append(time.time())
        entrypoint = shlex.join([sys.executable, "-c", STARTER, str(mark)])
        client.submit_job(entrypoint=entrypoint, entrypoint_num_cpus=0.01)
    return [t - s for t, s in zip(_wait_files(marks, 900), sent, strict=True)]


def mlbox_jobs(executor: str, n: int, folder: Path) -> list[float]:
    from dataclasses import replace

    from mlbox.scheduler.config import SchedulerSettings
    from mlbox.scheduler.schemas import JobSpec, Resources
    from mlbox.services import Services
    from mlbox.settings import Settings

    home = folder / f"home-{executor.split(':')[0]}"
    os.environ["MLBOX_HOME"] = str(home)
    settings = Settings.from_env()
    services = Services.open(
        replace(settings, scheduler=SchedulerSettings(executor=executor, cpus=64.0, tick_s=0.2))
    )
    sched = services.scheduler
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            sched.reconcile_once()
            sched.wait_for_work(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    marks, sent = [], []
    try:
        for i in range(n):
            mark = folder / f"{executor.split(':')[0]}-{i}"
            marks.append(mark)
            sent.append(time.time())
            sched.submit(
                JobSpec(
                    name=f"b{i}",
                    command=[sys.executable, "-c", STARTER, str(mark)],
                    resources=Resources(cpus=0.01),
                )
            )
        return [t - s for t, s in zip(_wait_files(marks, 900), sent, strict=True)]
    finally:
        stop.set()
        sched.wake.set()
        thread.join()
        sched.close(kill=True)


def _summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "mean_ms": statistics.fmean(ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--ray", default=None, help="ray://127.0.0.1:PORT of a running head (default: start one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    address, temp = (args.ray, None) if args.ray else start_head()
    folder = Path(tempfile.mkdtemp(prefix="mlbox-bench-ray-"))
    try:
        results: dict[str, Any] = {
            "jobs": args.jobs,
            "plain_ray": _summary(plain_ray(address, args.jobs, folder)),
            "mlbox_ray": _summary(mlbox_jobs(address, args.jobs, folder)),
            "mlbox_local": _summary(mlbox_jobs("local", args.jobs, folder)),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if temp is not None:
            stop_head(temp)
    over = results["mlbox_ray"]["median_ms"] - results["plain_ray"]["median_ms"]
    results["overhead_ms_per_job"] = over
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"submit-to-running latency over {args.jobs} short jobs (ms):")
    for name in ("plain_ray", "mlbox_ray", "mlbox_local"):
        r = results[name]
        print(f"  {name:12s} median {r['median_ms']:8.1f}  p90 {r['p90_ms']:8.1f}  mean {r['mean_ms']:8.1f}")
    verdict = "ok" if over <= TARGET_MS else "FAIL"
    print(f"mlbox overhead over plain Ray: {over:+.1f} ms/job (target <= {TARGET_MS:g}) {verdict}")


if __name__ == "__main__":
    main()
