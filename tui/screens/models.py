"""The Models screen: registered models, their versions and aliases, the metrics of the
runs they came from; promote, set, roll back or delete an alias after a confirmation;
delete a version no alias points to, or a model with no alias left (``x``);
export the selected version as an MLflow model directory (``e``) or import one (``i``).

Every registry and tracking call runs in a thread worker that answers with a
message; a sequence number (`MlboxScreen.ask`) drops answers to a question
since asked again. The models table comes from one registry query
(`RegistryService.overview`), whatever the number of models; what the
tables show is computed in `mlbox.tui.views.models`.
An alias moves only after the user confirms the exact change (``digits@champion:
2 → 3``) in a modal, and the tables are re-read after every move, so what is
shown is what the registry holds. Refused moves (a bad alias name, a version
gone) end in the app's one error dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.registry.refs import check_alias
from mlbox.registry.schemas import AliasMove, ModelVersion
from mlbox.registry.service import ModelOverview, RegistryService
from mlbox.store.errors import InvalidInput, MlboxError, NotFound
from mlbox.tracking.schemas import Run
from mlbox.tui.deleting import Deleted, confirm_then
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views import models as view
from mlbox.tui.widgets.alias_dialogs import AliasChooser, AliasPrompt
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.model_transfer import ImportAnswer, ImportPrompt, export_prompt
from mlbox.tui.widgets.table_rows import cursor_key, fill
from mlbox.tui.widgets.version_detail import VersionDetail

# -- messages -------------------------------------------------------------------------------


class ModelsLoaded(Message):
    def __init__(self, seq: int, rows: list[ModelOverview]) -> None:
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
        Binding("x,delete", "delete_selected", "Delete", show=False),
        Binding("e", "export_version", "Export", show=False),
        Binding("i", "import_model", "Import", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        """The model whose versions are shown."""
        self.rows: list[ModelOverview] = []
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
        for label in view.MODEL_COLUMNS:
            models.add_column(label, key=label)
        models.border_title = "models"
        self.versions_table.border_title = "versions"
        models.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Promote to champion", "Point champion at the selected version", self.action_promote
        )
        yield SystemCommand("Set an alias", "Point any alias at the selected version", self.action_set_alias)
        yield SystemCommand(
            "Roll back champion", "Move champion back to its previous version", self.action_roll_back
        )
        yield SystemCommand("Delete an alias", "Remove one of the model's aliases", self.action_delete_alias)
        yield SystemCommand(
            "Delete version or model",
            "The highlighted version (versions table) or model (models table), no alias left (x)",
            self.action_delete_selected,
        )
        yield SystemCommand(
            "Export as MLflow model",
            "Write the selected version as an MLflow model directory (e)",
            self.action_export_version,
        )
        yield SystemCommand(
            "Import MLflow model",
            "Register an MLflow model directory as a new version (i)",
            self.action_import_model,
        )
        yield SystemCommand("Refresh models", "Re-read the registry now", self.reload)

    # -- fetching ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the models, then the selected model's versions and history (also every
        ``refresh_s``: aliases move from the CLI and the API too)."""
        self.reading = True
        self.fetch_models(self.ask("models"))

    @work(thread=True, group="models")
    def fetch_models(self, seq: int) -> None:
        try:
            rows = self.registry.overview()
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(ModelsLoaded(seq, rows))

    def request_versions(self, name: str) -> None:
        self.reading = True
        self.fetch_versions(self.ask("versions"), name)

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

    def on_models_loaded(self, message: ModelsLoaded) -> None:
        if self.stale("models", message.seq):
            return
        self.rows = message.rows
        table = self.models_table
        fill(table, [(r.model.name, view.model_cells(r)) for r in message.rows], keep=self.selected)
        self.query_one("#summary", Static).update(view.summary(self.rows))
        self.selected = cursor_key(table)
        if self.selected is None:
            self.reading = False
            self._show_versions([], [], {})
        else:
            self.request_versions(self.selected)

    def on_versions_loaded(self, message: VersionsLoaded) -> None:
        if self.stale("versions", message.seq) or message.name != self.selected:
            return
        self.reading = False
        self._show_versions(message.versions, message.history, message.runs)

    # -- showing ----------------------------------------------------------------------------

    def _show_versions(
        self, versions: list[ModelVersion], history: list[AliasMove], runs: dict[int, Run]
    ) -> None:
        self.versions, self.history, self.runs = versions, history, runs
        keys = view.key_metrics(runs.values())
        table = self.versions_table
        keep = cursor_key(table)
        if keys != self.metric_keys or not table.columns:
            self.metric_keys = keys
            table.clear(columns=True)
            for label in view.VERSION_COLUMNS:
                table.add_column(label, key=label)
            for key in keys:
                table.add_column(fmt.inert(key, justify="right"), key=f"metric:{key}")
            table.add_column("signature", key="signature")
        rows = [(str(mv.version), self._version_cells(mv)) for mv in versions]
        fill(table, rows, keep=keep)
        table.border_title = fmt.inert(f"versions of {self.selected}") if self.selected else "versions"
        self._show_detail()

    def _version_cells(self, mv: ModelVersion) -> tuple[Text | str, ...]:
        run = self.runs.get(mv.run_id) if mv.run_id is not None else None
        return view.version_cells(mv, run, self.metric_keys)

    def _show_detail(self) -> None:
        self.query_one(VersionDetail).show(self.current_version(), self.history)

    @on(DataTable.RowHighlighted, "#models")
    def model_highlighted(self) -> None:
        # The cursor, not the event: a refill moves the cursor more than once.
        name = cursor_key(self.models_table)
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
        RunDetailScreen.open(self.app, mv.run_id)

    # -- selection --------------------------------------------------------------------------

    def current_version(self) -> ModelVersion | None:
        key = cursor_key(self.versions_table)
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
            f"{mv.name}@{alias}: {view.change(old, mv.version)}",
            f"version {mv.version} · {mv.flavor}{run}",
            lambda: self.move_alias(mv.name, alias, mv.version, note),
        )

    def action_promote(self) -> None:
        mv = self._version_or_warn()
        if mv is not None:
            self.ask_move(mv, view.CHAMPION, "Promote to champion", "promoted in the TUI")

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

        self.app.push_screen(
            AliasPrompt(mv.name, mv.version, dict(view.ordered_aliases(self.aliases()))), named
        )

    def action_roll_back(self) -> None:
        name = self.selected
        if name is None or not self.versions:
            self.notify("Select a model first.", title="Roll back", severity="warning")
            return
        stack = view.alias_stack(self.history)
        current = self.aliases().get(view.CHAMPION)
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
            f"{name}@champion: {view.change(current, target)}",
            f"back to the version champion pointed at before {current}",
            lambda: self.move_alias(name, view.CHAMPION, target, "rolled back in the TUI"),
        )

    def action_delete_alias(self) -> None:
        name = self.selected
        aliases = dict(view.ordered_aliases(self.aliases()))
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
                f"{name}@{alias}: {view.change(aliases[alias], None)}",
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

    # -- export and import -------------------------------------------------------------------

    def action_export_version(self) -> None:
        mv = self._version_or_warn()
        if mv is None:
            return

        def chosen(folder: str | None) -> None:
            if folder is not None:
                self.export_version(mv, Path(folder).expanduser())

        default = Path.cwd() / f"{mv.name}-v{mv.version}-mlflow"
        self.app.push_screen(export_prompt(mv.name, mv.version, default), chosen)

    @work(thread=True, group="transfer")
    def export_version(self, mv: ModelVersion, folder: Path) -> None:
        from mlbox.registry import mlflow_format  # numpy, yaml and the flavors: only when asked

        try:
            _, notes = mlflow_format.export(self.registry, f"{mv.name}/{mv.version}", folder)
        except MlboxError as exc:
            self.fail(exc)
            return
        lines = [f"{mv.name} version {mv.version} ({mv.flavor}) → {folder}", *notes]
        self.app.call_from_thread(self.notify, "\n".join(lines), title="Exported", timeout=10)

    def action_import_model(self) -> None:
        def chosen(answer: ImportAnswer | None) -> None:
            if answer is not None:
                self.import_model(answer)

        self.app.push_screen(ImportPrompt(self.selected or ""), chosen)

    @work(thread=True, group="transfer")
    def import_model(self, answer: ImportAnswer) -> None:
        from mlbox.registry import mlflow_format

        try:
            mv = mlflow_format.import_dir(self.registry, answer.folder, answer.name, trust=answer.trust)
        except MlboxError as exc:
            self.fail(exc)
            return
        self.app.call_from_thread(
            self.notify,
            f"{mv.name} version {mv.version} ({mv.flavor}) from {answer.folder}",
            title="Imported",
        )
        self.app.call_from_thread(self.reload)

    # -- deleting ---------------------------------------------------------------------------

    def action_delete_selected(self) -> None:
        """Delete the highlighted version (the versions table has the focus) or model, after a
        confirmation; the registry refuses one an alias, a composition or a pin still needs."""
        registry, name = self.registry, self.selected
        if self.focused is self.versions_table:
            mv = self._version_or_warn()
            if mv is None:
                return
            if mv.aliases:
                aliases = ", ".join(f"{mv.name}@{a}" for a in mv.aliases)
                self.notify(
                    f"{aliases} points to it: move the alias first.", title="Delete", severity="warning"
                )
                return
            confirm_then(
                self,
                "Delete version",
                f"{mv.name} version {mv.version}",
                "for good; its files are freed by mlbox gc",
                lambda: f"deleted {registry.delete_version(mv.name, mv.version).name} version {mv.version}",
            )
            return
        if name is None:
            self.notify("Select a model first.", title="Delete", severity="warning")
            return
        if self.aliases():
            self.notify(
                f"{name} still has aliases: delete them first (d).", title="Delete", severity="warning"
            )
            return
        confirm_then(
            self,
            "Delete model",
            f"{name} and its {len(self.versions)} versions",
            "for good; its files are freed by mlbox gc",
            lambda: f"deleted model {registry.delete_model(name).name}",
        )

    def on_deleted(self, message: Deleted) -> None:
        self.notify(message.text, title="Models")
        self.reload()
