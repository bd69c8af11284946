"""The Features screen: entities, feature views with their versions and freshness, a sample
of a view's rows, and the training sets built from the views; materialize or delete a view
after a confirmation.

Every feature-store call runs in a thread worker that answers with a message;
a sequence number (`MlboxScreen.ask`) drops answers to a question since
asked again, so a slow sample read never overwrites the one for the view now
under the cursor. What the tables and panes show is computed in
`mlbox.tui.views.features`.
``m`` materializes the selected view incrementally (from where it last
stopped up to now) once the user confirms the exact window; the catalog is
re-read afterwards, so the freshness shown is what the online store holds.
``d`` deletes the selected view once the user confirms: the dialog says what
is kept (its versions, for the training sets' lineage) and what goes (its
online rows); a view still in use is refused by the store, and the error
dialog names what uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.features.schemas import DeleteResult, EntityInfo, MaterializeResult, TrainingSetInfo, ViewInfo
from mlbox.features.service import FeatureStore
from mlbox.store.errors import MlboxError
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import features as features_view
from mlbox.tui.views import format as fmt
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.table_rows import cursor_key, fill

SAMPLE_ROWS = 12
TRAINING_SETS = 50


# -- messages -------------------------------------------------------------------------------


class CatalogLoaded(Message):
    def __init__(
        self, seq: int, entities: list[EntityInfo], views: list[ViewInfo], sets: list[TrainingSetInfo]
    ) -> None:
        super().__init__()
        self.seq = seq
        self.entities = entities
        self.views = views
        self.sets = sets


class SampleLoaded(Message):
    def __init__(self, seq: int, view: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        super().__init__()
        self.seq = seq
        self.view = view
        self.columns = columns
        self.rows = rows


class DeletePlanned(Message):
    """The dry run of a deletion: what it would keep and remove (None: refused)."""

    def __init__(self, plan: DeleteResult | None) -> None:
        super().__init__()
        self.plan = plan


class Deleted(Message):
    def __init__(self, result: DeleteResult | None) -> None:
        super().__init__()
        self.result = result
        """None: refused (the error dialog says why)."""


class Materialized(Message):
    def __init__(self, results: list[MaterializeResult] | None) -> None:
        super().__init__()
        self.results = results
        """None: refused (the error dialog says why)."""


# -- the screen -----------------------------------------------------------------------------


class FeaturesScreen(MlboxScreen):
    SECTION = "features"
    TITLE = "Features"
    CSS_PATH = "features.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "materialize", "Materialize"),
        Binding("d", "delete", "Delete view"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        self.views: list[ViewInfo] = []
        self.sample_view: str | None = None

    @property
    def store(self) -> FeatureStore:
        return self.ctx.services.features

    def compose_body(self) -> ComposeResult:
        yield Static("loading features…", id="summary")
        yield DataTable(id="views", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="middle"):
            yield Static("", id="view-detail")
            yield DataTable(id="sample", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="bottom"):
            with Vertical(id="entities-box"):
                yield DataTable(id="entities", cursor_type="row")
            yield DataTable(id="training-sets", cursor_type="row", zebra_stripes=True)

    def table(self, name: str) -> DataTable[Any]:
        return self.query_one(f"#{name}", DataTable)

    def on_mount(self) -> None:
        views = self.table("views")
        for label in features_view.VIEW_COLUMNS:
            views.add_column(label, key=label)
        views.border_title = "feature views"
        entities = self.table("entities")
        for label in features_view.ENTITY_COLUMNS:
            entities.add_column(label, key=label)
        entities.border_title = "entities"
        sets = self.table("training-sets")
        for label in features_view.TRAINING_SET_COLUMNS:
            sets.add_column(label, key=label)
        sets.border_title = "training sets"
        self.table("sample").border_title = "sample"
        self.query_one("#view-detail", Static).border_title = "versions"
        views.focus()
        self.read_first()
        self.set_interval(self.ctx.refresh_s, self.poll)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Materialize view",
            "Copy the selected view's new rows into the online store",
            self.action_materialize,
        )
        yield SystemCommand(
            "Delete view",
            "Delete the selected view (its versions stay for lineage, its online values go)",
            self.action_delete,
        )
        yield SystemCommand("Refresh features", "Re-read the feature catalog now", self.reload)

    # -- fetching ---------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.reading = True
        self.fetch_catalog(self.ask("catalog"))

    @work(thread=True, group="features-catalog")
    def fetch_catalog(self, seq: int) -> None:
        store = self.store
        try:
            loaded = CatalogLoaded(
                seq, store.list_entities(), store.list_views(), store.training_sets(limit=TRAINING_SETS)
            )
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(loaded)

    def request_sample(self, info: ViewInfo) -> None:
        seq = self.ask("sample")
        if info.kind != "feature_view":
            self.post_message(SampleLoaded(seq, info.name, [], []))
            return
        self.fetch_sample(seq, info.name)

    @work(thread=True, group="features-sample")
    def fetch_sample(self, seq: int, view: str) -> None:
        try:
            frame = self.store.sample(view, SAMPLE_ROWS)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(SampleLoaded(seq, view, [], []))
            return
        self.post_message(SampleLoaded(seq, view, list(frame.columns), list(frame.iter_rows())))

    def on_catalog_loaded(self, message: CatalogLoaded) -> None:
        if self.stale("catalog", message.seq):
            return
        self.reading = False
        self.views = message.views
        fill(
            self.table("entities"),
            [(e.name, features_view.entity_cells(e)) for e in message.entities],
            keep=None,
        )
        sets = [(str(ts.id), features_view.training_set_cells(ts)) for ts in message.sets]
        fill(self.table("training-sets"), sets, keep=None)
        fill(
            self.table("views"),
            [(v.name, features_view.view_cells(v)) for v in message.views],
            keep=self.selected,
        )
        summary = features_view.summary(message.entities, message.views, message.sets)
        self.query_one("#summary", Static).update(summary)
        name = cursor_key(self.table("views"))
        changed = name != self.selected
        self.selected = name
        self._show_detail()
        current = self.current_view()
        if current is None:
            self._show_sample(None, [], [])
        elif changed or self.sample_view != current.name:
            self.request_sample(current)

    def on_sample_loaded(self, message: SampleLoaded) -> None:
        if self.stale("sample", message.seq):
            return
        self._show_sample(message.view, message.columns, message.rows)

    # -- showing ----------------------------------------------------------------------------

    def _show_detail(self) -> None:
        current = self.current_view()
        home = str(self.ctx.services.home.root)
        self.query_one("#view-detail", Static).update(
            "" if current is None else features_view.view_detail(current, home)
        )

    def _show_sample(self, view: str | None, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self.sample_view = view
        table = self.table("sample")
        table.clear(columns=True)
        for c in columns:  # names and values from the user's data: shown as text, never as markup
            table.add_column(fmt.inert(c), key=c)
        for i, row in enumerate(rows):
            table.add_row(*(fmt.inert(features_view.cell(v)) for v in row), key=str(i))
        table.border_title = fmt.inert(f"sample of {view}") if view and columns else "sample"

    @on(DataTable.RowHighlighted, "#views")
    def view_highlighted(self) -> None:
        name = cursor_key(self.table("views"))
        if name is not None and name != self.selected:
            self.selected = name
            self._show_detail()
            current = self.current_view()
            if current is not None:
                self.request_sample(current)

    def current_view(self) -> ViewInfo | None:
        return next((v for v in self.views if v.name == self.selected), None)

    # -- materialization --------------------------------------------------------------------

    def action_materialize(self) -> None:
        view = self.current_view()
        if view is None or view.kind != "feature_view":
            self.notify("Select a feature view first.", title="Materialize", severity="warning")
            return
        f = view.freshness
        since = "its TTL before now" if view.ttl_s else "its oldest row"
        start = since if f is None or f.materialized_end is None else fmt.when(f.materialized_end)

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.materialize(view.name)

        self.app.push_screen(
            ConfirmDialog(
                "Materialize",
                f"{view.name} v{view.version}: {start} → now",
                "copies the newest row per entity into the online store",
                confirm_label="Materialize",
            ),
            answered,
        )

    @work(thread=True, group="features-materialize")
    def materialize(self, view: str) -> None:
        try:
            results = self.store.materialize_incremental(views=[view])
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(Materialized(None))
            return
        self.post_message(Materialized(results))

    def on_materialized(self, message: Materialized) -> None:
        if message.results is not None:
            rows = sum(r.rows for r in message.results)
            names = ", ".join(f"{r.view} v{r.version}" for r in message.results)
            self.notify(f"{names}: {rows:,} rows", title="Materialized")
        self.reload()

    # -- deletion ---------------------------------------------------------------------------

    def action_delete(self) -> None:
        """Ask the store what deleting would do (it refuses a view in use), then confirm."""
        view = self.current_view()
        if view is None:
            self.notify("Select a view first.", title="Delete", severity="warning")
            return
        self.plan_delete(view.name)

    @work(thread=True, group="features-delete")
    def plan_delete(self, view: str) -> None:
        try:
            plan = self.store.delete_view(view, dry_run=True)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(DeletePlanned(None))
            return
        self.post_message(DeletePlanned(plan))

    def on_delete_planned(self, message: DeletePlanned) -> None:
        plan = message.plan
        if plan is None:
            return
        versions = plan.versions
        kept = f"v{versions[0]}" if len(versions) == 1 else f"v{versions[0]}–v{versions[-1]}"
        rows = f"{plan.online_rows:,} online row{'' if plan.online_rows == 1 else 's'}"

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.delete(plan.name)

        self.app.push_screen(
            ConfirmDialog(
                "Delete feature view",
                f"{plan.name}: removes {rows}; keeps {kept} for lineage",
                "re-applying its definition restores it",
                confirm_label="Delete",
            ),
            answered,
        )

    @work(thread=True, group="features-delete")
    def delete(self, view: str) -> None:
        try:
            result = self.store.delete_view(view)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(Deleted(None))
            return
        self.post_message(Deleted(result))

    def on_deleted(self, message: Deleted) -> None:
        if message.result is not None:
            r = message.result
            self.notify(f"{r.name}: {r.online_rows:,} online rows removed", title="Deleted")
        self.reload()
