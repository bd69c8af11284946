"""The key-press benchmark's clocks (`mlbox.tui.bench.time_key_presses`, issue 18).

One round over a small home: every key gets Pilot's wall time, the CPU time
and the app's own answer time (`AnswerClock`: key event reaching the app to
the first frame drawn with the answer), which lies inside Pilot's window; of a
key with nothing to answer, most of Pilot's time is its own. Full garbage
collections are timed and counted once each: inside a press (in its key's
figure) or between presses, where, with a pause before each press longer than
the idle collector's wait, the idle collector runs.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from mlbox.services import Services
from mlbox.tui.bench import key_names, seed_wide_runs, time_key_presses

IDLE_S = 0.1
"""The idle collector's wait here, shorter than the app's to keep the test fast."""


def test_every_key_is_timed_by_pilot_by_the_app_and_for_collections(services: Services) -> None:
    seed_wide_runs(services.tracking, 200, metrics=3, points=3)
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0], threshold[1], 1)  # a full collection near at every gen-1 one
    try:
        figures = asyncio.run(time_key_presses(services, repeats=1, pause_s=IDLE_S * 1.5, idle_s=IDLE_S))
    finally:
        gc.set_threshold(*threshold)
    keys = key_names(figures)
    assert len(keys) == 16 and keys[0] == "unbound key (Pilot's floor)"
    for key in keys:
        (wall,), (cpu,), (own,) = figures[key], figures[f"cpu:{key}"], figures[f"app:{key}"]
        assert 0 < own <= wall and cpu > 0, (key, wall, cpu, own)
    floor = keys[0]  # nothing to answer: the app's part is tiny, the rest is Pilot's waiting
    assert figures[f"app:{floor}"][0] < figures[floor][0] / 2
    assert figures["gc:idle"] and all(ms > 0 for ms in figures["gc:idle"])
    inside = sum(ms for k in keys for ms in figures[f"gc2:{k}"])  # a press may hold several
    assert inside == pytest.approx(sum(figures["gc:press"]) + sum(figures["gc:idle in press"]))
