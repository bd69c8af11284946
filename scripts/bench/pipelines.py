"""Pipelines benchmark: per-step overhead of a 1,000-step DAG in-process, beside Prefect and
Dagster running the same DAG in-process; then 20 job steps through the scheduler.

1. Two DAGs of no-op steps (``inc(x) = x + 1``): a chain of N steps and a fan-out (one root
   feeding N - 1 leaves). mlbox runs them with its thread pool and persisted state machine
   (a fresh home each, the cache off so every step runs); Prefect (``@flow``/``@task``, tasks
   submitted to its default thread-pool runner) and Dagster (``@op``/``@job``,
   ``execute_in_process``) run the same graphs, each in its own venv made by the script
   (`_peers.ensure_peer`, the latest release). Overhead per step is the wall time of the
   N-step run minus that of a 1-step run, over N - 1 steps (so start-up, a temporary server,
   imports do not count). Targets: ≤ 5 ms per in-process step, ≥ 20x lower than both peers.
2. 20 independent job steps (``@mlbox.step(job=True, cpus=0.1)``) driven by a loop like the
   appliance's (scheduler pass, then pipelines pass, woken on submit): from the moment a step
   is ready (the run was submitted) and from the moment it is claimed, to the job's process
   being started by the scheduler. Target: ≤ 300 ms from ready to started.

Run: ``.venv/bin/python scripts/bench/pipelines.py [--steps 1000] [--no-peers] [--json]``.
A benchmark, not a test: a missed target prints FAIL and the exit code stays 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlbox

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _peers import PeerUnavailable, ensure_peer  # noqa: E402


@mlbox.step
def inc(x: int) -> int:
    return x + 1


def chain_of(n: int) -> Any:
    @mlbox.pipeline(name=f"chain{n}")
    def chain() -> None:
        x = inc(0)
        for _ in range(n - 1):
            x = inc(x)

    return chain


def fan_of(n: int) -> Any:
    @mlbox.pipeline(name=f"fan{n}")
    def fan() -> None:
        root = inc(0)
        for _ in range(n - 1):
            inc(root)

    return fan


@mlbox.step(job=True, cpus=0.1)
def job_noop(i: int) -> int:
    return i


@mlbox.pipeline
def twenty_jobs() -> None:
    for i in range(20):
        job_noop(i)


def _services(home: Path) -> Any:
    os.environ["MLBOX_HOME"] = str(home)
    os.environ.setdefault("MLBOX_SCHEDULER_CPUS", "4")
    from mlbox.services import Services
    from mlbox.settings import Settings

    return Services.open(Settings.from_env())


def ours_once(shape: str, n: int) -> float:
    """Seconds from submit (graph traced, checked, persisted) to the run's end."""
    home = Path(tempfile.mkdtemp(prefix="mlbox-bench-pipe-"))
    try:
        services = _services(home)
        pdef = chain_of(n) if shape == "chain" else fan_of(n)
        t0 = time.perf_counter()
        run = services.pipelines.submit(pdef, no_cache=True)
        done = services.pipelines.wait(run.id, timeout_s=600)
        took = time.perf_counter() - t0
        services.pipelines.close()
        assert done.state == "succeeded", done.message
        return took
    finally:
        shutil.rmtree(home, ignore_errors=True)


PREFECT = r"""
import json, os, sys, time
from prefect import flow, task
from prefect.futures import wait

@task
def inc(x):
    return x + 1

def make(shape, n):
    @flow(name=f"{shape}{n}", log_prints=False)
    def f():
        if shape == "chain":
            x = inc.submit(0)
            for _ in range(n - 1):
                x = inc.submit(x)
            return x.result()
        root = inc.submit(0)
        futs = [inc.submit(root) for _ in range(n - 1)]
        wait(futs)
        return len(futs)
    return f

out = {}
for shape in ("chain", "fan"):
    make(shape, 1)()  # warm: the temporary server, imports
    t = time.perf_counter(); make(shape, 1)(); one = time.perf_counter() - t
    n = int(sys.argv[1])
    t = time.perf_counter(); make(shape, n)(); many = time.perf_counter() - t
    out[shape] = [one, many]
print("RESULT " + json.dumps(out))
"""

DAGSTER = r"""
import json, sys, time
from dagster import In, Out, op, job, DagsterInstance

@op
def inc(x: int) -> int:
    return x + 1

@op
def start() -> int:
    return 0

def make(shape, n):
    ops = [inc.alias(f"s{i}") for i in range(n)]
    if shape == "chain":
        @job(name=f"chain{n}")
        def j():
            x = ops[0](start())
            for o in ops[1:]:
                x = o(x)
    else:
        @job(name=f"fan{n}")
        def j():
            root = ops[0](start())
            for o in ops[1:]:
                o(root)
    return j

out = {}
instance = DagsterInstance.ephemeral()
for shape in ("chain", "fan"):
    make(shape, 1).execute_in_process(instance=instance)
    t = time.perf_counter(); make(shape, 1).execute_in_process(instance=instance); one = time.perf_counter() - t
    n = int(sys.argv[1])
    t = time.perf_counter(); make(shape, n).execute_in_process(instance=instance); many = time.perf_counter() - t
    out[shape] = [one, many]
print("RESULT " + json.dumps(out))
"""


