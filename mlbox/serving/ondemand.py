"""Which versions loaded on demand to unload: the pure rule behind `ServingService`'s cap and idle timeout.

Versions no alias points to are loaded only for a caller holding the API token
(open routes answer 404 "not served" instead, so a web page cannot make the
appliance load models). What such callers load is bounded: at most
``MLBOX_SERVING_MAX_ON_DEMAND`` references at once, the least recently used
unloaded first to make room, and any of them idle for
``MLBOX_SERVING_ON_DEMAND_IDLE_S`` unloaded by the watcher. They score on the
CPU (never a GPU lease, which a job could use).
"""

from __future__ import annotations

from collections.abc import Mapping


def idle(last_used: Mapping[str, float], now: float, idle_s: float) -> list[str]:
    """References not used for ``idle_s`` seconds (0 keeps them until the cap pushes them out)."""
    if idle_s <= 0:
        return []
    return sorted(k for k, t in last_used.items() if now - t >= idle_s)


def make_room(last_used: Mapping[str, float], cap: int) -> list[str]:
    """References to unload, least recently used first, so that one more fits under ``cap``."""
    excess = len(last_used) - (cap - 1)
    if excess <= 0:
        return []
    return [k for k, _ in sorted(last_used.items(), key=lambda kv: (kv[1], kv[0]))[:excess]]
