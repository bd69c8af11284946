"""Two or more runs side by side: params and latest metrics in one table, and the
curves of one chosen metric overlaid in one plot.

Params that differ between the runs are highlighted: with many params, they
are the ones that explain a difference in the metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Label, Select, Static

from mlbox.store.errors import MlboxError, NotFound
from mlbox.tracking.schemas import Comparison, Run
from mlbox.tracking.series import Chunk
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.widgets.curve_keys import CURVE_BINDINGS, CurveKeys
from mlbox.tui.widgets.metric_plot import MetricPlot

DIFFERS = "bold #e3b341"


class ComparisonLoaded(Message):
    def __init__(self, comparison: Comparison, runs: list[Run]) -> None:
        super().__init__()
        self.comparison = comparison
        self.runs = runs


class CurvesLoaded(Message):
    def __init__(self, key: str, series: dict[str, Chunk]) -> None:
        super().__init__()
        self.key = key
        self.series = series


def run_label(run: Run) -> str:
    return f"{run.name} #{run.id}"


def comparison_rows(comparison: Comparison) -> list[list[str | Text]]:
    """One row per param then per metric; a param whose values differ is highlighted."""
    rows: list[list[str | Text]] = []
    for key, values in comparison.params.items():
        differs = len(set(values)) > 1
        style = DIFFERS if differs else ""
        rows.append(
            [
                fmt.inert(f"params.{key}", style),
                *(fmt.inert(fmt.param(v) if v else "-", style) for v in values),
            ]
        )
    for key, numbers in comparison.metrics.items():
        rows.append(
            [
                fmt.inert(f"metrics.{key}"),
                *(Text("-" if v is None else fmt.number(v), justify="right") for v in numbers),
            ]
        )
    return rows


def shared_metric(comparison: Comparison) -> str:
    """The metric to overlay first: the one most of the runs logged (alphabetical on ties)."""
    return min(comparison.metrics, key=lambda k: (-sum(v is not None for v in comparison.metrics[k]), k))


class CompareScreen(MlboxScreen, CurveKeys):
    SECTION = "experiments"
    CSS_PATH = "compare.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        *CURVE_BINDINGS,
        Binding("m", "focus_metric", "Metric"),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.title = f"Compare {len(self.run_ids)} runs"
        self.runs: list[Run] = []
        self.metric: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("loading…", id="compare-title")
        yield DataTable[str | Text](id="compare-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="compare-controls"):
            yield Label("metric ")
            yield Select[str]([], id="compare-metric", prompt="metric to overlay", allow_blank=True)
        yield MetricPlot(id="compare-plot", empty="choose a metric")

    def on_mount(self) -> None:
        self.fetch_comparison()

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Back to runs", "Close the comparison", self.app.pop_screen)
        yield SystemCommand("Choose metric to overlay", "Pick the curve to compare", self.action_focus_metric)

    def action_focus_metric(self) -> None:
        self.query_one("#compare-metric", Select).focus()

    @work(thread=True, group="compare")
    def fetch_comparison(self) -> None:
        try:
            comparison = self.tracking.compare(self.run_ids)
            runs = [self.tracking.get_run(i) for i in comparison.run_ids]
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(ComparisonLoaded(comparison, runs))

    @work(thread=True, group="compare-curves")
    def fetch_curves(self, key: str) -> None:
        series: dict[str, Chunk] = {}
        for run in self.runs:
            try:
                series[run_label(run)] = self.tracking.metric_series(
                    run.id, key, max_points=self.ctx.max_points
                )
            except NotFound:  # this run never logged the metric: no curve for it
                continue
            except MlboxError as exc:
                self.fail(exc)
                return
        self.post_message(CurvesLoaded(key, series))

    def on_comparison_loaded(self, message: ComparisonLoaded) -> None:
        self.runs = message.runs
        comparison = message.comparison
        differ = sum(1 for v in comparison.params.values() if len(set(v)) > 1)
        self.query_one("#compare-title", Static).update(
            Text.assemble(
                (f"{len(self.runs)} runs", "bold"),
                f"  ·  {len(comparison.params)} params ({differ} differ, ",
                ("highlighted", DIFFERS),
                f")  ·  {len(comparison.metrics)} metrics",
            )
        )
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        table.add_column("", key="key")
        for run in self.runs:
            table.add_column(fmt.inert(run_label(run), "bold"), key=str(run.id))
        table.add_rows(comparison_rows(comparison))
        table.fixed_columns = 1
        keys = list(comparison.metrics)
        select = self.query_one("#compare-metric", Select)
        select.set_options([(fmt.inert(k), k) for k in keys])
        if keys:
            select.value = shared_metric(comparison)

    @on(Select.Changed, "#compare-metric")
    def metric_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.metric:
            self.metric = event.value
            self.fetch_curves(event.value)

    def on_curves_loaded(self, message: CurvesLoaded) -> None:
        if message.key == self.metric:
            self.query_one(MetricPlot).show_series(message.series, title=message.key)
