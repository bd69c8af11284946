"""Who still needs a thing that is about to be deleted.

A service that keeps a reference to another service's object (a model version's
source run, a training-set record's run, a pinned served version) registers a
check with the owner of that object; the owner asks every check before it deletes
and refuses with a `Conflict` naming what depends. The owner never reads the other
service's tables, and a service built later (the composition root wires it) adds
its check without the owner importing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from mlbox.store.errors import Conflict

K = TypeVar("K")

Check = Callable[[Sequence[K]], list[str]]
"""Given the keys about to be deleted, one line per live dependent (``model 'churn' version 3
was trained in run 5``); an empty list when nothing needs them."""

SHOWN = 5
"""Dependents named in a refusal; the rest are counted."""


class Dependents(Generic[K]):
    """The checks registered for one kind of object (runs, model versions), by owner."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._checks: dict[str, Check[K]] = {}

    def add(self, owner: str, check: Check[K]) -> None:
        """Register (or replace) ``owner``'s check: a service built twice registers once."""
        self._checks[owner] = check

    def of(self, keys: Sequence[K]) -> list[str]:
        """Every live dependent of ``keys``, each check's lines in registration order."""
        if not keys:
            return []
        found: list[str] = []
        for check in list(self._checks.values()):
            found.extend(check(keys))
        return found

    def refuse_if_needed(self, keys: Sequence[K], what: str, *, field: str) -> None:
        """`Conflict` naming the dependents of ``keys`` when there are any (``what``: the subject)."""
        found = self.of(keys)
        if found:
            raise Conflict(refusal(what, found), field=field)


def refusal(what: str, dependents: Sequence[str]) -> str:
    """``cannot delete run 5: model 'churn' version 3 was trained in it (and 2 more)``."""
    shown = "; ".join(dependents[:SHOWN])
    more = len(dependents) - SHOWN
    tail = f" (and {more} more)" if more > 0 else ""
    return f"cannot delete {what}: {shown}{tail}"
