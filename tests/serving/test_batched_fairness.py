"""Large requests beside small ones: a request of more than ``max_batch_size`` rows takes the
batcher's bulk lane, so it neither waits out the batching window nor holds single rows behind
its model call. The model here sleeps (releasing the GIL, as the compiled trees do while they
walk) 0.2 ms per row: a 1,000-row request takes 200 ms, which a single row queued behind it
would wait. Bounds are generous (a busy machine); the exact figures are the benchmark's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from mlbox.serving.batcher import Batcher, Outputs

PER_ROW_S = 0.0002


def sleepy(x: Any) -> Outputs:
    time.sleep(0.0005 + PER_ROW_S * len(x))
    return {"y": np.asarray(x)[:, 0] * 2.0}


async def _single_row_latencies(batcher: Batcher, seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        out = await batcher.submit(np.full((1, 2), float(i)), 1, loop)
        latencies.append(time.perf_counter() - t0)
        assert out["y"].tolist() == [2.0 * i]
        i += 1
    return latencies


async def test_a_large_request_does_not_hold_single_rows_behind_it() -> None:
    batcher = Batcher(sleepy, name="m", max_batch_size=64)
    loop = asyncio.get_running_loop()
    try:
        alone = await _single_row_latencies(batcher, 0.6)
        big_done: list[float] = []
        stop = asyncio.Event()

        async def big_traffic() -> None:
            while not stop.is_set():
                x = np.random.default_rng(len(big_done)).normal(size=(1000, 2))
                t0 = time.perf_counter()
                out = await batcher.submit(x, 1000, loop)
                big_done.append(time.perf_counter() - t0)
                assert np.array_equal(out["y"], x[:, 0] * 2.0)  # its own rows back, in order

        bulk = asyncio.ensure_future(big_traffic())
        await asyncio.sleep(0.05)
        beside = await _single_row_latencies(batcher, 1.2)
        stop.set()
        await bulk
    finally:
        await asyncio.to_thread(batcher.close)
    assert len(big_done) >= 3  # the large requests were answered meanwhile (~0.2 s each)
    p99_alone = float(np.percentile(alone, 99))
    p99_beside = float(np.percentile(beside, 99))
    # in one lane a single row would wait up to a whole 200 ms large request
    assert p99_beside < max(2 * p99_alone, p99_alone + 0.05), (p99_alone, p99_beside)
    assert max(beside) < 0.15, max(beside)


async def test_a_large_request_does_not_wait_for_a_batch_to_fill() -> None:
    calls: list[int] = []

    def model(x: Any) -> Outputs:
        calls.append(len(x))
        return {"y": np.asarray(x)}

    batcher = Batcher(model, name="m", max_batch_size=8, max_delay_s=2.0)
    loop = asyncio.get_running_loop()
    try:
        t0 = time.perf_counter()
        out = await batcher.submit(np.ones((100, 1)), 100, loop)
        elapsed = time.perf_counter() - t0
    finally:
        await asyncio.to_thread(batcher.close)
    assert out["y"].shape == (100, 1) and calls == [100]
    assert elapsed < 1.0  # the 2 s window is for batches still filling


async def test_close_drains_both_lanes_then_exits_once() -> None:
    exits: list[str] = []
    batcher = Batcher(sleepy, name="m", max_batch_size=4, on_exit=lambda: exits.append("exit"))
    loop = asyncio.get_running_loop()
    futures = [batcher.submit(np.full((n, 2), 1.0), n, loop) for n in (1, 50, 2, 100, 1)]
    batcher.close(wait=False)
    outs = await asyncio.gather(*futures)
    assert [o["y"].shape[0] for o in outs] == [1, 50, 2, 100, 1]
    await asyncio.to_thread(batcher.close)
    assert exits == ["exit"]
