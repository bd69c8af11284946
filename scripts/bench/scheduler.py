"""Scheduler benchmark: job start latency, and one scheduling decision over 10,000 queued jobs.

1. Submit-to-start latency over N small jobs (default 200), submitted one after
   another: from just before ``scheduler.submit`` returns to the moment the
   job's own process writes ``time.time()`` (its first statement). Measured
   twice: with a loop that ticks every ``tick_s`` like the appliance's
   (``MLBOX_SCHEDULER_TICK_S``, 0.2 s), and with a loop that also wakes on
   submit (`SchedulerService.wait_for_work`). Target: median < 200 ms.
2. One scheduling decision with 10,000 queued jobs (1-4 GPUs, priorities 0-3)
   on 8 simulated GPUs held by running jobs: the pure placement function, and
   a full `reconcile_once` pass over the database (read the queue, check the
   running processes, place). Target: < 50 ms.
3. The sweep figures of ``scripts/bench/_sweep_bench.py`` (``bench_sweep()``)
   when that file exists.

Run: ``.venv/bin/python scripts/bench/scheduler.py [--jobs 200] [--queued 10000] [--json]``.
A benchmark, not a test: a missed target prints FAIL and the exit code stays 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STARTER = "import time, sys; t = time.time(); open(sys.argv[1], 'w').write(repr(t))"


def _services(home: Path, gpus: int) -> Any:
    os.environ["MLBOX_HOME"] = str(home)
    os.environ["MLBOX_GPUS"] = str(gpus)
    os.environ["MLBOX_SCHEDULER_CPUS"] = "64"
    from mlbox.services import Services
    from mlbox.settings import Settings

    return Services.open(Settings.from_env())


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def start_latency(n: int, *, wake: bool, tick_s: float) -> dict[str, float]:
    from mlbox.scheduler.schemas import JobSpec

    root = Path(tempfile.mkdtemp(prefix="mlbox-sched-bench-"))
    try:
        sched = _services(root / "home", 8).scheduler
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                sched.reconcile_once()
                if wake:
                    sched.wait_for_work(tick_s)
                else:
                    stop.wait(tick_s)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        latencies = []
        random.seed(1)
        for i in range(n):
            stamp = root / f"start-{i}"
            spec = JobSpec(
                name=f"b{i}", command=[sys.executable, "-c", STARTER, str(stamp)], workdir=str(root)
            )
            time.sleep(random.uniform(0, tick_s))  # submit at a random phase of the tick
            t0 = time.time()
            job = sched.submit(spec)
            deadline = time.monotonic() + 60
            while not stamp.exists() or not stamp.read_text():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job.id} did not start: {sched.get(job.id)}")
                time.sleep(0.002)
            latencies.append(float(stamp.read_text()) - t0)
            while not sched.get(
                job.id
            ).terminal:  # one at a time: the figure is the scheduler's, not the CPU's
                time.sleep(0.005)
        stop.set()
        thread.join()
        return {
            "median_ms": statistics.median(latencies) * 1000,
            "p99_ms": _pct(latencies, 0.99) * 1000,
            "min_ms": min(latencies) * 1000,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def decision(queued: int, reps: int) -> dict[str, float]:
    from mlbox.scheduler.placement import Holding, Waiting, place
    from mlbox.scheduler.schemas import Gpu, JobSpec, Resources

    rng = random.Random(3)
    gpus = [Gpu(i, "simulated", None, True) for i in range(8)]
    waiting = [Waiting(i, rng.randint(0, 3), float(i), float(i), rng.randint(1, 4)) for i in range(queued)]
    running = [Holding(100_000 + i, 0, (i,), 1.0, False, 0.0) for i in range(8)]
    pure = []
    for _ in range(reps):
        t0 = time.perf_counter()
        d = place(waiting, running, gpus, now=1e6, cpus_total=64.0, starve_after_s=120.0)
        pure.append(time.perf_counter() - t0)
    assert not d.starts
    free = []
    for _ in range(reps):  # the same queue with every GPU free: the decision that starts jobs
        t0 = time.perf_counter()
        place(waiting, [], gpus, now=1e6, cpus_total=64.0, starve_after_s=120.0)
        free.append(time.perf_counter() - t0)

    root = Path(tempfile.mkdtemp(prefix="mlbox-sched-bench-"))
    try:
        sched = _services(root / "home", 8).scheduler
        holders = [
            sched.submit(
                JobSpec(
                    name=f"hold{i}", command=["sleep", "600"], resources=Resources(gpus=1), workdir=str(root)
                )
            )
            for i in range(8)
        ]
        sched.reconcile_once()
        assert all(sched.get(h.id).state == "running" for h in holders)
        spec = JobSpec(name="q", command=["true"], resources=Resources(gpus=1))
        import msgspec

        now = time.time()
        rows = []
        for i in range(queued):
            s = msgspec.structs.replace(
                spec, resources=Resources(gpus=rng.randint(1, 4)), priority=rng.randint(0, 3)
            )
            rows.append(
                (s.name, msgspec.json.encode(s).decode(), s.priority, s.resources.gpus, now + i * 1e-3)
            )
        with sched.db.atomic() as conn:  # 10,000 submits through the service would take a while; same rows
            conn.executemany(
                "INSERT INTO jobs (name, spec, state, priority, gpus, gpu_memory_mb, cpus, preemptible,"
                " max_retries, created_at, queued_at) VALUES (?, ?, 'queued', ?, ?, 0, 1.0, 0, 0, ?, ?)",
                [(n, sp, p, g, t, t) for n, sp, p, g, t in rows],
            )
        passes = []
        for _ in range(reps):
            t0 = time.perf_counter()
            changed = sched.reconcile_once()
            passes.append(time.perf_counter() - t0)
        assert "started" not in changed
        sched.close(kill=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "place_ms": statistics.median(pure) * 1000,
        "place_all_free_ms": statistics.median(free) * 1000,
        "reconcile_ms": statistics.median(passes) * 1000,
        "reconcile_p95_ms": _pct(passes, 0.95) * 1000,
    }


def sweep_figures() -> dict[str, Any] | None:
    path = Path(__file__).with_name("_sweep_bench.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("_sweep_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_sweep_bench"] = module
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.bench_sweep()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs for the start latency")
    parser.add_argument("--queued", type=int, default=10_000, help="queued jobs for the decision")
    parser.add_argument("--reps", type=int, default=20, help="repetitions of the decision")
    parser.add_argument("--tick", type=float, default=0.2, help="scheduler tick in seconds")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    out["start_tick"] = start_latency(args.jobs, wake=False, tick_s=args.tick)
    out["start_wake"] = start_latency(args.jobs, wake=True, tick_s=args.tick)
    out["decision"] = decision(args.queued, args.reps)
    if not args.skip_sweep:
        out["sweep"] = sweep_figures()
    if args.json:
        print(json.dumps(out, indent=2))
        return

    def verdict(ok: bool) -> str:
        return "ok" if ok else "FAIL"

    for key, label in (
        ("start_tick", f"tick loop ({args.tick:g} s)"),
        ("start_wake", "loop woken on submit"),
    ):
        f = out[key]
        print(
            f"start latency, {label:<22} median {f['median_ms']:7.1f} ms  p99 {f['p99_ms']:7.1f} ms  "
            f"min {f['min_ms']:6.1f} ms  [{verdict(f['median_ms'] < 200)}: median < 200 ms]"
        )
    d = out["decision"]
    print(
        f"decision, {args.queued} queued on 8 GPUs: place {d['place_ms']:.1f} ms (all free "
        f"{d['place_all_free_ms']:.1f} ms), reconcile pass {d['reconcile_ms']:.1f} ms "
        f"(p95 {d['reconcile_p95_ms']:.1f}) [{verdict(d['reconcile_ms'] < 50 and d['place_ms'] < 50)}: < 50 ms]"
    )
    if out.get("sweep") is not None:
        print("sweep:", json.dumps(out["sweep"], indent=2))


if __name__ == "__main__":
    main()
