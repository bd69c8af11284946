"""Ray executor benchmark: submit-to-running latency of short jobs, mlbox on Ray beside plain Ray
and beside mlbox's local executor.

For N short jobs (default 100) the time from just before the submission to the moment the job's
own process writes ``time.time()`` (its first statement), three ways:

1. plain ``JobSubmissionClient.submit_job`` calls on the local Ray head;
2. ``SchedulerService.submit`` with ``MLBOX_EXECUTOR=ray://...`` and a loop that wakes on submit
   (the appliance's), which claims each attempt and submits it to the same head;
3. the same with the local executor (processes on this machine).

Overhead per job = median(2) - median(1). Target: mlbox adds <= 20 ms per job over plain Ray.
On a busy machine Ray's own start of each job dominates both medians, so the submission path is
also measured alone (``submission``): jobs that ask for a resource the head lacks stay PENDING
(no process starts), are submitted one at a time (plain: ``submit_job`` with the same number of
env vars; mlbox: ``SchedulerService.submit`` and the woken loop), and the wall time from the
submit to Ray's answer is compared, with mlbox's own part (less the ``submit_job`` call).
The head is started on loopback ports (``--dashboard-host=127.0.0.1``) unless ``--ray
ray://127.0.0.1:PORT`` names one already running; it is stopped (by pid) at the end.

Batch scoring (``--predict-rows N``, default 10,000,000; 0 skips it): a Parquet file of N rows
and 4 float features scored by a registered scikit-learn logistic regression, ``mlbox predict``
on this machine beside ``mlbox predict --executor ray`` (Ray Data on the same head), each as
its own process; wall time and CPU time of the ``mlbox predict`` process and its children
(the Ray workers' CPU is the head's, not counted there), and the outputs compared.

Run: ``.venv/bin/python scripts/bench/ray_executor.py [--jobs 100] [--predict-rows 10000000]
[--ray ray://127.0.0.1:8265] [--json]``.
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
    env["PATH"] = (
        f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # jobs' python: this venv's
    )
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


def submission(address: str, n: int, folder: Path) -> dict[str, Any]:
    """Submit-to-Ray's-answer per job, plain vs mlbox, with every job kept PENDING (see above)."""
    from dataclasses import replace

    from ray.job_submission import JobSubmissionClient

    from mlbox.scheduler import ray_executor as rx
    from mlbox.scheduler.config import SchedulerSettings
    from mlbox.scheduler.schemas import JobSpec, Resources
    from mlbox.services import Services
    from mlbox.settings import Settings
    from mlbox.store import Home

    absent = {"mlbox_bench_absent": 1.0}
    lacking: dict[str, Any] = {"entrypoint_resources": absent}
    client = JobSubmissionClient(address.replace("ray://", "http://"))
    ids: list[str] = []
    plain: list[float] = []
    env_vars = {f"MLBOX_BENCH_{k}": "v" * 20 for k in range(12)}  # as many as a job's env holds
    for _ in range(n):
        started = time.perf_counter()
        ids.append(
            client.submit_job(
                entrypoint="true",
                entrypoint_num_cpus=0.01,
                runtime_env={"env_vars": env_vars},
                entrypoint_resources=absent,
            )
        )
        plain.append(time.perf_counter() - started)
    answered: dict[str, tuple[float, float]] = {}
    submit = rx.RayExecutor.submit

    def timed(self: Any, sid: str, entrypoint: str, kwargs: dict[str, Any]) -> bool:
        started = time.perf_counter()
        ok = submit(self, sid, entrypoint, {**kwargs, **lacking})
        answered[sid] = (time.perf_counter(), time.perf_counter() - started)
        ids.append(sid)
        return ok

    rx.RayExecutor.submit = timed  # type: ignore[method-assign,assignment]
    home = folder / "home-submission"
    Home(home).ensure().announce("http://127.0.0.1:5151")  # as the appliance would have
    settings = Settings.from_env({**os.environ, "MLBOX_HOME": str(home)})
    services = Services.open(replace(settings, scheduler=SchedulerSettings(executor=address, cpus=64.0)))
    sched = services.scheduler
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            sched.reconcile_once()
            sched.wait_for_work(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    walls: list[float] = []
    try:
        for i in range(n):
            started = time.perf_counter()
            sched.submit(JobSpec(name=f"s{i}", command=["true"], resources=Resources(cpus=0.01)))
            while len(answered) <= i:
                time.sleep(0.0005)
            walls.append(max(answered.values())[0] - started)
    finally:
        stop.set()
        sched.wake.set()
        thread.join()
        rx.RayExecutor.submit = submit  # type: ignore[method-assign]
        for sid in ids:
            with contextlib.suppress(Exception):
                client.stop_job(sid)
    calls = [c for _, c in answered.values()]
    return {
        "plain_ms": statistics.median(plain) * 1000,
        "mlbox_ms": statistics.median(walls) * 1000,
        "mlbox_own_ms": (statistics.median(walls) - statistics.median(calls)) * 1000,
        "load": os.getloadavg()[0],
    }


def batch_scoring(address: str, rows: int, folder: Path) -> dict[str, Any]:
    """``mlbox predict`` locally and with ``--executor ray`` on the same file: seconds (wall, CPU)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression

    from mlbox.services import Services
    from mlbox.settings import Settings

    home = folder / "home-predict"
    env = {**os.environ, "MLBOX_HOME": str(home), "MLBOX_EXECUTOR": address}
    services = Services.open(Settings.from_env(env))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 4))
    clf = LogisticRegression().fit(x, (x @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(np.int64))
    services.registry.register("bench", model=clf, example_input=x[:3])
    source = folder / "in.parquet"
    with pq.ParquetWriter(source, pa.schema([(f"f{i}", pa.float64()) for i in range(4)])) as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            part = rng.normal(size=(n, 4))
            writer.write_table(pa.table({f"f{i}": part[:, i] for i in range(4)}), row_group_size=250_000)
    mlbox = str(Path(sys.executable).with_name("mlbox"))
    out: dict[str, Any] = {"rows": rows}
    for name, extra in (("local", []), ("ray", ["--executor", "ray"])):
        target = folder / f"out-{name}.parquet"
        started = time.monotonic()
        before = os.times()
        done = subprocess.run(
            [mlbox, "predict", "bench/1", str(source), "-o", str(target), "--batch-size", "100000", *extra],
            env=env,
            capture_output=True,
            text=True,
        )
        after = os.times()
        if done.returncode != 0:
            raise SystemExit(f"mlbox predict ({name}) failed: {done.stderr[-2000:]}")
        out[name] = {
            "wall_s": time.monotonic() - started,
            "cpu_s": (after.children_user - before.children_user)
            + (after.children_system - before.children_system),
        }
    a, b = pq.read_table(folder / "out-local.parquet"), pq.read_table(folder / "out-ray.parquet")
    out["equal"] = a.equals(b)
    return out


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
    ap.add_argument("--predict-rows", type=int, default=10_000_000, help="0 skips batch scoring")
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
        results["submission"] = submission(address, args.jobs, folder)
        if args.predict_rows:
            results["batch_scoring"] = batch_scoring(address, args.predict_rows, folder)
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
    sub = results["submission"]
    print(
        f"submission alone (jobs kept PENDING, load {sub['load']:.1f}): plain {sub['plain_ms']:.1f} ms,"
        f" mlbox {sub['mlbox_ms']:.1f} ms (its own part {sub['mlbox_own_ms']:.1f}):"
        f" {sub['mlbox_ms'] - sub['plain_ms']:+.1f} ms/job"
    )
    scoring = results.get("batch_scoring")
    if scoring:
        print(f"batch scoring of {scoring['rows']:,} rows (mlbox predict, s):")
        for name in ("local", "ray"):
            r = scoring[name]
            print(f"  {name:12s} wall {r['wall_s']:8.1f}  cpu of the command {r['cpu_s']:8.1f}")
        print(f"  outputs equal: {scoring['equal']}")


if __name__ == "__main__":
    main()
