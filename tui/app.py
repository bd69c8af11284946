"""The mlbox Textual app: wires the service screens, the status bar and the appliance.

`make_app` builds it for both the CLI (`run_tui`) and the tests. When the CLI
hands in an appliance, the app starts it (loops, then HTTP) in a thread
worker once the first screen is painted — the UI is up before the API is —
and stops it on exit; a port already taken shows in the status bar rather
than ending the TUI. The other sections' screens are imported then too, in
the background (cold start, issue 16). Full garbage collections wait for the
user to be idle (`mlbox.tui.idle_gc`, issue 18).
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import AwaitMount

from mlbox.store.errors import MlboxError
from mlbox.tui.appliance_handle import ApplianceHandle
from mlbox.tui.context import TuiContext
from mlbox.tui.idle_gc import TICK_S, IdleCollector
from mlbox.tui.messages import ServiceFailed
from mlbox.tui.navigation import SECTIONS, preload
from mlbox.tui.screens.base import MlboxScreen
from mlbox.tui.widgets.error_dialog import ErrorDialog
from mlbox.tui.widgets.help_overlay import HelpOverlay, help_rows
from mlbox.tui.widgets.status_bar import StatusInfo

if TYPE_CHECKING:
    from mlbox.services import Services  # numpy and every service: the TUI's start needs none

PRELOAD_AFTER_S = 1.0
"""The other screens are imported this long after the first paint, not to slow its first reads."""
CLOSE_WAIT_S = 2.0
"""How long closing waits for a screen mounting off screen to be mounted (`MlboxApp._shutdown`)."""

_heap_frozen = False


def freeze_startup_heap() -> None:
    """Take what start-up made (modules, classes, functions: ~80,000 objects) out of the cyclic
    garbage collector's view, once per process. They live as long as the process anyway, and
    every full collection walked them all: 30 ms or more inside a key press (issue 18)."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.freeze()


def _freeze_built() -> None:
    """(`MlboxApp.build_ahead`) What lives now frozen, less the garbage: a collection first."""
    gc.collect()
    gc.freeze()


class ApplianceChanged(Message):
    """The embedded appliance's new state (started, API address, or why HTTP is off)."""

    def __init__(self, **changes: Any) -> None:
        super().__init__()
        self.changes = changes


class Counted(Message):
    """Experiment, run and running-run counts for the status bar; None when the count failed."""

    def __init__(self, counts: tuple[int, int, int] | None) -> None:
        super().__init__()
        self.counts = counts
        """(experiments, runs, running runs)"""


