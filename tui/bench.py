"""How fast the runs table opens over many runs (the issue's target: 10,000 runs in under 1 s).

`seed_runs` fills a home through the tracking service (in large transactions,
so 10,000 runs take seconds, not minutes); `time_open_runs_table` starts the
app headless and times from start until the first page of runs is on screen.
The benchmark script and a test call both.
"""

from __future__ import annotations

import asyncio
import time

from mlbox.services import Services
from mlbox.tracking.series import Chunk
from mlbox.tracking.service import TrackingService

BATCH = 500


def seed_runs(tracking: TrackingService, n: int, *, start: float = 1_700_000_000.0) -> None:
    """``n`` finished runs over two experiments, each with 3 params and 3 one-point metrics."""
    done = 0
    while done < n:
        with tracking.db.atomic():
            for i in range(done, min(n, done + BATCH)):
                t = start + i * 60
                run = tracking.create_run("bench-a" if i % 2 else "bench-b", now=t)
                tracking.log_params(run.id, {"lr": 10 ** -(1 + i % 4), "layers": 1 + i % 5, "seed": i})
                series = {}
                for key, value in (("loss", 1 / (1 + i)), ("val_acc", (i % 1000) / 1000), ("acc", 0.5)):
                    chunk = Chunk()
                    chunk.append(0, t, value)
                    series[key] = chunk
                tracking.log_metrics(run.id, series, now=t + 30)
                tracking.end_run(run.id, now=t + 30)
        done = min(n, done + BATCH)


async def time_open_runs_table(
    services: Services, *, size: tuple[int, int] = (120, 40), timeout_s: float = 30.0
) -> float:
    """Seconds from creating the app until the runs table shows its first page of rows."""
    from mlbox.tui.app import make_app
    from mlbox.tui.widgets.runs_table import RunsTable

    t0 = time.perf_counter()
    app = make_app(services, home="bench", refresh_s=3600)
    async with app.run_test(size=size) as pilot:
        table = app.screen.query_one(RunsTable)
        while table.row_count == 0:
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError("the runs table did not fill")
            await asyncio.sleep(0.002)
        await pilot.pause()  # one refresh: the rows are laid out and painted
        elapsed = time.perf_counter() - t0
        await app.workers.wait_for_complete()
    return elapsed
