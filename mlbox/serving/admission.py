"""Admission control at the door of the scoring path: answer 503 at once rather than queue.

Under open-loop overload the per-model queue (``MLBOX_SERVING_MAX_QUEUE``) is
never reached: the event loop and HTTP parsing saturate first, so requests
wait in socket buffers and latency grows without bound. `Admission` decides,
after a request's body is read and before it is decoded, whether it may be
scored now; a refused one costs a few microseconds and gets 503 with
``Retry-After``, so the requests admitted keep their latency.

Two limits, both on requests being answered (admitted, not yet answered):

* a hard one across all models (``MLBOX_SERVING_MAX_INFLIGHT``);
* an adaptive one per model (the reference in the path), moved by the
  latencies it sees (additive increase, multiplicative decrease): it grows by
  about one per ``limit`` answers that come back within ``tolerance`` × the
  fastest answer of the last windows, and shrinks by 10 % (at most once per
  such fastest time) when one takes longer *while requests for the model
  arrive faster than it answers them* (`pressed`). A model that costs 3 ms per
  request settles at a handful in flight under open-loop overload; a fast,
  batching one at dozens.

While pressed, the per-model limit is also held at what Little's law allows:
answers per second × ``tolerance`` × the fastest answer (`little_limit`). The
multiplicative cuts alone took dozens of round trips to come down from
``max_inflight``; meanwhile everything admitted queued behind, and those
requests made the admitted p99 of an overload's first second (357 ms against
an unloaded 23 ms, measured at twice a 3 ms model's capacity). With the clamp
the limit falls in one step as soon as pressure is seen, so what queues before
that is the excess of the two windows that see it.

Why the pressure condition: slow answers alone do not tell overload from a
busy, healthy model. Sixteen clients that each wait for their answer before
sending again (a closed loop: most applications, and every benchmark client)
keep sixteen requests in flight, and each answer takes sixteen services; but
they send only as fast as they are answered, so refusing some would turn
their waiting into 503s and retries and gain nothing. Under open-loop
overload (arrivals independent of answers, past capacity) requests arrive
faster than they are answered, the queue grows without bound, and that is
when refusing keeps the admitted requests' latency.

Neither limit sees time a request spent before it reached the door: in socket
buffers, while the event loop was busy reading and answering others. A fast
model at twice its capacity on two cores saturates the loop itself (measured:
health p99 178 ms, 503s after 197 ms). So the loop's lag is watched too
(`observe_lag`, fed by `mlbox.api.drain.DrainingServer` every few
milliseconds): while a model is pressed and the loop runs more than
`MAX_LOOP_LAG_S` late, its requests are refused at once. A refusal costs a
fraction of an answer, so the loop catches up; a busy machine that merely
slows a closed loop down is never pressed, so lag alone refuses nothing.

Nor does a model's pressure show when its requests come over a pool of
keep-alive connections that is full: the client's next request waits in its
pool until an answer frees a connection, so arrivals keep pace with answers
(a closed loop, as far as the server can tell), while the loop makes a whole
pass over the pool for every request (43 ms at 256 connections of a 0.17 ms
model, measured; health answers wait as long). So the doorstep also admits
only a share of scoring requests while the loop is saturated by its own work
(`door`, `next_share`): late probe after probe while the process burns a
core with dozens of requests in flight. Measured with the fast model at
twice its capacity from 256 connections: before, no 503 and a p99 of 8.8 s
(the pool's own queue); after, three in four refused and a p99 of 60-80 ms.

What neither limit sees is time spent in the model's own queue once
admitted: `mlbox.serving.sojourn` bounds that (CoDel at the batcher's
dequeue), from the first request of an overload, where the pressure windows
take 200 ms. And the HTTP server asks `refusal` as soon as a scoring
request's headers are parsed (`mlbox.api.drain.refused_answer`), so a
refusal costs one write instead of an ASGI request.

It holds values and arithmetic only: the caller passes the clock
(``now``, seconds), and one event loop calls it (no lock). The same object
serves `mlbox.api.serving.ScoringFastPath` and the Litestar handlers, so a
request counts once whichever path answers it. `drain` makes it refuse
everything while the appliance stops (`mlbox.appliance`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mlbox.serving.config import ServingSettings
from mlbox.serving.errors import Overloaded

MIN_BASELINE_S = 0.005
"""The baseline never reads below this: a model answering in 0.3 ms would otherwise count a
millisecond's hiccup (the GIL held by a version loading beside it during a swap) as overload,
and cut its limit to the floor while three clients score it."""

PRESSURE_WINDOW_S = 0.1
"""Arrivals and answers are compared over windows this long (`Gate.pressed`). Shorter windows
see overload sooner (what queues before it is seen waits longest) but mistake the bursts of a
batching model's closed loop for overload: at 25 ms, 24 clients of a 20 ms model were refused
at start (tests/test_e2e_overload.py)."""

PRESSED_WINDOWS = 2
"""Consecutive windows of more arrivals than answers that make pressure. One is not enough: a
closed loop starting (sixteen clients sending their first request at once) outpaces its
answers for one window, then keeps pace; an open loop past capacity outpaces them in every one."""

MAX_LOOP_LAG_S = 0.01
"""How late the event loop may run while a model is pressed before that model's requests are
refused at once (what they have already waited is about this lag)."""

SATURATED_LAG_S = 0.001
"""How late the event loop may wake its timer, probe after probe, before the doorstep admits only
a share of scoring requests (`next_share`). At 10 ms the fast model at twice its capacity kept a
p99 of 116 ms, at 5 ms 59-63 ms, at 2 ms 19.6-20.1 ms, at 1 ms (with `CROWDED_INFLIGHT` at 20)
16.4-19.7 ms, its 503 p99 6.9-9.6 ms against 8.7-9.9 (three interleaved pairs; 15-17 ms in
runs before); at 0.5 ms no better, its 503 p99 once 15 ms (scripts/bench/overload.py, 256
connections, 2 cores): a later cut lets the loop fall further behind before it starts catching
up. uvloop's clock counts whole milliseconds, so "more than 1 ms" means two or more."""

