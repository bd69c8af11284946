"""The Models screen: registered models, their versions and aliases, the metrics of the
runs they came from; promote, set, roll back or delete an alias after a confirmation.

Every registry and tracking call runs in a thread worker that answers with a
message; a sequence number drops answers to a question since asked again.
An alias moves only after the user confirms the exact change (``digits@champion:
2 → 3``) in a modal, and the tables are re-read after every move, so what is
shown is what the registry holds. Refused moves (a bad alias name, a version
gone) end in the app's one error dialog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.registry.refs import check_alias
from mlbox.registry.schemas import AliasMove, Model, ModelVersion
from mlbox.registry.service import RegistryService
from mlbox.store.errors import InvalidInput, MlboxError, NotFound
from mlbox.tracking.schemas import Run
from mlbox.tui import format as fmt
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.widgets.alias_dialogs import AliasChooser, AliasPrompt
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.version_detail import VersionDetail, signature_brief

CHAMPION = "champion"
KEY_METRICS = 4
"""Metric columns in the versions table; the run detail (Enter) has them all."""
MAX_CELL = 30
ALIAS_STYLES: dict[str, str] = {CHAMPION: "bold #3fb950", "challenger": "bold #d29922"}
OTHER_ALIAS_STYLE = "#4ea1ff"
EMPTY = "no registered models yet: log a model in a run, then  mlbox models register NAME --run RUN_ID"


# -- pure helpers ---------------------------------------------------------------------------


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
            f"{alias}→{version}" if with_version else alias, ALIAS_STYLES.get(alias, OTHER_ALIAS_STYLE)
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


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _right(text: str, style: str = "") -> Text:
    return Text(text, justify="right", style=style)


def _change(before: int | None, after: int | None) -> str:
    return f"{'–' if before is None else before} → {'–' if after is None else after}"


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    model: Model
    updated: float
    """The last change: the newest version's registration or the last alias move."""


class ModelsLoaded(Message):
    def __init__(self, seq: int, rows: list[ModelRow]) -> None:
        super().__init__()
        self.seq = seq
        self.rows = rows


class VersionsLoaded(Message):
    def __init__(
        self,
        seq: int,
        name: str,
        versions: list[ModelVersion],
        history: list[AliasMove],
        runs: dict[int, Run],
    ) -> None:
        super().__init__()
        self.seq = seq
        self.name = name
        self.versions = versions
        """Newest first."""
        self.history = history
        self.runs = runs
        """The runs the versions came from, by id (a deleted run is missing)."""


class AliasMoved(Message):
    """A move done, or refused (``moved`` False: the registry changed under the dialogs)."""

    def __init__(self, name: str, alias: str, version: int | None, *, moved: bool = True) -> None:
        super().__init__()
        self.name = name
        self.alias = alias
        self.version = version
        self.moved = moved


# -- the screen -----------------------------------------------------------------------------


