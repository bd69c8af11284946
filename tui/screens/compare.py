"""Two or more runs side by side: params and latest metrics in one table, and the
curves of one chosen metric overlaid in one plot — or (``g``) one chart per metric,
each overlaying the runs on its own y scale, a run in the same colour on every chart.

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
from mlbox.tui.widgets.metric_grid import MetricGrid, colors_for
from mlbox.tui.widgets.metric_plot import MetricPlot

DIFFERS = "bold #e3b341"
MAX_CHARTS = 12
"""One chart each shows this many metrics at most (the most shared first): each costs a read per run."""


class ComparisonLoaded(Message):
    def __init__(self, comparison: Comparison, runs: list[Run]) -> None:
        super().__init__()
        self.comparison = comparison
        self.runs = runs


class CurvesLoaded(Message):
    def __init__(self, keys: list[str], series: dict[str, dict[str, Chunk]]) -> None:
        super().__init__()
        self.keys = keys
        self.series = series
        """Per metric key, each run's curve by its label."""


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


def shared_metrics(comparison: Comparison) -> list[str]:
    """The metrics, those most of the runs logged first (alphabetical on ties)."""
    return sorted(comparison.metrics, key=lambda k: (-sum(v is not None for v in comparison.metrics[k]), k))


def shared_metric(comparison: Comparison) -> str:
    """The metric to overlay first: the one most of the runs logged (alphabetical on ties)."""
    return shared_metrics(comparison)[0]


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
        self.comparison: Comparison | None = None
        self.curves: dict[str, dict[str, Chunk]] = {}
        """Per metric key, each run's curve by its label: what the charts show."""

    def compose_body(self) -> ComposeResult:
        yield Static("loading…", id="compare-title")
        yield DataTable[str | Text](id="compare-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="compare-controls"):
            yield Label("metric ")
            yield Select[str]([], id="compare-metric", prompt="metric to overlay", allow_blank=True)
        yield MetricPlot(id="compare-plot", empty="choose a metric")
        yield MetricGrid(id="compare-grid", empty="no metrics logged")

    def on_mount(self) -> None:
        self.query_one(MetricGrid).display = False
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

    def wanted_keys(self) -> list[str]:
        """The metrics whose curves the layout shows: the chosen one, or the first `MAX_CHARTS`."""
        if self.charts_each and self.comparison is not None:
            return shared_metrics(self.comparison)[:MAX_CHARTS]
        return [self.metric] if self.metric is not None else []

    @work(thread=True, group="compare-curves")
    def fetch_curves(self, wanted: list[str], missing: list[str]) -> None:
        """Each run's curve of each of the ``missing`` metrics, for the layout showing ``wanted``."""
        series: dict[str, dict[str, Chunk]] = {}
        for key in missing:
            series[key] = {}
            for run in self.runs:
                try:
                    series[key][run_label(run)] = self.tracking.metric_series(
                        run.id, key, max_points=self.ctx.max_points
                    )
                except NotFound:  # this run never logged the metric: no curve for it
                    continue
                except MlboxError as exc:
                    self.fail(exc)
                    return
        self.post_message(CurvesLoaded(wanted, series))

    def on_comparison_loaded(self, message: ComparisonLoaded) -> None:
        self.runs = message.runs
        comparison = message.comparison
        self.comparison = comparison
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
        if self.charts_each:  # chosen before the comparison came
            self.show_curves()

    @on(Select.Changed, "#compare-metric")
    def metric_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.metric:
            self.metric = event.value
            self.show_curves()

    def show_curves(self) -> None:
        """Draw the layout's curves from those read; read the missing ones first (once: a layout
        switch reads only the metrics it lacks)."""
        keys = self.wanted_keys()
        missing = [key for key in keys if key not in self.curves]
        if missing:
            self.fetch_curves(keys, missing)
            return
        plot, grid = self.query_one("#compare-plot", MetricPlot), self.query_one(MetricGrid)
        plot.display, grid.display = not self.charts_each, self.charts_each
        colors = colors_for([run_label(run) for run in self.runs])
        if self.charts_each:
            grid.show_charts({key: self.curves[key] for key in keys}, self.curve_options, colors=colors)
        elif keys:
            plot.options = self.curve_options  # drawn once, by show_series
            plot.show_series(self.curves[keys[0]], title=keys[0], colors=colors)

    def on_curves_loaded(self, message: CurvesLoaded) -> None:
        self.curves.update(message.series)
        if message.keys == self.wanted_keys():
            self.show_curves()