CROWDED_INFLIGHT = 20
"""Requests being answered at or above which a late, busy loop counts as crowded by them
(`Admission.observe_lag`). Below it a late loop is a closed loop on a busy machine: serving.py's
16 single-row clients at load 4 had 1,916 requests refused without this bound, and those clients
only wait longer when refused; so it stays above 16. It also sets where the share settles under
overload: the share climbs back until the loop is late again with this many in flight, so
requests admitted wait about this many answers (Little's law). At 64 the fast model at twice its
capacity kept an admitted p99 of 59 ms against 22-26 ms at 24; with `SATURATED_LAG_S` at 1 ms,
16 and 20 kept 14.5-17 ms and 12 17-25 ms (same machine, interleaved runs)."""

SATURATED_CPU = 0.8
"""The process's CPU seconds per second at or above which a late event loop counts as busy with its
own work (`Admission.observe_lag`)."""

MIN_SHARE = 0.01
"""The least share of scoring requests a saturated loop still admits: the model keeps answering,
so its answer rate (what the share recovers from) stays measured."""

WINDOW_S = 10.0
"""How long one window of the fastest-answer baseline lasts; the baseline is the fastest
answer of this window and the one before, so it follows a model whose cost changes (a swap)."""


@dataclass
class Gate:
    """One model's adaptive limit and what it has seen."""

    limit: float
    inflight: int = 0
    best_s: float = math.inf
    """The fastest answer of the previous window."""
    window_best_s: float = math.inf
    window_end: float = 0.0
    last_cut: float = -math.inf
    arrived: int = 0
    """Requests for the model (admitted or refused) in the current pressure window."""
    answered: int = 0
    """Requests answered (or given up) in the current pressure window."""
    outpaced_windows: int = 0
    """Consecutive finished windows in which arrivals outpaced answers."""
    pressure_end: float = 0.0
    rate: float = 0.0
    """Answers per second over the last two finished pressure windows."""
    previous_answered: int = 0

    def baseline(self) -> float:
        return max(MIN_BASELINE_S, min(self.best_s, self.window_best_s))

    def roll(self, now: float) -> None:
        """Start a new pressure window once the current one is over (a quiet gap of a whole
        window between them breaks the streak)."""
        if now >= self.pressure_end:
            contiguous = now < self.pressure_end + PRESSURE_WINDOW_S
            streak = contiguous and outpaced(self.arrived, self.answered)
            self.outpaced_windows = self.outpaced_windows + 1 if streak else 0
            before = self.previous_answered if contiguous else 0
            self.rate = (before + self.answered) / (2 * PRESSURE_WINDOW_S) if contiguous else 0.0
            self.previous_answered = self.answered if contiguous else 0
            self.arrived = self.answered = 0
            self.pressure_end = now + PRESSURE_WINDOW_S

    def pressed(self) -> bool:
        """Requests have arrived faster than the model answers them for `PRESSED_WINDOWS` windows."""
        return self.outpaced_windows >= PRESSED_WINDOWS


def outpaced(arrived: int, answered: int) -> bool:
    """More arrivals than answers by over 10 % (and more than two): a queue that grows. In a
    closed loop the two differ only by the change in requests in flight."""
    return arrived - answered > max(2, 0.1 * answered)


@dataclass(frozen=True)
class Ticket:
    """An admitted request: handed back to `Admission.leave` with its answer."""

    key: str
    started: float


