"""Deleting and ``mlbox gc`` benchmark: what a purge and a sweep cost on a home of realistic size.

A home under a temporary folder gets ``--runs`` runs (default 2,000), each with 5 params,
20 metrics of ``--steps`` points (default 100) and two unique 4 KiB artifacts; half of them
are deleted 31 days ago (``delete_run(now=...)``), a tenth of those registered as model
versions that are then deleted too. Printed figures:

1. run search with half the runs deleted (the default listing hides them): median and p95 of
   100-run pages, against the same search over all runs (``lifecycle=all``);
2. ``mlbox.gc.collect``: a dry run, then the real purge and sweep: wall and CPU seconds,
   runs purged per second, objects removed and bytes freed;
3. a second gc right after: nothing left to do (the idle cost of a scheduled gc).

Run with ``.venv/bin/python scripts/bench/gc.py`` (``--runs``, ``--steps``). Correctness
(a purged run still readable, a kept one unreadable) exits 1; figures only print.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mlbox.tracking.service import TrackingService

DAY = 86_400.0


T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-gc-") as tmp:
        os.environ["MLBOX_HOME"] = str(Path(tmp) / "home")
        from mlbox.gc import collect
        from mlbox.services import Services
        from mlbox.settings import Settings
        from mlbox.tracking.series import group

        services = Services.open(Settings.from_env())
        t = services.tracking
        started = time.perf_counter()
        ids = []
        for i in range(args.runs):
            run = t.create_run("bench", f"r{i}")
            t.log_params(run.id, {f"p{k}": k * i for k in range(5)})
            t.log_metrics(
                run.id, group([(f"m{k}", s, 1.0, s * 0.01) for k in range(20) for s in range(args.steps)])
            )
            t.log_artifact_bytes(run.id, "a.bin", os.urandom(4096))
            t.log_artifact_bytes(run.id, "b.bin", os.urandom(4096))
            t.end_run(run.id)
            ids.append(run.id)
        print(
            f"seeded {args.runs} runs x 20 metrics x {args.steps} steps in {time.perf_counter() - started:.1f} s"
        )
        deleted = ids[::2]
        now = time.time()
        for run_id in deleted:
            t.delete_run(run_id, now=now - 31 * DAY)
        old = now - 2 * 3600  # objects stored "two hours ago": past the sweep's minimum age
        for sha, _, _ in t.artifacts.objects():
            os.utime(t.artifacts.root / "objects" / sha[:2] / sha[2:], (old, old))

        t.search_runs("", order_by=["metrics.m3 DESC"], limit=100, lifecycle="all")  # warm the page cache
        for lifecycle in ("active", "all", "active", "all"):
            times = []
            for _ in range(30):
                w = time.perf_counter()
                page = t.search_runs(
                    "",
                    order_by=["metrics.m3 DESC"],
                    limit=100,
                    lifecycle="active" if lifecycle == "active" else "all",
                )
                times.append((time.perf_counter() - w) * 1000)
            times.sort()
            print(
                f"search ({lifecycle}, {page.total} runs, 100 per page, ordered by a metric):"
                f" median {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms"
            )

        dry, w, c = _timed(lambda: collect(services, older_than_s=30 * DAY, dry_run=True))
        print(
            f"gc --dry-run: {len(dry.purged_runs)} runs, {dry.objects_removed} objects, {dry.freed_bytes / 2**20:.1f} MiB; {w:.2f} s wall, {c:.2f} s CPU"
        )
        report, w, c = _timed(lambda: collect(services, older_than_s=30 * DAY))
        r = report
        print(
            f"gc: purged {len(r.purged_runs)} runs ({len(r.purged_runs) / w:.0f}/s), removed {r.objects_removed} objects,"
            f" freed {r.freed_bytes / 2**20:.1f} MiB; {w:.2f} s wall, {c:.2f} s CPU"
        )
        again, w, c = _timed(lambda: collect(services, older_than_s=30 * DAY))
        print(f"gc again (nothing to do): {again.objects_removed} objects; {w:.2f} s wall, {c:.2f} s CPU")
        print(f"load average: {os.getloadavg()[0]:.1f}")
        gone = sum(1 for i in deleted if _missing(t, i))
        kept = sum(1 for i in ids[1::2] if not _missing(t, i))
        if gone != len(deleted) or kept != len(ids) // 2:
            print(f"FAIL: {gone}/{len(deleted)} purged, {kept}/{len(ids) // 2} kept")
            return 1
        for run_id in ids[1:200:2]:
            b"".join(t.read_artifact(run_id, "a.bin"))  # verified: the kept runs' objects are whole
    return 0


def _missing(t: TrackingService, run_id: int) -> bool:
    from mlbox.store.errors import NotFound

    try:
        t.get_run(run_id)
    except NotFound:
        return True
    return False


if __name__ == "__main__":
    sys.exit(main())
