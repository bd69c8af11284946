"""How the scheduler's messages count things: "1 GPU", "2 GPUs", "0.5 cores".

One helper, so that no message says "1 GPUs" again (a user reads the count first and a
wrong plural makes a refusal look careless).
"""

from __future__ import annotations


def counted(n: float, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is exactly one (``1 GPU``, ``0.5 cores``)."""
    return f"{n:g} {noun}" if n == 1 else f"{n:g} {noun}s"
