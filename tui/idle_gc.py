"""Full garbage collections while the user is idle, not inside a key press (issue 18).

A full (generation-2) collection walks every tracked object outside the start-up freeze
(`freeze_startup_heap`): about 100,000 over a big home, 35-80 ms, and Python starts one
whenever its counters say so, which fell inside about one key press in ten. The TUI app
asks `IdleCollector.tick` ten times a second; once no input event has arrived for
`IDLE_S` (and none is being handled) and Python's own counters say a full collection is
near (`full_collection_near`), it runs that collection there, at most once every
`EVERY_S`. The automatic one is then rarely due while a key is handled.

Not frozen afterwards: a `gc.freeze()` right after the collection would hold nothing that
is garbage then, but every cycle alive at that moment (screens, widgets and their
parent/child links, workers, the per-line caches' owners) would never be collected once it
died, a leak that grows with every idle collection. Only what lives as long as the process is
frozen, once each: start-up's heap, and the sections' screens built ahead
(`MlboxApp.build_ahead`).

Process-wide, like the collector itself: the TUI process also hosts the embedded
appliance. `mlbox up` does not use this; its policy stays its own.

The same idleness gates other work a key must not wait behind (`IdleCollector.defer`): building
the run detail screen ahead of the first enter (`RunDetailScreen.prebuild`) is 100-200 ms of
CPU, and on a fixed timer a second after the first rows it fell inside a key press (a filter
answered in 232 ms, 117 of them the prebuild's, `scripts/bench/tui.py`).
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable

IDLE_S = 0.25
"""No input event for this long counts as idle: longer than the gap between keys typed in a
run, shorter than a person's pause to read the answer. The benchmark with 300 ms before each
press (`scripts/bench/tui.py --pause-ms 300`, 10,000 runs x 20 metrics, load 0.5-1.4) had
1 of 80 presses with a full collection inside with these settings, 8 with no idle collector
(9 of 80 when it waited 0.5 s: it rarely fired); with 1000 ms pauses 0 against 10."""
TICK_S = 0.1
"""How often the app asks: a Textual timer at 10 Hz costs about 2.6 ms of CPU a second idle
(measured, against 1 at 4 Hz); the collection then starts 0.25-0.35 s after the last input."""
EVERY_S = 1.0
"""At most one idle collection this often. After one, the counters need 5 generation-1
collections to be near again, which bounds them more; at 3 s, 4 of 80 presses 300 ms apart
still held a full collection, as the idle collector had waited out its spacing."""
NEAR_SHARE = 0.5
"""A full collection is near once the young-generation collections since the last full one
reach this share of Python's threshold for it (10 by default, so 5)."""


def full_collection_near(count: tuple[int, int, int], threshold: tuple[int, ...]) -> bool:
    """Whether Python's counters (`gc.get_count()`, `gc.get_threshold()`) are past ``NEAR_SHARE``
    of the way to a full collection: ``count[2]`` is the number of generation-1 collections
    since the last full one, and Python considers a full one once it passes ``threshold[2]``
    (it also waits for the long-lived objects to grow by a quarter, a figure it does not show,
    so an idle collection comes somewhat earlier than the automatic one would). A threshold of
    0 turns the collector off, and this with it."""
    if len(threshold) < 3 or threshold[0] == 0:
        return False
    return count[2] >= max(1, round(threshold[2] * NEAR_SHARE))


class IdleCollector:
    """Runs the pending full collection once the user is idle; the app reports input events."""

    def __init__(
        self,
        *,
        idle_s: float = IDLE_S,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_s = idle_s
        self.every_s = every_s
        self._clock = clock
        self._handling = 0
        self._last_input = clock()
        self._last_run = float("-inf")
        self.runs = 0
        """Idle collections run so far (the tests and the benchmark read it)."""
        self.collecting = False
        """True while an idle collection runs (the benchmark's `gc.callbacks` tell them apart)."""
        self._deferred: deque[Callable[[], object]] = deque()

    def input_started(self) -> None:
        """An input event (key, mouse) is being handled: no collection until it is done and idle."""
        self._handling += 1
        self._last_input = self._clock()

    def input_ended(self) -> None:
        self._handling -= 1
        self._last_input = self._clock()

    def defer(self, work: Callable[[], object]) -> None:
        """Run ``work`` at the first tick the user is idle (first come, first run; one a tick)."""
        self._deferred.append(work)

    @property
    def pending(self) -> int:
        """Deferred work not yet run."""
        return len(self._deferred)

    def idle(self) -> bool:
        """No input being handled, and none for `idle_s`."""
        return self._handling == 0 and self._clock() - self._last_input >= self.idle_s

    def due(self) -> bool:
        """Idle, not collected lately, and a full collection near."""
        return (
            self.idle()
            and self._clock() - self._last_run >= self.every_s
            and gc.isenabled()
            and full_collection_near(gc.get_count(), gc.get_threshold())
        )

    def tick(self, waiting: int = 0) -> bool:
        """If idle and no message is ``waiting`` for the app (a key just sent): collect if due,
        or else run the oldest deferred work (a collection first: it is what a key would
        otherwise meet). Whether it collected."""
        if waiting or not self.idle():
            return False
        if not self.due():
            if self._deferred:
                self._deferred.popleft()()
            return False
        self.collecting = True
        try:
            gc.collect()
        finally:
            self.collecting = False
        self._last_run = self._clock()
        self.runs += 1
        return True


def when_idle(app: object, work: Callable[[], object]) -> None:
    """``work`` at ``app``'s first idle tick (`IdleCollector.defer`); at once in an app without
    an idle collector (a test's bare app)."""
    collector = getattr(app, "idle_gc", None)
    if isinstance(collector, IdleCollector):
        collector.defer(work)
    else:
        work()
