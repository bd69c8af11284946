"""Deleting views and entities from the catalog's tables, and who may block it.

A view's deletion is a row in ``feature_view_deletions`` (see the migration),
never a removal of its versions. The checks and the write share one
``BEGIN IMMEDIATE`` transaction, so a dependent applied meanwhile cannot slip
past the check. What blocks a view: a live on-demand view whose latest
version reads it, or a registered model version whose ``features`` name it
(`ModelFeatures`, supplied by `mlbox.services`: the feature store does not
import the registry). What blocks an entity: a live feature view using it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mlbox.features.refs import parse_ref
from mlbox.store.db import Database
from mlbox.store.errors import Conflict, InvalidInput, NotFound

MAX_NAMED = 8  # dependents named in a refusal, then "+N more"

ModelFeatures = Callable[[], Iterable[tuple[str, Sequence[str]]]]
"""Every registered model version that takes feature views as inputs: ``(model ref,
its feature refs)``. It must only read: it runs inside a delete's transaction
(the registry shares ``mlbox.db``, so it reads what that transaction sees)."""


def is_deleted(conn: Any, name: str) -> bool:
    return conn.execute("SELECT 1 FROM feature_view_deletions WHERE name = ?", (name,)).fetchone() is not None


def delete_view(
    db: Database, name: str, *, model_features: ModelFeatures | None, dry_run: bool
) -> tuple[list[int], float]:
    """Mark a live view deleted; returns its kept versions and the deletion time.

    NotFound when unknown or already deleted; Conflict naming what still uses it.
    """
    now = time.time()
    with db.atomic() as conn:
        versions = [
            int(r["version"])
            for r in conn.execute(
                "SELECT version FROM feature_view_versions WHERE name = ? ORDER BY version", (name,)
            )
        ]
        if not versions:
            raise NotFound(f"no feature view named {name!r}", field="name")
        if is_deleted(conn, name):
            raise NotFound(f"feature view {name!r} was already deleted", field="name")
        reasons = []
        readers = [
            r["name"]
            for r in _latest_live(conn, "on_demand_feature_view")
            if name in json.loads(r["definition"]).get("sources", [])
        ]
        if readers:
            reasons.append(
                f"{_count('on-demand view', readers)} {_names(readers)} {_verb('read', readers)} it"
            )
        models = models_using(name, model_features)
        if models:
            reasons.append(
                f"{_count('model version', models)} {_names(models, quote=False)} "
                f"{_verb('take', models)} its features"
            )
        if reasons:
            raise Conflict(f"cannot delete feature view {name!r}: {'; '.join(reasons)}", field="name")
        if not dry_run:
            conn.execute(
                "INSERT INTO feature_view_deletions (name, version, deleted_at) VALUES (?, ?, ?)",
                (name, versions[-1], now),
            )
    return versions, now


def delete_entity(db: Database, name: str, *, dry_run: bool) -> float:
    """Remove an entity no live feature view uses (Conflict naming them otherwise).

    Entities have no versions: each view version keeps the join keys it was
    applied with, so old versions and their training sets do not need it."""
    now = time.time()
    with db.atomic() as conn:
        if conn.execute("SELECT 1 FROM feature_entities WHERE name = ?", (name,)).fetchone() is None:
            raise NotFound(f"no entity named {name!r}", field="name")
        users = [
            r["name"]
            for r in _latest_live(conn, "feature_view")
            if name in json.loads(r["definition"]).get("entities", [])
        ]
        if users:
            raise Conflict(
                f"cannot delete entity {name!r}: {_count('feature view', users)} {_names(users)} "
                f"{_verb('use', users)} it",
                field="name",
            )
        if not dry_run:
            conn.execute("DELETE FROM feature_entities WHERE name = ?", (name,))
    return now


def models_using(view: str, model_features: ModelFeatures | None) -> list[str]:
    """The model versions whose feature refs name ``view`` (a ref's view is the part before
    ``:`` or ``@``; the registry checked the refs' shape when they were registered)."""
    if model_features is None:
        return []
    out = []
    for ref, refs in model_features():
        for text in refs:
            try:
                named = parse_ref(text).view
            except InvalidInput:
                named = str(text).split(":", 1)[0].split("@", 1)[0]
            if named == view:
                out.append(ref)
                break
    return out


def _latest_live(conn: Any, kind: str) -> list[Any]:
    """The latest version's definition of every live view of ``kind``."""
    return list(
        conn.execute(
            "SELECT v.name, v.definition FROM feature_view_versions v WHERE v.kind = ?"
            " AND v.version = (SELECT max(version) FROM feature_view_versions WHERE name = v.name)"
            " AND v.name NOT IN (SELECT name FROM feature_view_deletions) ORDER BY v.name",
            (kind,),
        )
    )


def _count(noun: str, items: Sequence[str]) -> str:
    return noun if len(items) == 1 else f"{noun}s"


def _verb(verb: str, items: Sequence[str]) -> str:
    return f"{verb}s" if len(items) == 1 else verb


def _names(names: Sequence[str], *, quote: bool = True) -> str:
    shown = [repr(n) if quote else n for n in names[:MAX_NAMED]]
    more = f" (+{len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else ""
    return ", ".join(shown) + more
