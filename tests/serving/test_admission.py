"""`mlbox.serving.admission`: the door of the scoring path, as values and arithmetic."""

from __future__ import annotations

import contextlib

import pytest

from mlbox.serving.admission import Admission, Ticket, next_limit
from mlbox.serving.config import ServingSettings
from mlbox.serving.errors import Overloaded
from mlbox.store.errors import InvalidInput


def test_the_hard_limit_refuses_with_retry_after_and_frees_on_leave() -> None:
    door = Admission(max_inflight=2, tolerance=0, retry_after_s=3)
    a, b = door.enter("m", 0.0), door.enter("other", 0.0)
    with pytest.raises(Overloaded, match="MLBOX_SERVING_MAX_INFLIGHT") as refused:
        door.enter("m", 0.0)
    assert refused.value.retry_after_s == 3 and refused.value.http_status == 503
    door.leave(a, 0.1)
    door.enter("m", 0.1)
    door.leave(b, 0.1, answered=False)
    assert door.inflight == 1 and door.shed == 1


def test_a_model_overloaded_open_loop_gets_fewer_places_and_regains_them() -> None:
    """Requests arrive twice as fast as the model answers, and answers slow to 10x their fastest:
    the limit falls to the floor; once arrivals fall back, fast answers win the places back."""
    door = Admission(max_inflight=64, tolerance=2.0, min_per_model=2)
    now = 0.0
    for _ in range(5):  # unloaded: 3 ms answers set the baseline
        door.leave(door.enter("slow", now), now + 0.003)
        now += 0.01
    waiting: list[Ticket] = []
    for _ in range(100):  # open loop: two arrivals per answer, which takes 30 ms
        for _ in range(2):
            with contextlib.suppress(Overloaded):
                waiting.append(door.enter("slow", now))
        if waiting:
            door.leave(waiting.pop(0), now + 0.03)
        now += 0.01
    assert door.gates["slow"].limit == 2.0  # cut down to the floor
    assert door.shed > 0
    for ticket in waiting:
        door.leave(ticket, now + 0.03)
    held = [door.enter("slow", now), door.enter("slow", now)]
    with pytest.raises(Overloaded, match="MLBOX_SERVING_LATENCY_TOLERANCE"):
        door.enter("slow", now)
    door.enter("fast", now)  # another model keeps its own places
    for t in held:
        door.leave(t, now + 0.003)
    for _ in range(50):
        door.leave(door.enter("slow", now), now + 0.003)
        now += 0.01
    assert door.gates["slow"].limit > 5


def test_a_closed_loop_of_sixteen_clients_is_never_refused_however_slow_its_answers() -> None:
    """Sixteen clients each send again when answered (16 in flight; each answer waits for the
    other 15, 20x the fastest answer): busy, not overloaded, so nobody gets a 503."""
    door = Admission(max_inflight=64, tolerance=2.0, min_per_model=3)
    now = 0.0
    for _ in range(5):
        door.leave(door.enter("m", now), now + 0.001)
        now += 0.01
    flying = [door.enter("m", now) for _ in range(16)]
    for _ in range(2000):  # one answer every ms, and its client sends the next request at once
        now += 0.001
        door.leave(flying.pop(0), now)
        flying.append(door.enter("m", now))
    assert door.shed == 0
    assert door.gates["m"].limit == 64


def test_next_limit_is_additive_up_multiplicative_down_and_clamped() -> None:
    assert next_limit(10, 0.001, 0.001, 2.0, 2, 64) == pytest.approx(10.1)
    assert next_limit(10, 0.005, 0.001, 2.0, 2, 64) == pytest.approx(9.0)
    assert next_limit(2, 0.005, 0.001, 2.0, 2, 64) == 2
    assert next_limit(64, 0.001, 0.001, 2.0, 2, 64) == 64


def test_draining_refuses_everything_until_reopened() -> None:
    door = Admission(max_inflight=8)
    door.drain()
    with pytest.raises(Overloaded, match="shutting down"):
        door.enter("m", 0.0)
    door.reopen()  # the next appliance over the same serving service
    door.leave(door.enter("m", 0.0), 0.001)


def test_admission_settings_from_env() -> None:
    s = ServingSettings.from_env(
        {
            "MLBOX_SERVING_MAX_INFLIGHT": "32",
            "MLBOX_SERVING_LATENCY_TOLERANCE": "0",
            "MLBOX_SERVING_MAX_CONNECTIONS": "500",
            "MLBOX_SERVING_DRAIN_S": "2.5",
        }
    )
    assert (s.max_inflight, s.latency_tolerance, s.max_connections, s.drain_s) == (32, 0.0, 500, 2.5)
    with pytest.raises(InvalidInput) as bad:
        ServingSettings.from_env({"MLBOX_SERVING_MAX_INFLIGHT": "0"})
    assert bad.value.field == "MLBOX_SERVING_MAX_INFLIGHT"


