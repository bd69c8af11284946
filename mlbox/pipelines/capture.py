"""What an in-process step prints, kept per step run.

Steps run in the service's thread pool, so ``sys.stdout`` cannot simply be swapped for the
duration of a step (another step, or the appliance itself, writes to it at the same time).
Instead ``sys.stdout``/``sys.stderr`` are wrapped once by a writer that looks up the
current step's buffer in a context variable: the worker thread that runs a step sets it,
every other thread writes through to the stream it wrapped. A logging handler on the root
logger does the same for log records emitted by the step's thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

MAX_CHARS = 1_000_000
"""A step's captured text is cut here (with a note): the log lives in a database row."""

_current: contextvars.ContextVar[Buffer | None] = contextvars.ContextVar("mlbox_step_output", default=None)
_install = threading.Lock()


class Buffer:
    """One step attempt's output; written from its thread, read by others (thread-safe)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self.cut = False

    def write(self, text: str) -> None:
        with self._lock:
            if self._size >= MAX_CHARS:
                self.cut = True
                return
            text = text[: MAX_CHARS - self._size]
            self._parts.append(text)
            self._size += len(text)

    def text(self) -> str:
        with self._lock:
            out = "".join(self._parts)
        return out + ("\n[output cut at 1,000,000 characters]\n" if self.cut else "")


class _Writer(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: the current step's buffer, else the
    stream it wrapped."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, s: str) -> int:
        buf = _current.get()
        if buf is None:
            return self.inner.write(s)
        buf.write(s)
        return len(s)

    def flush(self) -> None:
        if _current.get() is None:
            self.inner.flush()

    def isatty(self) -> bool:
        return _current.get() is None and self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Handler(logging.Handler):
    """Log records of a step's thread go to its buffer (other threads' records are left alone)."""

    def emit(self, record: logging.LogRecord) -> None:
        buf = _current.get()
        if buf is not None:
            buf.write(self.format(record) + "\n")


_handler = _Handler(logging.DEBUG)
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def _installed() -> None:
    """Wrap the current streams (again, if someone replaced them since) and add the handler."""
    with _install:
        if not isinstance(sys.stdout, _Writer):
            sys.stdout = _Writer(sys.stdout)
        if not isinstance(sys.stderr, _Writer):
            sys.stderr = _Writer(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextlib.contextmanager
def captured(buf: Buffer) -> Iterator[Buffer]:
    """Within this block, this thread's prints and log records go to ``buf``."""
    _installed()
    token = _current.set(buf)
    try:
        yield buf
    finally:
        _current.reset(token)
