"""The key-press benchmark's clocks (`mlbox.tui.bench.time_key_presses`, issue 18).

One round over a small home: every key gets Pilot's wall time, the CPU time
and the app's own answer time (`AnswerClock`: key event reaching the app to
the first frame drawn with the answer), which lies inside Pilot's window; of a
key with nothing to answer, most of Pilot's time is its own.
"""

from __future__ import annotations

import asyncio

from mlbox.services import Services
from mlbox.tui.bench import seed_wide_runs, time_key_presses


def test_every_key_is_timed_by_pilot_and_by_the_app(services: Services) -> None:
    seed_wide_runs(services.tracking, 200, metrics=3, points=3)
    figures = asyncio.run(time_key_presses(services, repeats=1))
    keys = [k for k in figures if not k.startswith(("cpu:", "app:"))]
    assert len(keys) == 16 and keys[0] == "unbound key (Pilot's floor)"
    for key in keys:
        (wall,), (cpu,), (own,) = figures[key], figures[f"cpu:{key}"], figures[f"app:{key}"]
        assert 0 < own <= wall and cpu > 0, (key, wall, cpu, own)
    floor = keys[0]  # nothing to answer: the app's part is tiny, the rest is Pilot's waiting
    assert figures[f"app:{floor}"][0] < figures[floor][0] / 2