def peer_run(name: str, requirement: str, module: str, script: str, n: int) -> dict[str, Any]:
    try:
        peer = ensure_peer(name, requirement, module)
    except PeerUnavailable as exc:
        return {"error": str(exc)}
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLBOX_", "PREFECT_", "DAGSTER_"))}
    env.update(
        {
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{work}/prefect.db",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "ERROR",
            # its temporary API server starts slowly on a busy 2-core machine (default 20 s)
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "DAGSTER_HOME": str(work / "dagster"),
            "DO_NOT_TRACK": "1",
        }
    )
    (work / "dagster").mkdir()
    (work / "peer.py").write_text(script)
    try:
        proc = subprocess.run(
            [str(peer.python), str(work / "peer.py"), str(n)],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
            cwd=work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-5:], "version": peer.version}
    raw = json.loads(lines[-1][len("RESULT ") :])
    return {"version": peer.version, **{shape: per_step(one, many, n) for shape, (one, many) in raw.items()}}


def per_step(one: float, many: float, n: int) -> dict[str, float]:
    return {"one_s": one, "total_s": many, "per_step_ms": max(0.0, many - one) / (n - 1) * 1000}


def job_steps() -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="mlbox-bench-pipejobs-"))
    os.environ["MLBOX_SCHEDULER_TICK_S"] = "0.2"
    try:
        services = _services(home)
        p, s = services.pipelines, services.scheduler
        # by its module's name, so the jobs' processes import the same pipeline (not __main__)
        module = importlib.import_module(Path(__file__).stem)
        run = p.submit(module.twenty_jobs, no_cache=True)
        ready_at = run.created_at
        deadline = time.monotonic() + 300
        while p.get_run(run.id).state == "running" and time.monotonic() < deadline:
            s.reconcile_once()
            p.reconcile_once()
            s.wait_for_work(0.2)
        done = p.get_run(run.id)
        p.close()
        assert done.state == "succeeded", done.message
        from_ready, from_claim = [], []
        for step in done.steps:
            job = s.get(step.job_id or 0)
            assert job.started_at is not None and step.started_at is not None
            from_ready.append((job.started_at - ready_at) * 1000)
            from_claim.append((job.started_at - step.started_at) * 1000)
        s.close(kill=True)
        return {
            "ready_to_started_median_ms": statistics.median(from_ready),
            "ready_to_started_max_ms": max(from_ready),
            "claimed_to_started_median_ms": statistics.median(from_claim),
            "run_total_s": (done.finished_at or 0) - run.created_at,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.steps
    results: dict[str, Any] = {"steps": n, "cpus": os.cpu_count()}
    ours: dict[str, Any] = {}
    for shape in ("chain", "fan"):
        one = min(ours_once(shape, 1) for _ in range(3))
        many = ours_once(shape, n)
        ours[shape] = per_step(one, many, n)
    results["mlbox"] = ours
    if not args.no_peers:
        results["prefect"] = peer_run("prefect", "prefect", "prefect", PREFECT, n)
        results["dagster"] = peer_run("dagster", "dagster", "dagster", DAGSTER, n)
    results["jobs"] = job_steps()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"pipelines benchmark: {n}-step DAGs of no-op steps, in-process ({os.cpu_count()} CPUs)")
    for shape in ("chain", "fan"):
        mine = ours[shape]["per_step_ms"]
        ok = "ok" if mine <= 5 else "FAIL"
        print(
            f"  {shape:5s} mlbox   {mine:8.2f} ms/step  (total {ours[shape]['total_s']:.2f} s)  target <= 5 ms: {ok}"
        )
        for peer in ("prefect", "dagster"):
            r = results.get(peer)
            if r is None:
                continue
            if "error" in r:
                print(f"  {shape:5s} {peer:7s} unavailable: {r['error']}")
                continue
            theirs = r[shape]["per_step_ms"]
            ratio = theirs / mine if mine > 0 else float("inf")
            verdict = "ok" if ratio >= 20 else "FAIL"
            print(
                f"  {shape:5s} {peer:7s} {theirs:8.2f} ms/step  (total {r[shape]['total_s']:.2f} s, {peer} {r['version']})"
                f"  mlbox {ratio:.1f}x lower, target >= 20x: {verdict}"
            )
    j = results["jobs"]
    ok = "ok" if j["ready_to_started_median_ms"] <= 300 else "FAIL"
    print(
        f"  20 job steps: ready -> started median {j['ready_to_started_median_ms']:.0f} ms"
        f" (max {j['ready_to_started_max_ms']:.0f} ms), claimed -> started median"
        f" {j['claimed_to_started_median_ms']:.0f} ms; target <= 300 ms: {ok}"
    )


if __name__ == "__main__":
    main()