class ModelsScreen(MlboxScreen):
    SECTION = "models"
    TITLE = "Models"
    CSS_PATH = "models.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "promote", "Promote"),
        Binding("a", "set_alias", "Alias"),
        Binding("r", "roll_back", "Roll back"),
        Binding("d", "delete_alias", "Delete alias"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models_seq = 0
        self.versions_seq = 0
        self.loading = False
        self.selected: str | None = None
        """The model whose versions are shown."""
        self.rows: list[ModelRow] = []
        self.versions: list[ModelVersion] = []
        self.history: list[AliasMove] = []
        self.runs: dict[int, Run] = {}
        self.metric_keys: list[str] = []

    @property
    def registry(self) -> RegistryService:
        return self.ctx.services.registry

    def compose_body(self) -> ComposeResult:
        yield Static("loading models…", id="summary")
        yield DataTable(id="models", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="versions", cursor_type="row", zebra_stripes=True)
        yield VersionDetail(id="detail")

    @property
    def models_table(self) -> DataTable[Any]:
        return self.query_one("#models", DataTable)

    @property
    def versions_table(self) -> DataTable[Any]:
        return self.query_one("#versions", DataTable)

    def on_mount(self) -> None:
        models = self.models_table
        for label in ("name", "latest", "aliases", "versions", "updated"):
            models.add_column(label, key=label)
        models.border_title = "models"
        self.versions_table.border_title = "versions"
        models.focus()
        self.reload()
        self.set_interval(self.ctx.refresh_s, self.refresh_models)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Promote to champion", "Point champion at the selected version", self.action_promote
        )
        yield SystemCommand("Set an alias", "Point any alias at the selected version", self.action_set_alias)
        yield SystemCommand(
            "Roll back champion", "Move champion back to its previous version", self.action_roll_back
        )
        yield SystemCommand("Delete an alias", "Remove one of the model's aliases", self.action_delete_alias)
        yield SystemCommand("Refresh models", "Re-read the registry now", self.reload)

    # -- fetching ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the models, then the selected model's versions and history."""
        self.models_seq += 1
        self.loading = True
        self.fetch_models(self.models_seq)

    def refresh_models(self) -> None:
        """The periodic re-read (aliases move from the CLI and the API too); skipped under a dialog."""
        if not self.loading and self.app.screen is self:
            self.reload()

    @work(thread=True, group="models")
    def fetch_models(self, seq: int) -> None:
        registry = self.registry
        try:
            rows = []
            for model in registry.list_models():
                updated = model.created_at
                if model.latest_version is not None:
                    updated = max(updated, registry.get_version(model.name, model.latest_version).created_at)
                history = registry.alias_history(model.name)
                if history:
                    updated = max(updated, history[-1].moved_at)
                rows.append(ModelRow(model, updated))
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(ModelsLoaded(seq, rows))

    def request_versions(self, name: str) -> None:
        self.versions_seq += 1
        self.loading = True
        self.fetch_versions(self.versions_seq, name)

    @work(thread=True, group="versions")
    def fetch_versions(self, seq: int, name: str) -> None:
        try:
            versions = self.registry.list_versions(name)[::-1]
            history = self.registry.alias_history(name)
            runs: dict[int, Run] = {}
            for run_id in sorted({v.run_id for v in versions if v.run_id is not None}):
                try:
                    runs[run_id] = self.tracking.get_run(run_id)
                except NotFound:  # the run was deleted; the version keeps its lineage
                    continue
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(VersionsLoaded(seq, name, versions, history, runs))

    def on_service_failed(self, message: ServiceFailed) -> None:
        """A refused read ends the loading (the app shows why), so the periodic re-read goes on."""
        self.loading = False

    def on_models_loaded(self, message: ModelsLoaded) -> None:
        if message.seq != self.models_seq:
            return
        self.rows = message.rows
        table = self.models_table
        rows = [
            (
                r.model.name,
                (
                    Text(r.model.name, style="bold"),
                    _right("-" if r.model.latest_version is None else str(r.model.latest_version)),
                    alias_cell(r.model.aliases, with_version=True),
                    _right(str(r.model.version_count)),
                    fmt.when(r.updated),
                ),
            )
            for r in message.rows
        ]
        _fill(table, rows, keep=self.selected)
        self._show_summary()
        self.selected = _cursor_key(table)
        if self.selected is None:
            self.loading = False
            self._show_versions([], [], {})
        else:
            self.request_versions(self.selected)

    def on_versions_loaded(self, message: VersionsLoaded) -> None:
        if message.seq != self.versions_seq or message.name != self.selected:
            return
        self.loading = False
        self._show_versions(message.versions, message.history, message.runs)

    # -- showing ----------------------------------------------------------------------------

    def _show_summary(self) -> None:
        summary = self.query_one("#summary", Static)
        if not self.rows:
            summary.update(EMPTY)
            return
        versions = sum(r.model.version_count for r in self.rows)
        models = f"{len(self.rows)} model{'' if len(self.rows) == 1 else 's'}"
        summary.update(
            f"{models} · {versions} versions  ·  Enter: into the model's versions, then into a version's run"
        )

    def _show_versions(
        self, versions: list[ModelVersion], history: list[AliasMove], runs: dict[int, Run]
    ) -> None:
        self.versions, self.history, self.runs = versions, history, runs
        keys = key_metrics(runs.values())
        table = self.versions_table
        keep = _cursor_key(table)
        if keys != self.metric_keys or not table.columns:
            self.metric_keys = keys
            table.clear(columns=True)
            for label in ("version", "flavor", "created", "aliases", "run"):
                table.add_column(label, key=label)
            for key in keys:
                table.add_column(Text(key, justify="right"), key=f"metric:{key}")
            table.add_column("signature", key="signature")
        rows = [(str(mv.version), self._version_cells(mv)) for mv in versions]
        _fill(table, rows, keep=keep)
        table.border_title = f"versions of {self.selected}" if self.selected else "versions"
        self._show_detail()

    def _version_cells(self, mv: ModelVersion) -> tuple[Text | str, ...]:
        run = self.runs.get(mv.run_id) if mv.run_id is not None else None
        metrics = [
            _right("-" if run is None or key not in run.metrics else fmt.number(run.metrics[key], 4))
            for key in self.metric_keys
        ]
        return (
            _right(str(mv.version), "bold"),
            mv.flavor,
            fmt.when(mv.created_at),
            alias_cell(dict.fromkeys(mv.aliases, mv.version), with_version=False),
            _right("-" if mv.run_id is None else f"#{mv.run_id}"),
            *metrics,
            _clip(signature_brief(mv.signature)),
        )

    def _show_detail(self) -> None:
        self.query_one(VersionDetail).show(self.current_version(), self.history)

    @on(DataTable.RowHighlighted, "#models")
    def model_highlighted(self) -> None:
        # The cursor, not the event: a refill moves the cursor more than once.
        name = _cursor_key(self.models_table)
        if name is not None and name != self.selected:
            self.selected = name
            self._show_versions([], [], {})
            self.request_versions(name)

    @on(DataTable.RowHighlighted, "#versions")
    def version_highlighted(self) -> None:
        self._show_detail()

    @on(DataTable.RowSelected, "#models")
    def model_selected(self) -> None:
        self.versions_table.focus()

    @on(DataTable.RowSelected, "#versions")
    def version_selected(self) -> None:
        mv = self.current_version()
        if mv is None:
            return
        if mv.run_id is None:
            self.notify(f"version {mv.version} was not registered from a run", title="No run")
            return
        self.app.push_screen(RunDetailScreen(mv.run_id))

    # -- selection --------------------------------------------------------------------------

    def current_version(self) -> ModelVersion | None:
        key = _cursor_key(self.versions_table)
        return next((mv for mv in self.versions if str(mv.version) == key), None)

    def aliases(self) -> dict[str, int]:
        """The selected model's aliases, as the versions last read show them."""
        return {alias: mv.version for mv in self.versions for alias in mv.aliases}

    def _version_or_warn(self) -> ModelVersion | None:
        mv = self.current_version()
        if mv is None or mv.name != self.selected:
            self.notify("Select a model version first.", title="Models", severity="warning")
            return None
        return mv

    # -- alias moves ------------------------------------------------------------------------

    def confirm(self, title: str, change: str, detail: str, then: Callable[[], object]) -> None:
        def answered(confirmed: bool | None) -> None:
            if confirmed:
                then()

        self.app.push_screen(ConfirmDialog(title, change, detail), answered)

    def ask_move(self, mv: ModelVersion, alias: str, title: str, note: str) -> None:
        old = self.aliases().get(alias)
        if old == mv.version:
            self.notify(f"{mv.name}@{alias} is already version {mv.version}", title=title)
            return
        run = "" if mv.run_id is None else f" · run #{mv.run_id}"
        self.confirm(
            title,
            f"{mv.name}@{alias}: {_change(old, mv.version)}",
            f"version {mv.version} · {mv.flavor}{run}",
            lambda: self.move_alias(mv.name, alias, mv.version, note),
        )

    def action_promote(self) -> None:
        mv = self._version_or_warn()
        if mv is not None:
            self.ask_move(mv, CHAMPION, "Promote to champion", "promoted in the TUI")

    def action_set_alias(self) -> None:
        mv = self._version_or_warn()
        if mv is None:
            return

        def named(alias: str | None) -> None:
            if alias is None:
                return
            try:
                check_alias(alias)
            except InvalidInput as exc:
                self.fail(exc)
                return
            self.ask_move(mv, alias, f"Set alias {alias}", "set in the TUI")

        self.app.push_screen(AliasPrompt(mv.name, mv.version, dict(ordered_aliases(self.aliases()))), named)

    def action_roll_back(self) -> None:
        name = self.selected
        if name is None or not self.versions:
            self.notify("Select a model first.", title="Roll back", severity="warning")
            return
        stack = alias_stack(self.history)
        current = self.aliases().get(CHAMPION)
        if current is None:
            self.notify(f"{name} has no champion to roll back.", title="Roll back", severity="warning")
            return
        if len(stack) < 2 or stack[-1] != current:
            self.notify(
                f"{name}@champion has no earlier version in its history.",
                title="Roll back",
                severity="warning",
            )
            return
        target = stack[-2]
        self.confirm(
            "Roll back champion",
            f"{name}@champion: {_change(current, target)}",
            f"back to the version champion pointed at before {current}",
            lambda: self.move_alias(name, CHAMPION, target, "rolled back in the TUI"),
        )

    def action_delete_alias(self) -> None:
        name = self.selected
        aliases = dict(ordered_aliases(self.aliases()))
        if name is None or not aliases:
            self.notify("This model has no aliases to delete.", title="Delete alias", severity="warning")
            return
        mv = self.current_version()
        preferred = mv.aliases[0] if mv is not None and mv.aliases else None

        def chosen(alias: str | None) -> None:
            if alias is None:
                return
            self.confirm(
                "Delete alias",
                f"{name}@{alias}: {_change(aliases[alias], None)}",
                f"requests for {name}@{alias} fail until the alias is set again",
                lambda: self.move_alias(name, alias, None, "deleted in the TUI"),
            )

        self.app.push_screen(AliasChooser(name, aliases, preferred), chosen)

    @work(thread=True, group="alias")
    def move_alias(self, name: str, alias: str, version: int | None, note: str) -> None:
        """Point ``alias`` at ``version``, or delete it when ``version`` is None."""
        try:
            if version is None:
                self.registry.delete_alias(name, alias, note=note)
            else:
                self.registry.set_alias(name, alias, version, note=note)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(AliasMoved(name, alias, version, moved=False))
            return
        self.post_message(AliasMoved(name, alias, version))

    def on_alias_moved(self, message: AliasMoved) -> None:
        """Re-read after every move, and after a refused one: what was shown is out of date."""
        if message.moved:
            where = "deleted" if message.version is None else f"→ {message.version}"
            self.notify(f"{message.name}@{message.alias} {where}", title="Alias moved")
        self.reload()


# -- tables -----------------------------------------------------------------------------------


def _cursor_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    row = min(max(table.cursor_row, 0), table.row_count - 1)
    return table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value


def _fill(table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]], *, keep: str | None) -> None:
    """Replace the rows unless they are the same, then put the cursor on ``keep`` (or where it was)."""
    current = [(str(k.value), list(table.get_row(k))) for k in table.rows]
    if current == [(key, list(cells)) for key, cells in rows]:
        return
    row = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    keys = [key for key, _ in rows]
    if keep in keys:
        table.move_cursor(row=keys.index(keep), animate=False)
    elif rows:
        table.move_cursor(row=min(max(row, 0), len(rows) - 1), animate=False)
