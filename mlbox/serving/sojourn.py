"""CoDel-style control of one model's queue: refuse what has waited too long, at dequeue.

`mlbox.serving.admission` decides at the door from rates and answer times,
and needs two 100 ms windows of arrivals outpacing answers before it calls a
model overloaded. What is admitted meanwhile queues, and those requests made
the admitted p99 of an overload's first 200 ms (115 ms at twice a 3 ms
model's capacity, against 7.4 ms unloaded); at its capacity (1x) arrivals
never outpace answers for long, yet the queue wanders like any queue at
utilisation ~1 (p99 29 ms). Queue time is what the client feels, so this
controller watches it directly, as CoDel (Nichols and Jacobson, RFC 8289)
watches a packet's sojourn:

* the *target* is derived from the model's own service time: `TARGET_FACTOR`
  x its fastest batch of the last `WINDOW_S` windows (never under
  `MIN_TARGET_S`), plus the batcher's own ``max_delay_s``; a model not yet
  seen answering has no target and nothing is refused;
* a queue whose every dequeued request has waited past the target for an
  *interval* (`INTERVAL_FACTOR` x the target, at least `MIN_INTERVAL_S`),
  while the requests in the system (queued at dequeue) grew, or past
  `STANDING_FACTOR` targets, has a standing queue that arrivals feed as fast
  as it drains or faster: from then on, a
  request dequeued after more than the target is answered 503 instead of
  being scored (it would only come back late and make the next ones later),
  until one is dequeued within the target. A queue that fits in the next
  batch is never refused: its head waited for the thread, not for others;
* after such an episode the queue counts as *pressed* for `PRESSED_FOR`
  intervals after the last refusal: a new episode starts at once (CoDel
  remembers its drop rate the same way), and the door (`admit_new`, called
  when a request is queued) refuses a newcomer that would wait more than the
  target behind the batches queued ahead of it;
* a batch holds no more rows than finish within the target (`batch_cap`,
  from what one more row has been seen to cost): a model whose cost grows
  with its rows (3 ms a row) otherwise drains its whole queue in one long
  batch at an overload's onset, every request in it waits for all of them,
  and the next batch is longer still. A model that batches freely (trees,
  a network on a GPU) keeps its whole ``max_batch_size``.

Why not simply any request past the target: a closed loop (clients that wait
for their answer before sending again) makes bursts, and a burst waits: 24
clients of a 20 ms model all arrive at once and 23 wait one batch; eight of
a 3 ms-a-row model alternate batches of one and seven. Such a queue empties
(a request dequeued within the target) within an interval. Sixteen clients
sending 100 rows each to a model that batches 256 keep a queue that stands
past its target for good, but it never grows: each answer brings one request
back, so the requests in the system stay at sixteen, and refusing some would
turn their wait into 503s and retries and gain nothing (the door's argument
in `mlbox.serving.admission`). An open loop past capacity grows without end,
and at capacity it wanders up as often as down; those are refused.

The door (`mlbox.serving.admission.Admission.leave` with ``shed``) counts
these refusals as refused, not answered, so a model refused here is soon
pressed there too, and the door refuses its requests before their bodies
are decoded (at the HTTP server's doorstep, `mlbox.api.drain`).

Values and arithmetic only: the batcher's thread and the event loop call it
under the batcher's lock, and pass the clock (``now``, seconds).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

MIN_TARGET_S = 0.005
"""The target never reads below this: a model answering in 0.3 ms would otherwise count a
millisecond's pause (the GIL held by the event loop, a version loading beside it) as a standing
queue. It is `mlbox.serving.admission.MIN_BASELINE_S`'s reason too."""

TARGET_FACTOR = 1.5
"""The target is this many times the model's fastest batch: a request may wait for about one
batch ahead of it (the one being computed when it arrived) and half of another."""

MIN_INTERVAL_S = 0.01
INTERVAL_FACTOR = 4.0
"""How long every dequeued request must have waited past the target before refusals start:
four targets (20 ms for a 3 ms model) is several batches of a closed loop's burst, each of
which would reset it, and a fifth of the 100 ms pressure windows of the door."""

GROWTH_MIN = 3
GROWTH_SHARE = 0.5
"""A standing queue is refused only once the requests in the system have grown by more than
``max(GROWTH_MIN, GROWTH_SHARE x what they were)`` since it first stood past the target: a
closed loop's count moves only by the requests on their way back (module docstring)."""

STANDING_FACTOR = 8.0
"""A queue that stands past this many targets is refused even if it does not grow (unless it
shrinks, a burst draining): at its
capacity (1x) a burst (the server descheduled for 60 ms on a busy machine, then every request
that waited in the socket buffers at once) neither grows nor drains, and 22 requests waited
up to 72 ms behind it, measured. A closed loop would need a dozen clients per request the model
answers at once to wait that long."""

PRESSED_FOR = 20
"""Intervals after the last refusal during which the queue counts as pressed (see module)."""

MARGINAL_SAMPLES = 32

WINDOW_S = 10.0
"""How long one window of the fastest-batch baseline lasts (the fastest of this window and the
one before counts, so the baseline follows a model whose cost changes)."""