def little_limit(rate: float, baseline_s: float, tolerance: float) -> float:
    """The requests in flight that answer within ``tolerance`` × ``baseline_s`` at ``rate``
    answers per second (Little's law: in flight = throughput × time in the system)."""
    return rate * tolerance * baseline_s


def next_share(share: float, lag_s: float, late_before: bool, saturated: bool) -> float:
    """The share of scoring requests to admit at the doorstep after one lag probe.

    The loop woke its timer ``lag_s`` late; ``late_before`` says the previous probe was late too;
    ``saturated``: the process burns its core with many requests in flight (`observe_lag`).
    Two late probes in a row while saturated (one late probe may be a GC pause or a model swap;
    one four times late is not) cut the share in proportion to how late (at twice `SATURATED_LAG_S` it halves,
    at twenty times it falls twentyfold: one step for the onset of an overload); a probe on
    time gives back one point, so the share climbs slowly back to where the loop saturates
    again (faster climbs overshot: the loop fell behind by a whole pass over its connections,
    tens of milliseconds, at every return)."""
    if lag_s > SATURATED_LAG_S and (late_before or lag_s > 4 * SATURATED_LAG_S) and saturated:
        return max(MIN_SHARE, share * max(0.05, SATURATED_LAG_S / lag_s))
    if lag_s <= SATURATED_LAG_S:
        return min(1.0, share + 0.01)
    return share


def next_limit(
    limit: float, latency_s: float, baseline_s: float, tolerance: float, floor: float, ceiling: float
) -> float:
    """The per-model limit after one answer that took ``latency_s``: AIMD against the baseline.

    The increase is ``1 / limit`` per answer, so a limit grows by about one per round of
    answers; the decrease is multiplicative. Both are clamped to ``[floor, ceiling]``.
    """
    if latency_s > tolerance * baseline_s:
        return max(floor, limit * 0.9)
    return min(ceiling, limit + 1.0 / max(limit, 1.0))