def test_a_fast_models_millisecond_hiccups_do_not_cut_its_limit() -> None:
    """Answers of 0.3 ms and a few of 3 ms (the GIL held by a version loading beside it) are
    all well under any overload: the baseline reads at least 5 ms, so the limit keeps growing."""
    door = Admission(max_inflight=64, tolerance=2.0, min_per_model=3)
    now = 0.0
    for i in range(200):
        latency = 0.003 if i % 10 == 0 else 0.0003
        door.leave(door.enter("fast", now), now + latency)
        now += 0.001
    assert door.gates["fast"].limit == 64


def _open_loop_p99(door: Admission, service_s: float, interval_s: float, seconds: float) -> tuple[float, int]:
    """Requests every ``interval_s`` into one model answering one at a time in ``service_s``
    (FIFO): the p99 latency of the admitted ones, and how many were refused."""
    for i in range(5):  # unloaded answers set the baseline
        door.leave(door.enter("m", i * 0.01), i * 0.01 + service_s)
    queue: list[Ticket] = []
    latencies: list[float] = []
    start = now = 0.1
    arrival, done = start, float("inf")
    while now < start + seconds:
        now = min(arrival, done)
        if now == done:
            ticket = queue.pop(0)
            door.leave(ticket, now)
            latencies.append(now - ticket.started)
            done = now + service_s if queue else float("inf")
        else:
            with contextlib.suppress(Overloaded):
                queue.append(door.enter("m", now))
                if len(queue) == 1:
                    done = now + service_s
            arrival += interval_s
    latencies.sort()
    return latencies[int(0.99 * len(latencies))], door.shed


def test_an_open_loop_past_capacity_comes_down_to_its_limit_in_one_step() -> None:
    """Twice the capacity of a 3 ms model for 20 s, from a door at its widest: once pressure is
    seen the limit falls in one step to what Little's law allows, not by 10 % cuts over dozens of
    round trips while everything admitted queues (admitted p99 here 164 ms without the clamp,
    104 ms with it: what queued before pressure was seen; 357 ms measured in
    `scripts/bench/overload.py` before it)."""
    door = Admission(max_inflight=256, tolerance=2.0, min_per_model=3)
    p99, shed = _open_loop_p99(door, 0.003, 0.0015, 20.0)
    assert p99 < 0.13
    assert 6000 < shed < 7000  # about half of the ~13,330 arrivals


def test_an_open_loop_within_capacity_is_never_refused() -> None:
    p99, shed = _open_loop_p99(Admission(max_inflight=256, tolerance=2.0, min_per_model=3), 0.003, 0.004, 2.0)
    assert shed == 0 and p99 < 0.004


def test_a_late_event_loop_refuses_a_pressed_models_requests_only() -> None:
    """The loop 30 ms late: a model asked faster than it answers is refused at once; one that is
    not (a closed loop on a busy machine) is admitted as before."""
    door = Admission(max_inflight=8192, tolerance=2.0, min_per_model=3)
    door.observe_lag(0.03)
    calm = door.enter("calm", 0.0)
    door.leave(calm, 0.001)
    now, held = 0.0, []
    with pytest.raises(Overloaded, match="30 ms behind"):
        for _ in range(4000):  # 8 arrivals per ms, none answered: pressed after two windows
            held.append(door.enter("busy", now))
            now += 0.000125
    assert now > 0.2  # two whole pressure windows went by before the first refusal


def test_the_doorstep_answers_a_refused_scoring_post_in_one_piece_and_nothing_else() -> None:
    """`mlbox.api.drain.refused_answer`: what the HTTP server writes, before any ASGI call, for a
    scoring request the admission refuses; None hands the request on (the ASGI path answers it)."""
    from mlbox.api.drain import refused_answer

    door = Admission(max_inflight=1, retry_after_s=2)
    names = frozenset({"127.0.0.1"})
    host = [(b"host", b"127.0.0.1:5151")]
    infer = b"/v2/models/m/infer"
    assert refused_answer(door, names, b"POST", infer, host) is None  # nothing in flight
    door.enter("m", 0.0)
    answer = refused_answer(door, names, b"POST", infer + b"?x=1", host)
    assert answer is not None and answer.startswith(b"HTTP/1.1 503 ")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"retry-after: 2" in head and f"content-length: {len(body)}".encode() in head
    assert b"MLBOX_SERVING_MAX_INFLIGHT" in body
    assert door.shed == 1
    for method, url, headers in [
        (b"GET", infer, host),  # not a scoring POST
        (b"POST", b"/api/v1/runs", host),
        (b"POST", b"/v2/models/m%2Fx/infer", host),  # encoded: the ASGI path decodes it
        (b"POST", infer, [(b"host", b"evil.example")]),  # the Host guard answers 403 there
        (b"POST", infer, []),
    ]:
        assert refused_answer(door, names, method, url, headers) is None
    door.drain()
    assert refused_answer(door, names, b"POST", infer, host) is None  # answered with Connection: close
    assert door.shed == 1


