"""How run values read in the terminal: times, durations, numbers, statuses and user text.

Pure functions over values, shared by every screen, so a run's start time or a
metric reads the same in the table, the detail and the comparison. Times are
shown in local time, to the minute (`mlbox.timefmt`, shared with the CLI);
tests fix ``TZ`` to keep snapshots stable.

User text (names, params, tags, descriptions, notes, log lines) is shown only
through `inert`: a rich ``Text`` is never parsed as markup, and its control
characters are made visible (`mlbox.textsafe.visible`). A plain ``str`` handed
to a DataTable cell, a border title, ``Static.update`` or ``notify`` is parsed
as markup: ``[link=…]`` in a job name would be obeyed, ``[/]`` would crash the
screen.
"""

from __future__ import annotations

import math
import re

from rich.console import JustifyMethod
from rich.text import Text

from mlbox import timefmt
from mlbox.sizefmt import size as size  # screens call fmt.size beside fmt.when
from mlbox.textsafe import visible

when = timefmt.when_minute
"""A timestamp as ``YYYY-MM-DD HH:MM`` local time (a narrow column); ``-`` when unknown."""
duration = timefmt.duration

STATUS_STYLES: dict[str, str] = {
    "running": "bold #4ea1ff",
    "finished": "#3fb950",
    "failed": "bold #f85149",
    "killed": "#d29922",
    "crashed": "bold #db61a2",
    "pruned": "#d29922",
}
STATUS_ICONS: dict[str, str] = {
    "running": "▶",
    "finished": "✔",
    "failed": "✘",
    "killed": "■",
    "crashed": "!",
    "pruned": "✂",
}


def inert(text: str, style: str = "", *, justify: JustifyMethod | None = None, keep: str = "") -> Text:
    """User ``text`` as it is: never markup, its control characters (but those in ``keep``) escaped."""
    return Text(visible(text, keep=keep), style=style, justify=justify)


def run_duration(start: float, end: float | None, heartbeat: float) -> float:
    """How long a run ran; a running one counts to its last heartbeat (as the search language does)."""
    return (end if end is not None else heartbeat) - start


def number(value: float | None, digits: int = 6) -> str:
    """A metric value in at most ``digits`` significant digits; NaN and ±inf spelled out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def param(text: str, digits: int = 6) -> str:
    """A param as logged, but a float with more than ``digits`` significant digits
    shortened to them (``0.30000000000000004`` reads ``0.3``); ints and words as they are."""
    if not re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", text.strip()):
        return text
    value = float(text)
    if re.fullmatch(r"[-+]?\d+", text.strip()) or not math.isfinite(value):
        return text
    short = f"{value:.{digits}g}"
    return short if len(short) < len(text) else text


def status(name: str) -> Text:
    """A run status in its colour with an icon, so it reads without colour too."""
    return Text(f"{STATUS_ICONS.get(name, '?')} {name}", style=STATUS_STYLES.get(name, ""))


def ident(kind: str, key: str) -> str:
    """``metrics.key`` for the search language, quoted when the key has unusual characters."""
    if re.fullmatch(r"[A-Za-z_][\w\-/:]*(?:\.[\w\-/:]+)*", key):
        return f"{kind}.{key}"
    if "`" not in key:
        return f"{kind}.`{key}`"
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{kind}."{escaped}"'