class Admission:
    """Counts scoring requests being answered and refuses those beyond the limits (see module)."""

    def __init__(
        self,
        *,
        max_inflight: int,
        tolerance: float = 2.0,
        min_per_model: int = 2,
        retry_after_s: int = 1,
    ) -> None:
        self.max_inflight = max_inflight
        self.tolerance = tolerance
        """0 turns the per-model limit off (only ``max_inflight`` applies)."""
        self.min_per_model = min(min_per_model, max_inflight)
        self.retry_after_s = retry_after_s
        self.inflight = 0
        self.shed = 0
        """Requests refused so far (all reasons)."""
        self.draining = False
        self.gates: dict[str, Gate] = {}
        self.loop_lag_s = 0.0
        """How late the event loop last woke a timer (`observe_lag`)."""
        self.on_first: Callable[[], None] | None = None
        """Called when a request is admitted while none was in flight: the lag probe
        (`mlbox.api.drain.watch_loop_lag`) sleeps long while idle and is woken to watch closely
        from an overload's first request (it saw the first 100 ms of one late)."""
        self.share = 1.0
        """The share of scoring requests the doorstep admits (`door`, `next_share`): below 1 while
        the event loop is saturated by its own work."""
        self._credit = 0.0

    def enter(self, key: str, now: float) -> Ticket:
        """Admit a request for model ``key`` or raise `Overloaded` saying which limit it hit."""
        refused = self.refusal(key, now)
        if refused is not None:
            raise refused
        gate = self.gates[key]
        gate.arrived += 1
        gate.inflight += 1
        if not self.inflight and self.on_first is not None:
            self.on_first()
        self.inflight += 1
        return Ticket(key, now)

    def refusal(self, key: str, now: float) -> Overloaded | None:
        """Why a request for model ``key`` is refused now (counted as refused), or None.

        None counts nothing: `enter` asks again and counts the request it admits. The HTTP
        server asks before a scoring request's body is read (`mlbox.api.drain`), so a refusal
        costs no task, no ASGI call and one write."""
        if self.draining:
            self.shed += 1
            return Overloaded("the server is shutting down", retry_after_s=self.retry_after_s)
        if self.inflight >= self.max_inflight:
            self.shed += 1
            return Overloaded(
                f"{self.inflight} scoring requests are being answered, the most at once"
                " (MLBOX_SERVING_MAX_INFLIGHT); retry later",
                retry_after_s=self.retry_after_s,
            )
        gate = self.gates.get(key)
        if gate is None:
            gate = self.gates[key] = Gate(limit=float(self.max_inflight))
        gate.roll(now)
        if self.tolerance > 0 and gate.pressed():
            held = little_limit(gate.rate, gate.baseline(), self.tolerance)
            gate.limit = min(gate.limit, max(float(self.min_per_model), held))
            if self.loop_lag_s > MAX_LOOP_LAG_S:
                self.shed += 1
                gate.arrived += 1
                return Overloaded(
                    f"the server runs {self.loop_lag_s * 1000:.0f} ms behind reading requests while {key}"
                    " is asked more than it answers; retry later",
                    retry_after_s=self.retry_after_s,
                )
        if self.tolerance > 0 and gate.inflight >= max(self.min_per_model, int(gate.limit)):
            self.shed += 1
            gate.arrived += 1
            return Overloaded(
                f"{gate.inflight} requests for {key} are being answered, as many as keep its latency"
                f" within {self.tolerance:g}x its fastest (MLBOX_SERVING_LATENCY_TOLERANCE); retry later",
                retry_after_s=self.retry_after_s,
            )
        return None

    def leave(self, ticket: Ticket, now: float, *, answered: bool = True, shed: bool = False) -> None:
        """The request of ``ticket`` is answered; ``answered`` False (an error before scoring, a
        client gone) frees its place without teaching the limit its latency. ``shed``: it was
        refused past the door (its model's queue, `mlbox.serving.sojourn`): counted as refused,
        and not as an answer of the model, so that arrivals outpace answers (`Gate.pressed`) and
        the door refuses the next ones before their bodies are decoded."""
        self.inflight -= 1
        gate = self.gates[ticket.key]
        gate.inflight -= 1
        gate.roll(now)
        if shed:
            self.shed += 1
            return
        gate.answered += 1
        if not answered or self.tolerance <= 0:
            return
        latency = max(now - ticket.started, 1e-6)
        if now >= gate.window_end:
            gate.best_s, gate.window_best_s = gate.window_best_s, math.inf
            gate.window_end = now + WINDOW_S
        gate.window_best_s = min(gate.window_best_s, latency)
        baseline = gate.baseline()
        slow = latency > self.tolerance * baseline
        if slow and not gate.pressed():
            return  # busy, not overloaded: a closed loop's clients wait their turn (module docstring)
        if slow and now - gate.last_cut < baseline:
            return  # one cut per round trip: the answers of one overloaded batch count once
        if slow:
            gate.last_cut = now
        gate.limit = next_limit(
            gate.limit, latency, baseline, self.tolerance, float(self.min_per_model), float(self.max_inflight)
        )

    def door(self, key: str, now: float) -> Overloaded | None:
        """`refusal` as the HTTP server asks it, once per request before anything is read past the
        headers: while the event loop is saturated (`share` < 1) it first refuses all but that
        share of scoring requests, spread evenly (every second one at a half). The limits behind
        the door count requests in flight, and a loop saturated by requests it reads cannot
        see them: from a pool of keep-alive connections, arrivals keep pace with answers (a
        client's next request waits in its own pool), so a model is never `Gate.pressed` and
        every request waits a whole pass of the loop over the pool (43 ms at 256 connections
        of a 0.17 ms model, health answers included). Refusals cost a third of an answer, so a
        smaller share lets the loop catch up."""
        if self.share < 1.0:
            self._credit += self.share
            if self._credit < 1.0:
                self.shed += 1
                gate = self.gates.get(key)
                if gate is not None:
                    gate.roll(now)
                    gate.arrived += 1
                percent = max(1, round(self.share * 20) * 5)  # few distinct answers: cached as bytes
                return Overloaded(
                    f"the server gets scoring requests faster than it reads them and admits about"
                    f" {percent}% of them until it catches up; retry later",
                    retry_after_s=self.retry_after_s,
                )
            self._credit -= 1.0
        return self.refusal(key, now)

    def observe_lag(self, lag_s: float, cpu: float = 0.0) -> None:
        """The event loop woke a timer ``lag_s`` late while the process used ``cpu`` CPU seconds
        per second (`mlbox.api.drain.watch_loop_lag`): saturated by its own requests when it burns
        its core with `CROWDED_INFLIGHT` of them in flight; late while it uses less, the machine
        is busy elsewhere (a training job on every core), and refusing would only turn slowness
        into errors."""
        late_before = self.loop_lag_s > SATURATED_LAG_S
        self.loop_lag_s = lag_s
        saturated = cpu >= SATURATED_CPU and self.inflight >= CROWDED_INFLIGHT
        self.share = next_share(self.share, lag_s, late_before, saturated)
        if self.share >= 1.0:
            self._credit = 0.0

    def drain(self) -> None:
        """Refuse every new request from now on (the appliance is stopping)."""
        self.draining = True

    def reopen(self) -> None:
        """Admit again (an appliance starting over the serving service a stopped one drained)."""
        self.draining = False


def admission_for(settings: ServingSettings) -> Admission:
    """The admission of an API serving with ``settings`` (`mlbox.api.app.create_app` builds one)."""
    return Admission(
        max_inflight=settings.max_inflight,
        tolerance=settings.latency_tolerance,
        min_per_model=settings.min_inflight_per_model,
        retry_after_s=settings.retry_after_s,
    )
