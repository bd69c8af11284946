"""The Features screen: entities, feature views with their versions and freshness, a sample
of a view's rows, and the training sets built from the views; materialize or delete a view
after a confirmation.

Every feature-store call runs in a thread worker that answers with a message;
a sequence number drops answers to a question since asked again, so a slow
sample read never overwrites the one for the view now under the cursor.
``m`` materializes the selected view incrementally (from where it last
stopped up to now) once the user confirms the exact window; the catalog is
re-read afterwards, so the freshness shown is what the online store holds.
``d`` deletes the selected view once the user confirms: the dialog says what
is kept (its versions, for the training sets' lineage) and what goes (its
online rows); a view still in use is refused by the store, and the error
dialog names what uses it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Static

from mlbox.features.schemas import DeleteResult, EntityInfo, MaterializeResult, TrainingSetInfo, ViewInfo
from mlbox.features.service import FeatureStore
from mlbox.store.errors import MlboxError
from mlbox.tui import format as fmt
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog

SAMPLE_ROWS = 12
TRAINING_SETS = 50
MAX_CELL = 28
EMPTY = "no feature views yet: describe them in a YAML file, then  mlbox features apply DEFS.yaml"


# -- pure helpers ---------------------------------------------------------------------------


def ttl_text(seconds: float | None) -> str:
    """``7d``, ``12h``, ``90s``; ``-`` for no TTL."""
    if seconds is None:
        return "-"
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


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
        return value.strftime("%Y-%m-%d %H:%M:%S")
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
        self.catalog_seq = 0
        self.sample_seq = 0
        self.loading = False
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
        for label in ("view", "version", "versions", "entities", "features", "ttl", "freshness"):
            views.add_column(label, key=label)
        views.border_title = "feature views"
        entities = self.table("entities")
        for label in ("entity", "join keys"):
            entities.add_column(label, key=label)
        entities.border_title = "entities"
        sets = self.table("training-sets")
        for label in ("id", "built", "views", "rows", "entity hash", "name"):
            sets.add_column(label, key=label)
        sets.border_title = "training sets"
        self.table("sample").border_title = "sample"
        self.query_one("#view-detail", Static).border_title = "versions"
        views.focus()
        self.reload()
        self.set_interval(self.ctx.refresh_s, self.refresh_catalog)

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
        self.catalog_seq += 1
        self.loading = True
        self.fetch_catalog(self.catalog_seq)

    def refresh_catalog(self) -> None:
        if not self.loading and self.app.screen is self:
            self.reload()

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

    def request_sample(self, view: ViewInfo) -> None:
        self.sample_seq += 1
        if view.kind != "feature_view":
            self.post_message(SampleLoaded(self.sample_seq, view.name, [], []))
            return
        self.fetch_sample(self.sample_seq, view.name)

    @work(thread=True, group="features-sample")
    def fetch_sample(self, seq: int, view: str) -> None:
        try:
            frame = self.store.sample(view, SAMPLE_ROWS)
        except MlboxError as exc:
            self.fail(exc)
            self.post_message(SampleLoaded(seq, view, [], []))
            return
        self.post_message(SampleLoaded(seq, view, list(frame.columns), list(frame.iter_rows())))

    def on_service_failed(self, message: ServiceFailed) -> None:
        self.loading = False

    def on_catalog_loaded(self, message: CatalogLoaded) -> None:
        if message.seq != self.catalog_seq:
            return
        self.loading = False
        self.views = message.views
        _fill(
            self.table("entities"),
            [(e.name, (Text(e.name, style="bold"), ", ".join(e.join_keys))) for e in message.entities],
        )
        _fill(
            self.table("training-sets"),
            [
                (
                    str(ts.id),
                    (
                        Text(f"#{ts.id}", justify="right"),
                        fmt.when(ts.created_at),
                        views_of(ts),
                        Text(f"{ts.row_count:,}", justify="right"),
                        ts.entity_hash[:12],
                        ts.name or "",
                    ),
                )
                for ts in message.sets
            ],
        )
        _fill(self.table("views"), [(v.name, self._view_cells(v)) for v in message.views], keep=self.selected)
        self._show_summary(message)
        name = _cursor_key(self.table("views"))
        changed = name != self.selected
        self.selected = name
        self._show_detail()
        view = self.current_view()
        if view is None:
            self._show_sample(None, [], [])
        elif changed or self.sample_view != view.name:
            self.request_sample(view)

    def _view_cells(self, v: ViewInfo) -> tuple[Text | str, ...]:
        return (
            Text(v.name, style="bold"),
            Text(f"v{v.version}", justify="right"),
            Text(str(len(v.versions)), justify="right"),
            ", ".join(v.entities) or "-",
            Text(str(len(v.features)), justify="right"),
            Text(ttl_text(v.ttl_s), justify="right"),
            freshness_cell(v),
        )

    def on_sample_loaded(self, message: SampleLoaded) -> None:
        if message.seq != self.sample_seq:
            return
        self._show_sample(message.view, message.columns, message.rows)

    # -- showing ----------------------------------------------------------------------------

    def _show_summary(self, message: CatalogLoaded) -> None:
        summary = self.query_one("#summary", Static)
        if not message.views and not message.entities:
            summary.update(EMPTY)
            return
        n_views, n_sets = len(message.views), len(message.sets)
        summary.update(
            f"{len(message.entities)} entit{'y' if len(message.entities) == 1 else 'ies'} · "
            f"{n_views} view{'' if n_views == 1 else 's'} · {n_sets} training set{'' if n_sets == 1 else 's'}"
            "  ·  m: materialize the selected view up to now  ·  d: delete it"
        )

    def _show_detail(self) -> None:
        detail = self.query_one("#view-detail", Static)
        view = self.current_view()
        if view is None:
            detail.update("")
            return
        text = Text()
        text.append(f"{view.name}", style="bold")
        text.append(f"  {view.kind.replace('_', ' ')}\n", style="italic")
        if view.source:
            text.append(f"{short_source(view.source, str(self.ctx.services.home.root))}\n", style="dim")
        for version in reversed(view.versions):
            mark = "●" if version.version == view.version else " "
            text.append(f"{mark} v{version.version:<3} {version.hash}  {fmt.when(version.created_at)}\n")
        features = ", ".join(f"{f.name}:{f.dtype}" for f in view.features)
        text.append(f"features {features}\n")
        if view.request:
            text.append(f"request {', '.join(f'{f.name}:{f.dtype}' for f in view.request)}\n")
        keys = ", ".join(view.join_keys)
        text.append(f"keys {keys or '-'} · time {view.timestamp_field or '-'}")
        if view.created_timestamp_field:
            text.append(f" · created {view.created_timestamp_field}")
        f = view.freshness
        if f is not None and f.newest_event_ts is not None:
            text.append(f"\nnewest online event {fmt.when(f.newest_event_ts)}")
        detail.update(text)

    def _show_sample(self, view: str | None, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self.sample_view = view
        table = self.table("sample")
        table.clear(columns=True)
        for c in columns:
            table.add_column(c, key=c)
        for i, row in enumerate(rows):
            table.add_row(*(cell(v) for v in row), key=str(i))
        table.border_title = f"sample of {view}" if view and columns else "sample"

    @on(DataTable.RowHighlighted, "#views")
    def view_highlighted(self) -> None:
        name = _cursor_key(self.table("views"))
        if name is not None and name != self.selected:
            self.selected = name
            self._show_detail()
            view = self.current_view()
            if view is not None:
                self.request_sample(view)

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


# -- tables -----------------------------------------------------------------------------------


def _cursor_key(table: DataTable[Any]) -> str | None:
    if not table.row_count:
        return None
    row = min(max(table.cursor_row, 0), table.row_count - 1)
    return table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value


def _fill(
    table: DataTable[Any], rows: Sequence[tuple[str, Sequence[Any]]], *, keep: str | None = None
) -> None:
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
