"""User text made safe to show on a terminal: control characters become visible escapes.

A run name, a tag value, a job's log line or a model description is data, and
a terminal must show it, not obey it. An ESC in a name (``\\x1b]52;c;…`` writes
the clipboard, ``\\x1b[2J`` clears the screen, ``\\x1b]0;…`` sets the window
title) would otherwise reach the terminal raw, and a carriage return or a
bidirectional override would make a line read as something it is not. Both
front ends (the CLI and the TUI) pass user text through `visible` before they
print or render it, so the one rule lives here.

The rule: every character of Unicode category ``Cc`` (C0, DEL, C1) and every
bidirectional embedding, override or isolate is replaced by its Python escape
(``\\x1b``, ``\\u202e``); everything else, including backslashes, is left as
it is. Characters named in ``keep`` (a log keeps ``\\n`` and ``\\t``) pass
through.
"""

from __future__ import annotations

import re

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Characters that reorder what follows them on screen (Unicode category Cf, bidi class controls)."""

_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}]")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep: str = "") -> str:
    """``text`` with every control character shown as its escape (``ESC`` as the 4 characters ``\\x1b``).

    Characters in ``keep`` are left as they are (``"\\n\\t"`` for a multi-line log).
    Text without control characters comes back as it is (the common case costs one search).
    """
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)
