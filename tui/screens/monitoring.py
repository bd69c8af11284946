"""The Monitor screen (key 8): per served alias, drift per feature sorted by severity,
realised and estimated accuracy over time, and the open alerts.

A thread worker evaluates the latest `LAST_ROWS` logged rows of every served
alias whose version has a reference (`MonitoringService.evaluate`) and answers
with one `Evaluated` message; the screen only draws. ``r`` re-reads, ``m``
runs every monitor now (alerts raised or cleared).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from mlbox.monitoring.schemas import Alert
from mlbox.store.errors import MlboxError
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views.monitoring import (
    Target,
    alert_lines,
    drift_cells,
    performance_series,
    sorted_drift,
    summary,
    target_cells,
)
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog

LAST_ROWS = 20_000
TARGET_COLUMNS = ("model", "v", "rows", "drift", "acc", "est", "alerts")
DRIFT_COLUMNS = ("feature", "test", "statistic", "p", "verdict")


class Evaluated(Message):
    def __init__(self, seq: int, targets: list[Target], alerts: list[Alert], note: str = "") -> None:
        super().__init__()
        self.seq = seq
        self.targets = targets
        self.alerts = alerts
        self.note = note


class Explained(Message):
    def __init__(self, seq: int, ref: str, lines: list[tuple[str, float, str]], note: str) -> None:
        super().__init__()
        self.seq = seq
        self.ref = ref
        self.lines = lines
        self.note = note


class MonitorScreen(MlboxScreen):
    SECTION = "monitor"
    TITLE = "Monitor"
    DEFAULT_CSS = """
    MonitorScreen #summary { color: $text-muted; padding: 0 2; height: auto; }
    MonitorScreen #panes { height: 1fr; }
    MonitorScreen #targets { width: 1fr; height: 1fr; margin: 0 1; border: round $panel-lighten-2; }
    MonitorScreen #right { width: 1fr; height: 1fr; }
    MonitorScreen #drift { height: 1fr; margin: 0 1 0 0; border: round $panel-lighten-2; }
    MonitorScreen #perf { height: 12; margin: 0 1 0 0; border: round $panel-lighten-2; }
    MonitorScreen DataTable:focus { border: round $accent; }
    MonitorScreen #shap { height: auto; max-height: 11; margin: 0 1 0 0; padding: 0 1; }
    MonitorScreen #alerts { height: auto; max-height: 6; padding: 0 2; color: #f85149; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("m", "run_monitors", "Run monitors"),
        Binding("e", "explain", "Explain latest"),
        Binding("p", "promote", "Promote challenger"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[Target] = []
        self.open_alerts: list[Alert] = []
        self.selected: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("reading the prediction log…", id="summary")
        with Horizontal(id="panes"):
            yield DataTable(id="targets", cursor_type="row", zebra_stripes=True)
            with Vertical(id="right"):
                yield DataTable(id="drift", cursor_type="row", zebra_stripes=True)
                yield Static("", id="shap")
                yield PlotextPlot(id="perf")
        yield Static("", id="alerts")

    def on_mount(self) -> None:
        targets = self.query_one("#targets", DataTable)
        for label in TARGET_COLUMNS:
            targets.add_column(label, key=label)
        targets.border_title = "served aliases"
        drift = self.query_one("#drift", DataTable)
        for label in DRIFT_COLUMNS:
            drift.add_column(label, key=label)
        drift.border_title = "drift per feature (most severe first)"
        self.query_one(
            "#perf", PlotextPlot
        ).border_title = "accuracy over the window (acc realised, est CBPE-estimated)"
        targets.focus()
        self.read_first()

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Refresh monitoring", "Evaluate every served alias's latest traffic", self.reload)
        yield SystemCommand(
            "Run monitors now", "Run every monitor; raise or clear alerts", self.action_run_monitors
        )

    def action_explain(self) -> None:
        """SHAP values of the selected alias's latest logged prediction (`MonitoringService.explanations`)."""
        if self.selected is None:
            return
        self.query_one("#shap", Static).update(
            fmt.inert(f"explaining the latest prediction of {self.selected}…")
        )
        self.explain_latest(self.ask("explain"), self.selected)

    @work(thread=True, group="monitoring-explain")
    def explain_latest(self, seq: int, ref: str) -> None:
        from mlbox.tui.views.monitoring import shap_bars

        monitoring = self.ctx.services.monitoring
        try:
            explanations = monitoring.explanations
            if explanations is None:
                self.post_message(Explained(seq, ref, [], "explanations are not installed"))
                return
            rows = monitoring.latest_rows(ref, 1)
            found = explanations.explain(ref, rows.to_numpy())
            row = found.rows[0]
            note = (
                f"{found.method} ({found.explainer}) of {ref}'s latest prediction: {row.prediction:.3g}"
                f" = {row.expected_value:.3g} + the values below ({found.output})"
            )
            self.post_message(Explained(seq, ref, shap_bars(row.values), note))
        except MlboxError as exc:
            self.post_message(Explained(seq, ref, [], f"cannot explain {ref}: {exc.message}"))

    def on_explained(self, message: Explained) -> None:
        if self.stale("explain", message.seq):
            return
        text = fmt.inert(message.note, "bold")
        for feature, value, bar in message.lines:
            text.append("\n")
            text.append_text(fmt.inert(f"{feature[:14]:<14} {value:+.3g} "))
            text.append(bar, style="#f85149" if value >= 0 else "#4ea1ff")
        self.query_one("#shap", Static).update(text)

    def action_promote(self) -> None:
        """Make the challenger the champion, after a confirmation, when its shadow answers were
        significantly better on the labelled rows (McNemar)."""
        target = next((t for t in self.targets if t.ref == self.selected), None)
        cmp = None if target is None or target.evaluation is None else target.evaluation.challenger
        if target is None or cmp is None or cmp.better != "challenger":
            self.notify(
                "Promote when the challenger is significantly better on labelled shadow traffic.",
                title="Promote",
                severity="warning",
            )
            return
        name, _, alias = target.ref.partition("@")
        version = cmp.challenger_version

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.promote(name, alias, version, cmp.p_value)

        acc = f"{cmp.challenger_accuracy or 0:.3f} vs {cmp.champion_accuracy or 0:.3f}"
        self.app.push_screen(
            ConfirmDialog(
                "Promote challenger",
                f"{target.ref}: {cmp.champion_version} → {version}",
                f"accuracy on {cmp.labelled} labelled shadow rows {acc}, McNemar p {cmp.p_value:.2g}",
                confirm_label="Promote",
            ),
            answered,
        )

    @work(thread=True, group="monitoring-promote")
    def promote(self, name: str, alias: str, version: int, p_value: float | None) -> None:
        try:
            self.ctx.services.registry.set_alias(
                name, alias, version, note=f"promoted from the Monitor screen (McNemar p {p_value:.2g})"
            )
        except MlboxError as exc:
            self.fail(exc)
            return
        self.post_message(Evaluated(-1, [], [], f"{name}@{alias} → version {version}"))

    def action_refresh(self) -> None:
        self.reload()

    def action_run_monitors(self) -> None:
        self.reading = True
        self.evaluate(self.ask("evaluate"), run_monitors=True)

    def reload(self) -> None:
        self.reading = True
        self.evaluate(self.ask("evaluate"))

    @work(thread=True, group="monitoring")
    def evaluate(self, seq: int, run_monitors: bool = False) -> None:
        services = self.ctx.services
        monitoring = services.monitoring
        note = ""
        try:
            if run_monitors:
                ran = [monitoring.run_monitor(m.id) for m in monitoring.list()]
                raised = sum(len(r.raised) for r in ran)
                cleared = sum(len(r.cleared) for r in ran)
                note = f"ran {len(ran)} monitor{'' if len(ran) == 1 else 's'}: {raised} raised, {cleared} cleared"
            targets: list[Target] = []
            for model in services.registry.list_models():
                for alias, version in sorted(model.aliases.items()):
                    ref = f"{model.name}@{alias}"
                    if monitoring.reference(model.name, version) is None:
                        targets.append(Target(ref, version, None, "no reference"))
                        continue
                    try:
                        targets.append(Target(ref, version, monitoring.evaluate(ref, last=LAST_ROWS)))
                    except MlboxError as exc:
                        targets.append(
                            Target(ref, version, None, "no traffic" if exc.field == "window" else "error")
                        )
            self.post_message(Evaluated(seq, targets, monitoring.alerts(open_only=True), note))
        except MlboxError as exc:
            self.fail(exc)

    def on_evaluated(self, message: Evaluated) -> None:
        if message.seq == -1:  # a promotion: say so, then read everything again
            self.notify(message.note, title="Promoted")
            self.reload()
            return
        self.reading = False
        if self.stale("evaluate", message.seq):
            return
        self.targets = message.targets
        self.open_alerts = message.alerts
        text = summary(message.targets, message.alerts)
        self.query_one("#summary", Static).update(
            fmt.inert(text + (f" · {message.note}" if message.note else ""))
        )
        table = self.query_one("#targets", DataTable)
        cursor = table.cursor_row
        table.clear()
        for t in message.targets:
            count = sum(1 for a in message.alerts if f"{a.model}@{a.alias}" == t.ref)
            cells = target_cells(t, count)
            styled: list[Any] = [fmt.inert(cells[0], "bold"), *cells[1:6]]
            styled.append(Text(cells[6], style="bold #f85149"))
            table.add_row(*styled, key=t.key)
        if message.targets:
            table.move_cursor(row=min(max(cursor, 0), len(message.targets) - 1), animate=False)
            self.show_target(message.targets[table.cursor_row])
        else:
            self.show_target(None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "targets" or event.row_key is None:
            return
        key = str(event.row_key.value)
        chosen = next((t for t in self.targets if t.key == key), None)
        if chosen is not None and chosen.ref != self.selected:
            self.show_target(chosen)

    def show_target(self, target: Target | None) -> None:
        if target is None or target.ref != self.selected:
            self.query_one("#shap", Static).update(
                Text("e: SHAP values of the latest prediction", style="dim")
            )
        self.selected = None if target is None else target.ref
        drift = self.query_one("#drift", DataTable)
        drift.clear()
        plot = self.query_one("#perf", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        ev = None if target is None else target.evaluation
        if ev is not None:
            for v in sorted_drift(ev):
                cells = drift_cells(v)
                style = "bold #f85149" if v.drifted else "#3fb950"
                drift.add_row(fmt.inert(cells[0]), *cells[1:4], Text(cells[4], style=style))
            xs, real, est = performance_series(ev)
            if xs:
                plt.plot(xs, est, marker="braille", label="estimated")
                if any(r == r for r in real):
                    plt.plot(xs, real, marker="braille", label="realised")
                plt.ylim(0, 1)
            plt.title(f"{ev.model} v{ev.version}: {ev.rows:,} rows, {ev.performance.labelled:,} labelled")
        else:
            plt.title("no evaluation" if target is None else f"{target.ref}: {target.note}")
        plot.refresh()
        lines = alert_lines(self.open_alerts, self.selected)
        # one alert a line: each line inert on its own, so a name cannot add lines or markup
        shown = Text("\n").join(fmt.inert(line) for line in lines[:5]) if lines else Text("no open alerts")
        self.query_one("#alerts", Static).update(shown)
