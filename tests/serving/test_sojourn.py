"""`mlbox.serving.sojourn`: CoDel on a model's queue, simulated with injected time.

The simulation is the batcher's queue and inference thread as discrete events: requests
arrive (open loop at a fixed interval, or closed-loop clients that send again when answered),
the door (`SojournControl.admit_new`) may refuse them, the thread takes the queue head first
(`keep`), up to `batch_cap` rows, scores them for the model's cost and reports it (`observe`).
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

import pytest

from mlbox.serving.sojourn import SojournControl

MAX_ROWS = 256


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    """Of the requests scored: arrival to answer, seconds."""
    refused_at_door: int = 0
    refused_at_dequeue: int = 0

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(0.99 * len(ordered))]


def simulate(
    control: SojournControl | None,
    cost_s: float,
    *,
    per_row: bool,
    seconds: float,
    interval_s: float | None = None,
    clients: int = 0,
    think_s: float = 0.0,
    burst: int = 0,
    times: list[float] | None = None,
) -> Run:
    """One model's queue for ``seconds``: open-loop arrivals every ``interval_s``, or ``clients``
    closed-loop clients that send again ``think_s`` after each answer (a refusal too), one
    ``burst`` of requests at once, or arrivals at ``times``. A batch costs ``cost_s`` per row (``per_row``) or per call.
    ``control`` None is the batcher without it (every request queued, batches take it all)."""
    run = Run()
    arrivals: list[float] = []  # a heap of arrival times
    if interval_s is not None:
        arrivals = [i * interval_s for i in range(int(seconds / interval_s))]
    arrivals += [0.0] * (clients + burst) + (times or [])
    heapq.heapify(arrivals)
    queue: deque[float] = deque()
    free_at = 0.0
    now = 0.0

    def answered(t: float) -> None:
        if clients:
            heapq.heappush(arrivals, t + think_s)

    while arrivals or queue:
        # the thread takes a batch as soon as it is free and something waits
        if queue and (not arrivals or free_at <= arrivals[0]):
            now = max(free_at, queue[0])
            refused: list[float] = []
            while (
                control is not None and queue and not control.keep(now - queue[0], len(queue), now, MAX_ROWS)
            ):
                refused.append(queue.popleft())
            run.refused_at_dequeue += len(refused)
            for _ in refused:
                answered(now)
            if not queue:
                continue
            cap = MAX_ROWS if control is None else control.batch_cap(MAX_ROWS)
            batch = [queue.popleft() for _ in range(min(cap, len(queue)))]
            service = cost_s * (len(batch) if per_row else 1)
            free_at = now + service
            if control is not None:
                control.taken(len(batch), now)
                control.observe(len(batch), service, free_at)
            for arrived in batch:
                run.latencies.append(free_at - arrived)
                answered(free_at)
            continue
        now = heapq.heappop(arrivals)
        if now >= seconds:
            continue
        if control is not None and not control.admit_new(len(queue), now, MAX_ROWS):
            run.refused_at_door += 1
            answered(now)
            continue
        queue.append(now)
    return run


def warmed(cost_s: float) -> SojournControl:
    """A control that has seen its model answer one row in ``cost_s`` (unloaded)."""
    control = SojournControl()
    control.observe(1, cost_s, 0.0)
    return control


@pytest.mark.parametrize("multiple", [1.0, 1.05, 2.0, 5.0, 10.0])
def test_an_open_loop_at_or_past_capacity_keeps_admitted_latency_within_twice_the_service(
    multiple: float,
) -> None:
    """A model costing 3 ms a row, asked open-loop at 1x-10x its capacity for 20 s. Without the
    control, batches take the whole queue and latency grows with the run (p99 1.6 s at 1.05x,
    20 s at 2x). With it, the p99 of what is scored stays within 12 ms (6-8 ms) from the first
    request of the onset, and only the excess is refused."""
    cost = 0.003
    interval = cost / multiple
    plain = simulate(None, cost, per_row=True, seconds=20.0, interval_s=interval)
    run = simulate(warmed(cost), cost, per_row=True, seconds=20.0, interval_s=interval)
    if multiple >= 2:
        assert plain.p99() > 1.0  # what the bench saw at 2x: 115 ms over 20 s at two cores' pace
    assert run.p99() < 0.012, (run.p99(), run.refused_at_door, run.refused_at_dequeue)
    answered = len(run.latencies)
    assert answered > 0.95 * 20.0 / cost * min(multiple, 1.0)  # capacity is used, not wasted
    if multiple <= 1.0:
        assert run.refused_at_door + run.refused_at_dequeue == 0


@pytest.mark.parametrize(("multiple", "scored"), [(0.9, 0.8), (1.0, 0.75)])
def test_random_arrivals_near_capacity_are_bounded_from_the_first_request(
    multiple: float, scored: float
) -> None:
    """Poisson arrivals at 0.9x and 1x a 3 ms model's capacity: without the control the queue
    wanders far up (p99 76 ms at 0.9x, 265 ms at 1x); with it, the requests of each rise are
    refused at dequeue or at the door and the p99 of what is scored is 8 ms (the price: 18 %
    refused at 0.9x, 22 % at 1x, where waits of many services were the rule)."""
    cost = 0.003
    rng = random.Random(0)
    times, t = [], 0.0
    while t < 20.0:
        times.append(t)
        t += rng.expovariate(multiple / cost)
    plain = simulate(None, cost, per_row=True, seconds=20.0, times=times)
    run = simulate(warmed(cost), cost, per_row=True, seconds=20.0, times=times)
    assert plain.p99() > 0.04
    assert run.p99() < 0.012, (run.p99(), run.refused_at_door, run.refused_at_dequeue)
    assert len(run.latencies) > scored * len(times)


@pytest.mark.parametrize(
    ("clients", "cost_s", "per_row", "think_s"),
    [
        (24, 0.02, False, 0.01),  # the SIGTERM test's clients of a batching 20 ms model
        (8, 0.003, True, 0.0),  # the bench's closed loop measuring a 3 ms-a-row model's capacity
        (16, 0.001, False, 0.0),
        (64, 0.002, False, 0.0005),
    ],
)
def test_closed_loops_are_never_refused(clients: int, cost_s: float, per_row: bool, think_s: float) -> None:
    """Clients that send again when answered: their requests wait (a burst at start, the others'
    rows), sometimes past the target for good, but the requests in the system never grow, so
    nothing is refused."""
    run = simulate(warmed(cost_s), cost_s, per_row=per_row, seconds=5.0, clients=clients, think_s=think_s)
    assert run.refused_at_door == run.refused_at_dequeue == 0
    assert len(run.latencies) > 100


def test_a_burst_that_drains_is_never_refused() -> None:
    """Two hundred requests at once into a model of 2 ms a batch that takes 32 rows: the last
    wait 14 ms, past the 5 ms target for longer than the 20 ms interval would allow a growing
    queue, but the queue only shrinks."""
    control = warmed(0.002)
    run = simulate(control, 0.002, per_row=False, seconds=1.0, burst=200)
    assert run.refused_at_door == run.refused_at_dequeue == 0


def test_a_model_never_seen_answering_refuses_nothing() -> None:
    control = SojournControl()
    assert control.target() == float("inf")
    assert control.keep(10.0, 1000, 100.0, MAX_ROWS) and control.admit_new(10_000, 100.0, MAX_ROWS)


def test_targets_follow_the_models_service_time_with_a_floor_and_the_batching_delay() -> None:
    fast, slow, delayed = warmed(0.0003), warmed(0.02), SojournControl(max_delay_s=0.002)
    delayed.observe(1, 0.0003, 0.0)
    assert fast.target() == pytest.approx(0.005)
    assert slow.target() == pytest.approx(0.03)
    assert delayed.target() == pytest.approx(0.007)
    assert slow.interval() == pytest.approx(0.12)


def test_batches_hold_what_finishes_within_the_target() -> None:
    per_row, free, mixed = warmed(0.003), warmed(0.0003), warmed(0.001)
    assert per_row.batch_cap(MAX_ROWS) == 2  # what one more row costs is not known yet
    for rows in (2, 4, 8):
        per_row.observe(rows, 0.003 * rows, 0.0)
        free.observe(rows * 32, 0.0003 + 0.00001 * rows, 0.0)
        mixed.observe(rows, 0.001 + 0.0001 * (rows - 1), 0.0)
    mixed.observe(2, 0.009, 0.0)  # one batch slowed by contention does not shrink the cap
    per_row.observe(2, 0.003, 0.0)  # nor does one that looked free make room for a long batch
    assert per_row.batch_cap(MAX_ROWS) == 1  # 3 ms a row, target 5 ms: one row a batch
    assert free.batch_cap(MAX_ROWS) == MAX_ROWS
    assert 40 <= mixed.batch_cap(MAX_ROWS) <= 41  # 1 ms + 0.1 ms a row more: 41 rows in 5 ms


def test_a_queue_that_fits_in_the_next_batch_is_never_refused() -> None:
    """Its head waited long because the thread woke late (the GIL), not behind other requests:
    refusing it would leave the model idle."""
    control = warmed(0.003)
    control.observe(2, 0.006, 0.0)  # 3 ms a row: one row a batch
    control.last_refusal = 1.0  # pressed
    assert control.keep(0.05, 1, 1.0, MAX_ROWS)
    assert not control.keep(0.05, 2, 1.0, MAX_ROWS)


def test_a_burst_into_a_queue_at_capacity_is_refused_down_to_the_target() -> None:
    """Arrivals at exactly a 3 ms model's capacity, and once a burst of 22 at the same instant
    (the server descheduled for a while, then reading all it missed): the queue neither grows nor
    drains, so the growth rule alone never refused it (p99 69 ms, all of them late); past eight
    targets its head is refused (21 requests), and what is scored stays within 12 ms (6 ms)."""
    cost = 0.003
    times = [i * cost for i in range(3000)] + [4.5] * 22
    plain = simulate(None, cost, per_row=True, seconds=10.0, times=times)
    run = simulate(warmed(cost), cost, per_row=True, seconds=10.0, times=times)
    assert plain.p99() > 0.05
    assert run.p99() < 0.012, (run.p99(), run.refused_at_door, run.refused_at_dequeue)
    assert run.refused_at_door + run.refused_at_dequeue < 60


def test_a_burst_that_drains_slower_than_its_model_was_seen_answering_is_never_refused() -> None:
    """Ten requests at once into a model seen answering a row in 10 ms that now takes 20 ms a
    row (a busy CI machine): the last wait past eight targets, but the queue only shrinks, so
    nothing is refused (tests/test_batching.py's close-drains test got a 503 here under load)."""
    run = simulate(warmed(0.01), 0.02, per_row=True, seconds=1.0, burst=10)
    assert max(run.latencies) > 8 * 0.015
    assert run.refused_at_door == run.refused_at_dequeue == 0
