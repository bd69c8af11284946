"""What the Models screen shows, computed from registry values: the models table, a
version's row, the order aliases read in, and the versions an alias went through.

Pure functions over `mlbox.registry` and `mlbox.tracking` values (no Textual
widgets, no service calls), so they are tested on their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from rich.text import Text

from mlbox.registry.schemas import AliasMove, ModelVersion
from mlbox.registry.service import ModelOverview
from mlbox.textsafe import visible
from mlbox.tracking.schemas import Run
from mlbox.tui.views import format as fmt

CHAMPION = "champion"
KEY_METRICS = 4
"""Metric columns in the versions table; the run detail (Enter) has them all."""
MAX_CELL = 30
ALIAS_STYLES: dict[str, str] = {CHAMPION: "bold #3fb950", "challenger": "bold #d29922"}
OTHER_ALIAS_STYLE = "#4ea1ff"
EMPTY = "no registered models yet: log a model in a run, then  mlbox models register NAME --run RUN_ID"
MODEL_COLUMNS = ("name", "latest", "aliases", "versions", "updated")
VERSION_COLUMNS = ("version", "flavor", "created", "aliases", "run")
"""Then one column per key metric, then ``signature``."""


def ordered_aliases(aliases: Mapping[str, int]) -> list[tuple[str, int]]:
    """Champion first, then challenger, then the rest by name: the order people read them in."""
    rank = {CHAMPION: 0, "challenger": 1}
    return sorted(aliases.items(), key=lambda item: (rank.get(item[0], 2), item[0]))


def alias_cell(aliases: Mapping[str, int], *, with_version: bool) -> Text:
    """``champion→3 challenger→4`` (a model's aliases) or ``champion challenger`` (a version's)."""
    text = Text()
    for alias, version in ordered_aliases(aliases):
        if text:
            text.append(" ")
        text.append(
            visible(f"{alias}→{version}" if with_version else alias),
            ALIAS_STYLES.get(alias, OTHER_ALIAS_STYLE),
        )
    return text


def alias_stack(history: Sequence[AliasMove], alias: str = CHAMPION) -> list[int]:
    """The versions ``alias`` went through, oldest first, with rollbacks undone.

    A move back to the version just below the top (3 → 2 after 2 → 3) is a
    rollback and pops the top, so rolling back again goes on to the version
    before that instead of toggling between two. A deletion starts afresh.
    The last entry is where the alias points now; the one before is where a
    rollback takes it.
    """
    stack: list[int] = []
    for move in history:
        if move.alias != alias:
            continue
        if move.to_version is None:
            stack = []
        elif len(stack) >= 2 and stack[-2] == move.to_version and stack[-1] == move.from_version:
            stack.pop()
        elif not stack or stack[-1] != move.to_version:
            stack.append(move.to_version)
    return stack


def key_metrics(runs: Iterable[Run], limit: int = KEY_METRICS) -> list[str]:
    """The metric keys most of the runs logged (ties by name), at most ``limit``."""
    counts = Counter(key for run in runs for key in run.metrics)
    return [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


def change(before: int | None, after: int | None) -> str:
    """An alias move as the confirmation shows it: ``2 → 3``, ``– → 1``, ``3 → –``."""
    return f"{'–' if before is None else before} → {'–' if after is None else after}"


def clip(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def right(text: str, style: str = "") -> Text:
    return Text(text, justify="right", style=style)


def model_cells(row: ModelOverview) -> tuple[Text | str, ...]:
    """One row of the models table (`MODEL_COLUMNS`)."""
    m = row.model
    return (
        fmt.inert(m.name, "bold"),
        right("-" if m.latest_version is None else str(m.latest_version)),
        alias_cell(m.aliases, with_version=True),
        right(str(m.version_count)),
        fmt.when(row.updated),
    )


def version_cells(mv: ModelVersion, run: Run | None, metric_keys: Sequence[str]) -> tuple[Text | str, ...]:
    """One row of the versions table: `VERSION_COLUMNS`, the run's ``metric_keys``, the signature."""
    metrics = [
        right("-" if run is None or key not in run.metrics else fmt.number(run.metrics[key], 4))
        for key in metric_keys
    ]
    return (
        right(str(mv.version), "bold"),
        fmt.inert(mv.flavor),
        fmt.when(mv.created_at),
        alias_cell(dict.fromkeys(mv.aliases, mv.version), with_version=False),
        right("-" if mv.run_id is None else f"#{mv.run_id}"),
        *metrics,
        fmt.inert(clip("-" if mv.signature is None else mv.signature.brief())),  # names user columns
    )


def summary(rows: Sequence[ModelOverview]) -> str:
    """The line above the tables: how many models and versions, and where Enter leads."""
    if not rows:
        return EMPTY
    versions = sum(r.model.version_count for r in rows)
    models = f"{len(rows)} model{'' if len(rows) == 1 else 's'}"
    return f"{models} · {versions} versions  ·  Enter: into the model's versions, then into a version's run"