class MlboxApp(App[None]):
    TITLE = "mlbox"
    MODES: ClassVar[dict[str, str | Any]] = {s.mode: s.make_screen for s in SECTIONS}
    DEFAULT_MODE = SECTIONS[0].mode
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(s.key, f"switch_mode('{s.mode}')", s.title, show=False) for s in SECTIONS),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", show=False),  # in the palette; the footer is full
        Binding("f1", "help", "Help", show=False),
    ]

    status_info: reactive[StatusInfo] = reactive(StatusInfo)

    def __init__(
        self, ctx: TuiContext, *, appliance: ApplianceHandle | None, beside_url: str | None, home_label: str
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.appliance = appliance
        self._appliance_settled = threading.Event()
        self._counting = False
        self.idle_gc = IdleCollector()
        self._built_mode = False
        """`switch_mode` is moving to a mode whose screen exists (`delay_update`)."""
        if appliance is not None:
            state = StatusInfo(appliance="starting", home=home_label)
        elif beside_url is not None:
            state = StatusInfo(appliance="beside", api_url=beside_url, home=home_label)
        else:
            state = StatusInfo(appliance="none", home=home_label)
        self.set_reactive(MlboxApp.status_info, state)

    def on_mount(self) -> None:
        self.count_runs()
        self.set_interval(self.ctx.refresh_s, self.count_runs)
        self.set_interval(TICK_S, lambda: self.idle_gc.tick(self.message_queue_size), name="idle-gc")

    async def on_event(self, event: events.Event) -> None:
        """Textual's, with input events reported to the idle collector: none runs while one is
        handled, nor until the user has been idle a while."""
        if not isinstance(event, events.InputEvent):
            await super().on_event(event)
            return
        self.idle_gc.input_started()
        try:
            await super().on_event(event)
        finally:
            self.idle_gc.input_ended()

    def switch_mode(self, mode: str) -> AwaitMount:
        """Textual's, without its 50 ms hold on updates when ``mode``'s screen exists already:
        the hold masks a screen being built, and a built one (every mode after its first visit)
        was drawn 50 ms after the key with nothing to wait for (its answer took 60-70 ms)."""
        self._built_mode = mode in self._screen_stacks
        try:
            return super().switch_mode(mode)
        finally:
            self._built_mode = False

    def delay_update(self, delay: float = 0.05) -> None:
        if not self._built_mode:
            super().delay_update(delay)

    async def _shutdown(self) -> None:
        """Textual's, once a screen mounting off screen (`RunDetailScreen.prebuild`, a section's
        `build_ahead`) has mounted: Textual starts no widget once it is shutting down, so the
        children of a screen still mounting would never mount and their mount handlers raise (a
        quit, or a test's end, at that moment)."""
        built = [*self._installed_screens.values(), *(stack[0] for stack in self._screen_stacks.values())]
        for screen in built:
            if isinstance(screen, Screen) and screen._task is not None and not screen.is_mounted:
                with suppress(TimeoutError):
                    await asyncio.wait_for(screen._mounted_event.wait(), CLOSE_WAIT_S)
        await super()._shutdown()

    def on_ready(self) -> None:
        """The first screen is painted: now the work it does not need (cold start, issue 16)."""
        if self.appliance is not None:
            self.start_appliance(self.appliance)
        self.set_timer(PRELOAD_AFTER_S, self.preload_screens)  # after the first runs are read and shown

    @work(thread=True, group="preload", exit_on_error=False)
    def preload_screens(self) -> None:
        """Import the other screens while the user reads the first, so no key waits for imports;
        then build them (`build_ahead`)."""
        preload()
        freeze_startup_heap()
        if self.ctx.build_ahead:
            self.call_from_thread(self.build_ahead)

    def build_ahead(self) -> None:
        """Build and draw each section's screen off screen, one step per idle moment
        (`IdleCollector.defer`), then freeze them out of the collector's view as start-up's heap
        is (`freeze_startup_heap`): they live as long as the app. A section's first visit
        composed, mounted, laid out and drew its screen while the key waited (Models: 127-136
        ms of app time, later visits 8-20); and unfrozen, the built screens' widgets made every
        idle full collection 2.5 times longer (p50 41 -> 96 ms), past the pause between keys."""
        for section in SECTIONS:
            self.idle_gc.defer(partial(self._build_mode, section.mode))
        self.idle_gc.defer(partial(self.idle_gc.defer, _freeze_built))  # after the last one is drawn

    @property
    def settled(self) -> bool:
        """Every section's screen built and nothing left for an idle moment (the benchmark's start)."""
        return all(s.mode in self._screen_stacks for s in SECTIONS) and not self.idle_gc.pending

    @property
    def _open(self) -> bool:
        """Running, not closing: Textual empties the screen stacks as it closes, and deferred work
        may come due meanwhile."""
        return (
            self._running
            and not self._closing
            and not self._exit
            and bool(self._screen_stacks.get(self._current_mode))
        )

    def _build_mode(self, mode: str) -> None:
        """``mode``'s screen mounted as its stack's base, not shown (no ``ScreenResume``: that
        comes with `switch_mode`, as for a built mode), then drawn at the next idle moment."""
        if mode in self._screen_stacks or not self._open:
            return
        factory = self._modes[mode]
        screen = factory() if callable(factory) else self.get_screen(factory)
        if isinstance(screen, MlboxScreen):
            screen.ahead = True  # its first read when it shows (`MlboxScreen.read_first`)
        self._load_screen_css(screen)  # before its widgets mount: styled once, by the whole CSS
        self._get_screen(screen)
        self._screen_stacks[mode] = [screen]
        screen._screen_resized(self.size)
        self.idle_gc.defer(partial(self._draw_ahead, screen))

    def _draw_ahead(self, screen: Screen[Any]) -> None:
        """A built section's first layout and render, off screen (the other half of its cost)."""
        if not self._open or screen is self.screen or not screen.is_mounted:
            return
        screen._refresh_layout(self.size)
        screen._compositor.render_update(full=True)

    # -- the embedded appliance --------------------------------------------------------

    @work(thread=True, group="appliance")
    def start_appliance(self, appliance: ApplianceHandle) -> None:
        try:
            appliance.start_loops()
            url = appliance.start_http()
        except Exception as exc:  # a port in use must not end the TUI: it still works on the stores
            self.post_message(ApplianceChanged(appliance="failed", note=f"HTTP API off: {exc}"))
        else:
            self.post_message(ApplianceChanged(appliance="embedded", api_url=url))
        finally:
            self._appliance_settled.set()

    def on_appliance_changed(self, message: ApplianceChanged) -> None:
        self.status_info = replace(self.status_info, **message.changes)

    def stop_appliance(self) -> None:
        """Stop the embedded appliance once its start has settled; safe to call twice."""
        if self.appliance is not None:
            self._appliance_settled.wait(timeout=30)
            self.appliance.stop()
            self.appliance = None

    async def on_unmount(self) -> None:
        await asyncio.to_thread(self.stop_appliance)

    # -- counts for the status bar ---------------------------------------------------------

    def count_runs(self) -> None:
        """Re-count for the status bar, unless a count is still running (a slow disk).

        A flag, not an exclusive worker: cancelling a thread does not stop it,
        and a cancelled worker fails whoever waits for the workers.
        """
        if not self._counting:
            self._counting = True
            self.fetch_counts()

    @work(thread=True, group="counts")
    def fetch_counts(self) -> None:
        tracking = self.ctx.services.tracking
        try:
            experiments = tracking.list_experiments()
            running = tracking.search_runs("status = 'running'", limit=1).total
        except MlboxError as exc:
            self.post_message(Counted(None))
            self.post_message(ServiceFailed(exc))
            return
        runs = sum(e.run_count for e in experiments)
        self.post_message(Counted((len(experiments), runs, running)))

    def on_counted(self, message: Counted) -> None:
        self._counting = False
        if message.counts is not None:
            experiments, runs, running = message.counts
            self.status_info = replace(self.status_info, experiments=experiments, runs=runs, running=running)

    # -- errors and commands -----------------------------------------------------------------

    def on_service_failed(self, message: ServiceFailed) -> None:
        """The one place errors are shown; one dialog at a time."""
        if not isinstance(self.screen, ErrorDialog):
            self.push_screen(ErrorDialog(message.error))

    def action_help(self) -> None:
        """The help overlay: the keys of the screen showing now (not of a dialog over it)."""
        screen = self.screen
        if isinstance(screen, HelpOverlay):
            return
        display = {
            key: self.get_key_display(active.binding) for key, active in screen.active_bindings.items()
        }
        title = str(screen.TITLE or screen.title or type(screen).__name__)
        HelpOverlay.shown(self, type(screen), title, help_rows(screen.active_bindings, display))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for s in SECTIONS:
            yield SystemCommand(f"Go to {s.title}", s.help, lambda mode=s.mode: self.switch_mode(mode))
        yield SystemCommand("Keys of this screen", "The help overlay (? or F1)", self.action_help)
        if isinstance(screen, MlboxScreen):
            yield from screen.commands()


def home_label(path: Path) -> str:
    """The home folder as shown: under the user's home, with ``~``."""
    try:
        return "~/" + path.resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return str(path)


def make_app(
    services: Services,
    *,
    appliance: ApplianceHandle | None = None,
    beside_url: str | None = None,
    home: str | None = None,
    refresh_s: float = 2.0,
    live_s: float = 1.0,
    page_size: int = 100,
    build_ahead: bool = True,
) -> MlboxApp:
    """The app over ``services``; ``home`` overrides how the home folder is shown (snapshots)."""
    ctx = TuiContext(
        services=services,
        nav=tuple(s.entry for s in SECTIONS),
        refresh_s=refresh_s,
        live_s=live_s,
        page_size=page_size,
        build_ahead=build_ahead,
    )
    label = home if home is not None else home_label(services.home.root)
    return MlboxApp(ctx, appliance=appliance, beside_url=beside_url, home_label=label)


def run_tui(services: Services, *, appliance: ApplianceHandle | None, beside_url: str | None) -> None:
    """The CLI's entry point: run the TUI until the user quits; the appliance stops with it."""
    from mlbox.tui.widgets.label_graphics import detect

    detect(services.settings.labeling.images)  # labeling's images: ask the terminal before Textual owns it
    app = make_app(services, appliance=appliance, beside_url=beside_url)
    try:
        app.run()
    finally:
        app.stop_appliance()