def test_requests_refused_past_the_door_count_as_refused_not_as_answers() -> None:
    """The model's queue refused them (503 after decoding): before, each counted as an answer,
    arrivals never outpaced answers, and the door never took over the refusing (measured at 10x
    a 3 ms model: 22,807 refused after decoding, none at the door, admitted p99 1.6 s)."""
    door = Admission(max_inflight=256, tolerance=2.0, min_per_model=3)
    now = 0.0
    for _ in range(3000):  # 10 arrivals per ms, every one refused by the model's queue
        door.leave(door.enter("m", now), now + 0.0001, answered=False, shed=True)
        now += 0.0001
    assert door.gates["m"].pressed() and door.shed == 3000


def test_a_saturated_loop_cuts_the_doorstep_share_in_proportion_and_regains_it_slowly() -> None:
    """`next_share`: two late probes in a row while saturated cut the share by how late (one late
    probe is a GC pause; one very late probe is not); a late loop that is not saturated keeps
    it; every probe on time gives a point back."""
    from mlbox.serving.admission import MIN_SHARE, SATURATED_LAG_S, next_share

    late = 4 * SATURATED_LAG_S
    assert next_share(1.0, late, late_before=False, saturated=True) == 1.0  # one hiccup
    assert next_share(1.0, late, late_before=True, saturated=True) == pytest.approx(0.25)
    assert next_share(1.0, 10 * SATURATED_LAG_S, late_before=False, saturated=True) == pytest.approx(0.1)
    assert next_share(1.0, 1.0, late_before=True, saturated=True) == pytest.approx(0.05)  # at most twentyfold
    assert next_share(MIN_SHARE, 1.0, late_before=True, saturated=True) == MIN_SHARE
    assert next_share(1.0, 10 * SATURATED_LAG_S, late_before=True, saturated=False) == 1.0
    assert next_share(0.5, SATURATED_LAG_S / 2, late_before=True, saturated=True) == pytest.approx(0.51)
    assert next_share(0.995, 0.0, late_before=False, saturated=True) == 1.0


def test_a_late_loop_is_saturated_only_when_busy_with_many_requests_in_flight() -> None:
    """Late and busy with a closed loop's 16 requests, or late with 100 in flight while the
    process barely runs (the machine busy elsewhere): nothing is cut. Late and busy with 100
    in flight: the share falls."""
    from mlbox.serving.admission import CROWDED_INFLIGHT, SATURATED_LAG_S

    door = Admission(max_inflight=8192, tolerance=2.0, min_per_model=3)
    few = [door.enter("m", 0.0) for _ in range(16)]
    assert len(few) < CROWDED_INFLIGHT
    door.observe_lag(0.04, cpu=1.0)
    door.observe_lag(0.04, cpu=1.0)
    assert door.share == 1.0
    many = few + [door.enter("m", 0.0) for _ in range(CROWDED_INFLIGHT)]
    door.observe_lag(0.04, cpu=0.3)
    door.observe_lag(0.04, cpu=0.3)
    assert door.share == 1.0
    door.observe_lag(0.04, cpu=1.0)
    assert door.share == pytest.approx(max(0.05, SATURATED_LAG_S / 0.04))
    assert len(many) > CROWDED_INFLIGHT


def test_the_doorstep_admits_only_its_share_evenly_while_the_loop_is_saturated() -> None:
    """A pool of 256 keep-alive connections keeps pace with answers (a model never `pressed`)
    while the loop falls behind: the doorstep refuses all but the share, spread evenly,
    saying so; requests it lets through are admitted by `enter` as usual; once the loop
    keeps time again the share climbs back and nothing is refused."""
    door = Admission(max_inflight=8192, tolerance=2.0, min_per_model=3)
    door.leave(door.enter("m", 0.0), 0.001)
    door.share = 0.25  # as a saturated loop and a few probes on time would leave it
    outcomes = []
    for i in range(40):
        refused = door.door("m", 0.01 + i * 1e-4)
        if refused is None:
            door.leave(door.enter("m", 0.01 + i * 1e-4), 0.0101 + i * 1e-4)
        outcomes.append(refused is None)
        if refused is not None:
            assert "faster than it reads them" in refused.message and "about 25%" in refused.message
    assert outcomes == [False, False, False, True] * 10
    assert door.shed == 30
    for _ in range(100):
        door.observe_lag(0.0, cpu=0.5)
    assert door.share == 1.0
    assert all(door.door("m", 0.1 + i * 1e-3) is None for i in range(20))


def test_the_first_request_admitted_while_none_is_in_flight_wakes_the_lag_probe() -> None:
    """`Admission.on_first` (the idle lag probe's wake-up) fires once per quiet spell: on the
    request that ends it, not on those behind it, and again after all were answered."""
    door = Admission(max_inflight=64)
    woken: list[int] = []
    door.on_first = lambda: woken.append(door.inflight)
    first = door.enter("m", 0.0)
    second = door.enter("m", 0.0)
    assert woken == [0]
    door.leave(first, 0.001)
    door.leave(second, 0.001)
    door.enter("m", 0.01)
    assert woken == [0, 0]
