"""The dynamic batcher on its own: rows go back to the request that sent them, batches form
under load, one bad request fails alone, a full queue refuses at once, close drains."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from mlbox.serving.batcher import Batcher, Outputs, concat_inputs, split_outputs
from mlbox.serving.errors import ModelFailed, Overloaded, Retired


class Recorder:
    """A model that doubles its input and records the size of every call."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def __call__(self, x: Any) -> Outputs:
        self.threads.add(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        arr = x["a"] if isinstance(x, dict) else x
        if np.any(arr < 0):
            raise ValueError("negative input")
        self.calls.append(len(arr))
        return {"double": arr * 2, "first": arr[:, 0] if arr.ndim == 2 else arr}


def test_split_and_concat_are_inverse() -> None:
    parts = [np.arange(6).reshape(3, 2), np.arange(2).reshape(1, 2), np.arange(4).reshape(2, 2)]
    joined = concat_inputs(parts)
    assert joined.shape == (6, 2)
    back = split_outputs({"y": joined}, [3, 1, 2])
    assert back is not None
    for part, out in zip(parts, back, strict=True):
        np.testing.assert_array_equal(out["y"], part)
    dicts = concat_inputs([{"a": np.ones(2), "b": np.zeros(2)}, {"a": np.ones(1), "b": np.zeros(1)}])
    assert dicts["a"].shape == (3,) and dicts["b"].shape == (3,)
    assert split_outputs({"y": np.ones(5)}, [3, 1]) is None  # not one output row per input row
    assert split_outputs({"y": np.float64(1.0)}, [1]) is None  # type: ignore[dict-item]


async def test_every_request_gets_its_own_rows_back_and_batches_form() -> None:
    model = Recorder(delay_s=0.002)
    batcher = Batcher(model, name="m", max_batch_size=32)
    loop = asyncio.get_running_loop()
    try:

        async def one(i: int) -> None:
            rows = 1 + i % 3
            x = np.full((rows, 2), float(i))
            out = await batcher.submit(x, rows, loop)
            np.testing.assert_array_equal(out["double"], x * 2)
            np.testing.assert_array_equal(out["first"], x[:, 0])

        await asyncio.gather(*[one(i) for i in range(200)])
    finally:
        batcher.close()
    assert sum(model.calls) == sum(1 + i % 3 for i in range(200))
    assert len(model.calls) < 100, "requests queued behind a busy model must share calls"
    assert max(model.calls) <= 32
    assert model.threads == {"mlbox-infer-m"}  # the model never runs on the event loop


async def test_a_failing_request_fails_alone() -> None:
    model = Recorder(delay_s=0.01)
    batcher = Batcher(model, name="m")
    loop = asyncio.get_running_loop()
    try:
        good = [batcher.submit(np.full((1, 2), float(i)), 1, loop) for i in range(5)]
        bad = batcher.submit(np.full((1, 2), -1.0), 1, loop)
        more = [batcher.submit(np.full((1, 2), float(i)), 1, loop) for i in range(5)]
        results = await asyncio.gather(*good, bad, *more, return_exceptions=True)
    finally:
        batcher.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ModelFailed)
    assert "ValueError: negative input" in errors[0].message and errors[0].http_status == 422
    assert isinstance(results[5], ModelFailed)


async def test_inputs_that_do_not_stack_are_scored_one_by_one() -> None:
    model = Recorder(delay_s=0.01)
    batcher = Batcher(model, name="m")
    loop = asyncio.get_running_loop()
    try:
        blocker = batcher.submit(np.ones((1, 2)), 1, loop)
        a = batcher.submit(np.ones((2, 3)), 2, loop)
        b = batcher.submit(np.ones((1, 2)), 1, loop)
        outs = await asyncio.gather(blocker, a, b)
    finally:
        batcher.close()
    assert outs[1]["double"].shape == (2, 3) and outs[2]["double"].shape == (1, 2)


async def test_a_full_queue_refuses_at_once() -> None:
    release = threading.Event()

    def slow(x: Any) -> Outputs:
        release.wait(5)
        return {"y": x}

    batcher = Batcher(slow, name="m", max_queue=2, retry_after_s=3)
    loop = asyncio.get_running_loop()
    try:
        first = batcher.submit(np.ones(1), 1, loop)
        await asyncio.sleep(0.05)  # the worker has taken it and is blocked in the model
        queued = [batcher.submit(np.ones(1), 1, loop) for _ in range(2)]
        assert batcher.depth == 2
        t0 = time.perf_counter()
        with pytest.raises(Overloaded) as info:
            batcher.submit(np.ones(1), 1, loop)
        assert time.perf_counter() - t0 < 0.05
        assert info.value.http_status == 503 and info.value.retry_after_s == 3
        release.set()
        await asyncio.gather(first, *queued)
    finally:
        release.set()
        batcher.close()


async def test_close_drains_the_queue_then_refuses() -> None:
    model = Recorder(delay_s=0.01)
    batcher = Batcher(model, name="m", max_batch_size=1)
    loop = asyncio.get_running_loop()
    futures = [batcher.submit(np.full((1, 1), float(i)), 1, loop) for i in range(10)]
    batcher.close(wait=False)
    with pytest.raises(Retired):
        batcher.submit(np.ones((1, 1)), 1, loop)
    outs = await asyncio.gather(*futures)
    assert [float(o["double"][0, 0]) for o in outs] == [2.0 * i for i in range(10)]
    await asyncio.to_thread(batcher.close)
    assert batcher.closed


async def test_max_delay_waits_for_a_batch_to_fill() -> None:
    model = Recorder()
    batcher = Batcher(model, name="m", max_batch_size=4, max_delay_s=0.5)
    loop = asyncio.get_running_loop()
    try:
        t0 = time.perf_counter()
        futures = []
        for _ in range(4):
            futures.append(batcher.submit(np.ones((1, 1)), 1, loop))
            await asyncio.sleep(0.01)
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
    finally:
        batcher.close()
    assert model.calls == [4]  # one call: the first request waited for the others
    assert elapsed < 0.4  # and the full batch did not wait out the delay


async def test_an_open_loop_past_capacity_is_refused_at_dequeue_and_stays_fast() -> None:
    """Three requests every 3 ms into a model costing 3 ms a row, for 0.45 s (3x its capacity).
    Without the queue's control each batch took the whole queue (1, 3, 9, 27 rows...) and
    latency grew with the run; with it, stale requests get `Overloaded` (503 + Retry-After,
    at dequeue or at submit) and what is scored comes back within a few batches."""

    def per_row(x: Any) -> Outputs:
        time.sleep(0.003 * len(x))
        return {"y": x}

    batcher = Batcher(per_row, name="m", retry_after_s=2)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    refused: list[Overloaded] = []

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            fut = batcher.submit(np.ones((1, 1)), 1, loop)
            await fut
        except Overloaded as exc:
            refused.append(exc)
            return
        latencies.append(time.perf_counter() - t0)

    try:
        await one()  # unloaded: the model's service time is known
        tasks = []
        for _ in range(150):
            tasks += [asyncio.create_task(one()) for _ in range(3)]
            await asyncio.sleep(0.003)
        await asyncio.gather(*tasks)
    finally:
        batcher.close()
    assert len(refused) > 100 and all(exc.retry_after_s == 2 for exc in refused)
    assert len(latencies) > 50
    latencies.sort()
    assert latencies[int(0.9 * len(latencies))] < 0.1, latencies[-5:]