@dataclass
class SojournControl:
    """One queue's CoDel state and what it has learnt of its model's service time."""

    max_delay_s: float = 0.0
    """The batcher's own wait for more rows: time in the queue it spends on purpose."""
    best_s: float = math.inf
    """The fastest batch of the previous window."""
    window_best_s: float = math.inf
    window_end: float = -math.inf
    marginal_s: float = math.inf
    """What one more row adds to a batch: the median over the last `MARGINAL_SAMPLES` batches
    of several rows (infinite: none seen yet). The median, because single batches lie both ways
    on a busy machine: a 3 ms sleep that takes 6 ms once makes the fastest batch slow, and a
    two-row batch then looks free (the least of them read 0 and let 118-row batches through)."""
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=MARGINAL_SAMPLES))
    above_since: float | None = None
    """When the first of an unbroken run of dequeues past the target happened."""
    above_from: int = 0
    """The requests in the system at ``above_since``."""
    dropping: bool = False
    last_refusal: float = -math.inf
    busy_until: float = -math.inf
    """When the batch being scored should be done (`taken`)."""
    refused: int = 0
    """Requests refused so far, at dequeue or at the door."""

    def fastest(self) -> float:
        return min(self.best_s, self.window_best_s)

    def target(self) -> float:
        """How long a request may wait in the queue; infinite until the model has answered."""
        fastest = self.fastest()
        if math.isinf(fastest):
            return math.inf
        return max(MIN_TARGET_S, TARGET_FACTOR * fastest) + self.max_delay_s

    def interval(self) -> float:
        return max(MIN_INTERVAL_S, INTERVAL_FACTOR * (self.target() - self.max_delay_s))

    def pressed(self, now: float) -> bool:
        """A request was refused within the last `PRESSED_FOR` intervals."""
        return now - self.last_refusal < PRESSED_FOR * self.interval()

    def observe(self, rows: int, seconds: float, now: float) -> None:
        """A batch of ``rows`` rows took ``seconds`` to score."""
        self.busy_until = -math.inf
        if now >= self.window_end:
            self.best_s, self.window_best_s = self.window_best_s, math.inf
            self.window_end = now + WINDOW_S
        self.window_best_s = min(self.window_best_s, seconds)
        if rows > 1:  # a capped queue that scores one row at a time keeps what it learnt
            self.samples.append(max(0.0, seconds - self.fastest()) / (rows - 1))
            self.marginal_s = statistics.median(self.samples)

    def marginal(self) -> float:
        return self.marginal_s

    def expected(self, rows: int) -> float:
        """How long a batch of ``rows`` rows should take (fastest batch plus the marginal rows)."""
        fastest, marginal = self.fastest(), self.marginal()
        if math.isinf(fastest):
            return 0.0
        return fastest + (0.0 if math.isinf(marginal) else max(0, rows - 1) * marginal)

    def batch_cap(self, ceiling: int) -> int:
        """The most rows one batch may take: as many as `expected` finishes within the target
        (at least one). While what one more row costs is unknown, each row is taken to cost a
        whole fastest batch, and at least two are allowed (a batch of two teaches it): a model
        seen answering one row at a time (3 ms) otherwise took its whole queue at an overload's
        onset (118 rows, 354 ms, measured)."""
        fastest, marginal = self.fastest(), self.marginal()
        if math.isinf(fastest):
            return ceiling
        room = self.target() - self.max_delay_s - fastest
        if math.isinf(marginal):
            return min(ceiling, max(2, 1 + int(room / fastest)))
        if marginal <= 0:
            return ceiling
        return max(1, min(ceiling, 1 + int(room / marginal)))

    def taken(self, rows: int, now: float) -> None:
        """A batch of ``rows`` rows starts being scored (`observe` reports its end)."""
        self.busy_until = now + self.expected(rows)

    def admit_new(self, rows_ahead: int, now: float, ceiling: int) -> bool:
        """May a request join the queue behind ``rows_ahead`` queued rows? While pressed, only
        if what is left of the batch being scored and the batches ahead finish within the target."""
        if not self.pressed(now):
            return True
        wait = max(0.0, self.busy_until - now) + rows_ahead // self.batch_cap(ceiling) * self.expected(
            self.batch_cap(ceiling)
        )
        if wait <= self.target():
            return True
        self.refused += 1
        self.last_refusal = now
        return False

    def keep(self, sojourn_s: float, in_system: int, now: float, ceiling: int) -> bool:
        """A request leaves the queue after waiting ``sojourn_s``, with ``in_system`` requests
        queued (itself included; the model is idle at dequeue): True to score it, False to refuse
        it (the queue stands past its target and grows; see module). Called head first.

        A queue that fits in the next batch is not standing, however long its head waited: that
        wait was the thread's (woken late, the GIL held by the event loop for its 5 ms switch
        interval under load), and refusing would only leave the model idle (measured: a third of
        the costly model's capacity left unused at 10x on a loaded machine)."""
        target = self.target()
        if sojourn_s <= target or in_system <= self.batch_cap(ceiling):
            self.above_since = None
            self.dropping = False
            return True
        if not self.dropping:
            if self.above_since is None:
                self.above_since, self.above_from = now, in_system
            if not self.pressed(now):
                if now - self.above_since < self.interval():
                    return True
                grown = in_system - self.above_from > max(GROWTH_MIN, GROWTH_SHARE * self.above_from)
                draining = in_system < self.above_from
                if not grown and (draining or sojourn_s <= STANDING_FACTOR * target):
                    return True
            self.dropping = True
        self.refused += 1
        self.last_refusal = now
        return False
