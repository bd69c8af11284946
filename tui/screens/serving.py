"""The Serving screen: live requests/s, p50/p99 latency, errors, batch size and queue depth
per served model version.

A thread worker samples the serving totals every ``live_s`` (one second by
default): from the embedded appliance's `ServingService` when the TUI runs
one, else from ``GET {beside_url}/metrics`` when an appliance runs beside it.
Rates are differences of successive samples (`mlbox.tui.views.serving`). With
no appliance at all nothing is served, and the screen says so.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

import httpx
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Static

from mlbox.serving.service import ServingService
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.views import format as fmt
from mlbox.tui.views.serving import (
    WINDOW_S,
    ModelKey,
    Sample,
    ServedRow,
    parse_metrics,
    parse_shed,
    request_rates,
    served_rows,
    shed_note,
)
from mlbox.tui.widgets.status_bar import StatusInfo

COLUMNS = (
    "model",
    "version",
    "aliases",
    "req/s",
    "requests",
    "errors",
    "p50 ms",
    "p99 ms",
    "batch",
    "queue",
    "shadow",
)
NO_APPLIANCE = (
    "no appliance: nothing is served. Start one with  mlbox up  (or run  mlbox  without --no-appliance)"
    " to serve every aliased model"
)
NOTHING_SERVED = "nothing served yet: give a registered model an alias (mlbox models alias NAME champion 1)"
HTTP_TIMEOUT_S = 2.0


def _right(text: str, style: str = "") -> Text:
    return Text(text, justify="right", style=style)


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def row_cells(row: ServedRow) -> tuple[Text, ...]:
    """One table row; a retired version (no reference routes to it) is dimmed."""
    dim = "" if row.aliases else "dim"
    aliases = fmt.inert(" ".join(row.aliases) if row.aliases else "retired", dim or "#4ea1ff")
    return (
        fmt.inert(row.model, f"bold {dim}".strip()),
        _right(str(row.version), dim),
        aliases,
        _right("–" if row.rate is None else f"{row.rate:.1f}", dim),
        _right(f"{row.requests:,}", dim),
        _right(f"{row.errors:,}", "bold #f85149" if row.errors else dim),
        _right(_ms(row.p50_ms), dim),
        _right(_ms(row.p99_ms), dim),
        _right("–" if row.batch_avg is None else f"{row.batch_avg:.1f}", dim),
        _right(str(row.queue_depth), "bold #d29922" if row.queue_depth else dim),
        Text(f"yes {row.mirrored:,}", style="#d29922")
        if row.shadow
        else Text(f"was {row.mirrored:,}" if row.mirrored else "no", style="dim"),
    )


class Sampled(Message):
    """One sample of the serving totals and the routes, or why none could be taken."""

    def __init__(
        self,
        sample: Sample | None,
        routes: dict[str, ModelKey],
        *,
        source: str,
        shadow: bool = True,
        error: str = "",
        shed: int | None = None,
    ) -> None:
        super().__init__()
        self.shed = shed
        """Scoring requests refused with 503 so far (None: the appliance does not say)."""
        self.sample = sample
        self.routes = routes
        self.source = source
        self.shadow = shadow
        self.error = error


class ServingScreen(MlboxScreen):
    SECTION = "serving"
    TITLE = "Serving"
    DEFAULT_CSS = """
    ServingScreen #summary {
        color: $text-muted;
        padding: 0 2;
        height: auto;
    }
    ServingScreen #served {
        height: auto;
        max-height: 24;
        margin: 0 1;
        border: round $panel-lighten-2;
    }
    ServingScreen #served:focus {
        border: round $accent;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self) -> None:
        super().__init__()
        self.samples: deque[Sample] = deque()
        self.shed: int | None = None
        """The refused-request count of the previous sample (to say whether refusing goes on)."""
        self.sampling = False
        self.sampler: Timer | None = None
        self.rows: list[ServedRow] = []

    def compose_body(self) -> ComposeResult:
        yield Static("reading the serving statistics…", id="summary")
        yield DataTable(id="served", cursor_type="row", zebra_stripes=True)

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#served", DataTable)

    def on_mount(self) -> None:
        table = self.table
        for label in COLUMNS:
            left = label in ("model", "aliases", "shadow")
            table.add_column(Text(label, justify="left" if left else "right"), key=label)
        table.border_title = "served models"
        table.focus()
        self.read_first()

    def reload(self) -> None:
        """A sample now; the first (`read_first`) also starts the sampling every ``live_s``."""
        self.sample_now()
        if self.sampler is None:
            self.sampler = self.set_interval(self.ctx.live_s, self.sample_now)

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Refresh serving statistics", "Sample the served models now", self.sample_now)

    # -- sampling -----------------------------------------------------------------------------

    def serving(self) -> ServingService | None:
        """The embedded appliance's serving service, if this TUI runs one."""
        serving = getattr(getattr(self.app, "appliance", None), "serving", None)
        return serving if isinstance(serving, ServingService) else None

    def beside_url(self) -> str | None:
        info = getattr(self.app, "status_info", None)
        if isinstance(info, StatusInfo) and info.appliance == "beside":
            return info.api_url
        return None

    def sample_now(self) -> None:
        """Take a sample unless one is still being taken (a slow appliance); never two at once."""
        if not self.sampling:
            self.sampling = True
            self.take_sample(self.serving(), self.beside_url())

    @work(thread=True, group="serving")
    def take_sample(self, serving: ServingService | None, beside_url: str | None) -> None:
        try:
            if serving is not None:
                stats = tuple(serving.stats())
                at = time.monotonic()
                routes = {ref: (d.name, d.number) for ref, d in serving.served().items()}
                self.post_message(
                    Sampled(
                        Sample(at, stats),
                        routes,
                        source="embedded",
                        shadow=serving.settings.shadow,
                        shed=serving.admission.shed,
                    )
                )
            elif beside_url is not None:
                self.post_message(self._sample_beside(beside_url))
            else:
                self.post_message(Sampled(None, {}, source="none"))
        except Exception as exc:  # a sample that fails must not end the screen: say why, try again
            self.post_message(Sampled(None, {}, source="error", error=f"{type(exc).__name__}: {exc}"))

    def _sample_beside(self, url: str) -> Sampled:
        try:
            response = httpx.get(f"{url.rstrip('/')}/metrics", timeout=HTTP_TIMEOUT_S)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return Sampled(None, {}, source="beside", error=f"{url}/metrics: {exc}")
        stats = tuple(parse_metrics(response.text))
        at = time.monotonic()
        # the appliance serves every alias; the registry (same home) says which
        routes: dict[str, ModelKey] = {}
        for model in self.ctx.services.registry.list_models():
            for alias, version in model.aliases.items():
                routes[f"{model.name}@{alias}"] = (model.name, version)
        return Sampled(Sample(at, stats), routes, source="beside", shed=parse_shed(response.text))

    def on_sampled(self, message: Sampled) -> None:
        self.sampling = False
        summary = self.query_one("#summary", Static)
        if message.sample is None:
            if message.source == "none":
                self.samples.clear()
                summary.update(NO_APPLIANCE)
                self._show([])
            else:
                summary.update(
                    fmt.inert(f"could not read the serving statistics: {message.error}", "#f85149")
                )
            return
        self.samples.append(message.sample)
        shed, self.shed = shed_note(message.shed, self.shed), message.shed
        while len(self.samples) > 2 and message.sample.at - self.samples[1].at >= WINDOW_S:
            self.samples.popleft()
        rates = request_rates(list(self.samples))
        rows = served_rows(message.sample.stats, message.routes, rates, shadow=message.shadow)
        self._show(rows)
        where = "embedded appliance" if message.source == "embedded" else "appliance beside (/metrics)"
        if not rows:
            summary.update(f"{where} · {NOTHING_SERVED}{shed}")
            return
        served = sum(1 for r in rows if r.aliases)
        total = sum(r.rate or 0.0 for r in rows)
        summary.update(
            f"{where} · {served} version{'' if served == 1 else 's'} served · {total:.1f} req/s"
            f" · rates over the last {WINDOW_S:g} s{shed}"
        )

    def _show(self, rows: list[ServedRow]) -> None:
        self.rows = rows
        table = self.table
        current = [(str(k.value), list(table.get_row(k))) for k in table.rows]
        wanted = [(r.key, list(row_cells(r))) for r in rows]
        if current == wanted:
            return
        cursor = table.cursor_row
        table.clear()
        for key, cells in wanted:
            table.add_row(*cells, key=key)
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1), animate=False)
