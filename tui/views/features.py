"""What the Features screen shows, computed from feature-store values: the views,
entities and training-sets tables, a view's versions pane, and sample cells.

Pure functions over `mlbox.features` values (no Textual widgets, no store
calls), so they are tested on their own. A TTL reads as the definitions
write it (`mlbox.features.loader.ttl_text`, shared with the CLI).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from rich.text import Text

from mlbox.features.loader import ttl_text
from mlbox.features.schemas import EntityInfo, TrainingSetInfo, ViewInfo
from mlbox.textsafe import visible
from mlbox.timefmt import SECOND_FORMAT
from mlbox.tui.views import format as fmt

MAX_CELL = 28
EMPTY = "no feature views yet: describe them in a YAML file, then  mlbox features apply DEFS.yaml"
VIEW_COLUMNS = ("view", "version", "versions", "entities", "features", "ttl", "freshness")
ENTITY_COLUMNS = ("entity", "join keys")
TRAINING_SET_COLUMNS = ("id", "built", "views", "rows", "entity hash", "name")


def freshness_cell(view: ViewInfo) -> Text:
    """Where the online store stands for a view's latest version."""
    if view.kind != "feature_view":
        return Text("on demand", style="italic")
    f = view.freshness
    if f is None or f.materialized_end is None:
        return Text("never materialized", style="#d29922")
    return Text(f"to {fmt.when(f.materialized_end)} · {f.rows:,} rows", style="#3fb950")


def cell(value: Any) -> str:
    """A sample value that fits a column."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return fmt.number(value, 5)
    if isinstance(value, dt.datetime):
        return value.strftime(SECOND_FORMAT)
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def short_source(text: str, home: str, width: int = 40) -> str:
    """A view's source on one line: paths under the home as ``$MLBOX_HOME/…``, the
    middle of a long one elided (its kind and file name are what people scan for)."""
    text = " ".join(text.replace(home.rstrip("/"), "$MLBOX_HOME").split())
    if len(text) <= width:
        return text
    kind, sep, rest = text.partition(": ")
    head = f"{kind}{sep}" if sep else ""
    keep = max(width - len(head) - 1, 8)
    return f"{head}…{(rest if sep else text)[-keep:]}"


def views_of(ts: TrainingSetInfo) -> str:
    return ", ".join(f"{v.name} v{v.version}" for v in ts.views)


def view_cells(v: ViewInfo) -> tuple[Text | str, ...]:
    """One row of the views table (`VIEW_COLUMNS`)."""
    return (
        fmt.inert(v.name, "bold"),
        Text(f"v{v.version}", justify="right"),
        Text(str(len(v.versions)), justify="right"),
        fmt.inert(", ".join(v.entities) or "-"),
        Text(str(len(v.features)), justify="right"),
        Text(ttl_text(v.ttl_s), justify="right"),
        freshness_cell(v),
    )


def entity_cells(e: EntityInfo) -> tuple[Text | str, ...]:
    """One row of the entities table (`ENTITY_COLUMNS`)."""
    return (fmt.inert(e.name, "bold"), fmt.inert(", ".join(e.join_keys)))


def training_set_cells(ts: TrainingSetInfo) -> tuple[Text | str, ...]:
    """One row of the training-sets table (`TRAINING_SET_COLUMNS`)."""
    return (
        Text(f"#{ts.id}", justify="right"),
        fmt.when(ts.created_at),
        fmt.inert(views_of(ts)),
        Text(f"{ts.row_count:,}", justify="right"),
        fmt.inert(ts.entity_hash[:12]),
        fmt.inert(ts.name or ""),
    )


def summary(
    entities: Sequence[EntityInfo], views: Sequence[ViewInfo], sets: Sequence[TrainingSetInfo]
) -> str:
    """The line above the tables: what the catalog holds, and the keys that act on a view."""
    if not views and not entities:
        return EMPTY
    n_views, n_sets = len(views), len(sets)
    return (
        f"{len(entities)} entit{'y' if len(entities) == 1 else 'ies'} · "
        f"{n_views} view{'' if n_views == 1 else 's'} · {n_sets} training set{'' if n_sets == 1 else 's'}"
        "  ·  m: materialize the selected view up to now  ·  d: delete it"
    )


def view_detail(view: ViewInfo, home: str) -> Text:
    """The versions pane: the view's kind and source, its versions (the latest marked),
    its features, request fields, keys and timestamps, and its newest online event."""
    text = Text()
    text.append(visible(view.name), style="bold")
    text.append(f"  {view.kind.replace('_', ' ')}\n", style="italic")
    if view.source:
        text.append(f"{visible(short_source(view.source, home))}\n", style="dim")
    for version in reversed(view.versions):
        mark = "●" if version.version == view.version else " "
        text.append(f"{mark} v{version.version:<3} {version.hash}  {fmt.when(version.created_at)}\n")
    features = ", ".join(f"{f.name}:{f.dtype}" for f in view.features)
    text.append(visible(f"features {features}") + "\n")
    if view.request:
        text.append(visible(f"request {', '.join(f'{f.name}:{f.dtype}' for f in view.request)}") + "\n")
    keys = ", ".join(view.join_keys)
    text.append(visible(f"keys {keys or '-'} · time {view.timestamp_field or '-'}"))
    if view.created_timestamp_field:
        text.append(visible(f" · created {view.created_timestamp_field}"))
    f = view.freshness
    if f is not None and f.newest_event_ts is not None:
        text.append(f"\nnewest online event {fmt.when(f.newest_event_ts)}")
    return text
