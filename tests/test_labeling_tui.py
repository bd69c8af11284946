"""The Labeling screen (key 9) and the annotator's screen with Pilot: keys label, accept, skip,
undo, flag, comment; text shown literally; snapshots at 160x48 and 100x30."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from mlbox.cli.labeling import open_annotator
from mlbox.labeling.config import LabelingSettings
from mlbox.services import Services
from mlbox.settings import Settings
from mlbox.tui.screens.labeling import AnnotateScreen, LabelingScreen
from mlbox.tui.widgets.label_prompt import LabelPrompt
from tests.test_tui import app_for, settle, until

Snap = Callable[..., bool]
T0 = 1_764_979_200.0


@pytest.fixture
def lab_services(settings: Settings) -> Services:
    s = replace(settings, labeling=LabelingSettings(prefetch=4, annotator="ann"))
    services = Services.open(s)
    lab = services.labeling
    lab.create_project(
        "news",
        {"choices": ["sports", "politics", "science"], "spans": ["PER", "ORG"]},
        instructions="Pick the section; accept the pre-label with a when it is right.",
    )
    lab.add_tasks(
        "news",
        [
            {"text": "Ada Lovelace joins the [bold]Royal Society[/bold] \x1b[31mtoday", "source": "wire"},
            {"text": "The match ended 2-1 after extra time."},
            {"text": "Parliament votes on the budget."},
            {"text": "A new comet is found."},
            {"text": "Quiet day."},
        ],
    )
    lab.set_prelabels(
        "news",
        [(1, {"label": "science", "spans": [{"start": 0, "end": 12, "label": "PER"}]}, 0.87)],
        model="news@champion",
    )
    lab.create_project("digits", {"choices": [str(i) for i in range(10)]}, instructions="Which digit?")
    lab.add_tasks(
        "digits", [{"pixels": [float((x * y) % 16) for y in range(8) for x in range(8)], "width": 8}]
    )
    return services


def text_of(app: object, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())  # type: ignore[attr-defined]


async def open_news(pilot: Pilot[None]) -> AnnotateScreen:
    await settle(pilot)
    await pilot.press("9")
    await settle(pilot)
    assert isinstance(pilot.app.screen, LabelingScreen)
    await pilot.press("down")  # news is second (sorted by name)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, AnnotateScreen)
    await until(pilot, lambda: screen.current is not None)
    return screen


async def test_keys_label_accept_skip_undo_flag(lab_services: Services) -> None:
    lab = lab_services.labeling
    app = app_for(lab_services)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_news(pilot)
        assert screen.current is not None and screen.current.id == 1
        body = text_of(app, "#body")
        assert "[bold]Royal Society[/bold]" in body and "\\x1b[31m" in body  # literal, never markup
        assert "science, 1 spans (87%)" in text_of(app, "#prelabel")
        await pilot.press("a")  # accept the pre-label
        await until(pilot, lambda: screen.current is not None and screen.current.id == 2)
        await pilot.press("1")  # sports
        await until(pilot, lambda: screen.current is not None and screen.current.id == 3)
        await pilot.press("s")  # skip
        await until(pilot, lambda: screen.current is not None and screen.current.id == 4)
        await settle(pilot)
        anns = {a.task_id: a for a in lab.annotations("news", kind=None)}
        assert anns[1].value == {"label": "science", "spans": [{"start": 0, "end": 12, "label": "PER"}]}
        assert anns[1].from_prelabel and anns[2].value == {"label": "sports"} and anns[3].kind == "skip"
        await pilot.press("u")  # undo the skip: task 3 comes back
        await until(pilot, lambda: screen.current is not None and screen.current.id == 3)
        assert 3 not in {a.task_id for a in lab.annotations("news", kind=None)}
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, LabelPrompt)
        await pilot.press(*"hard one", "enter")
        await settle(pilot)
        await pilot.press("f")
        await pilot.pause()
        await pilot.press(*"unclear", "enter")
        await settle(pilot)
        assert [(r.task_id, r.detail, r.created_by) for r in lab.reviews("news")] == [(3, "unclear", "ann")]
        await pilot.press("2")
        await settle(pilot)
        (a3,) = [a for a in lab.annotations("news") if a.task_id == 3]
        assert a3.value == {"label": "politics"} and a3.comment == "hard one" and a3.annotator == "ann"
        await pilot.press("9")  # past the last choice: nothing happens
        await settle(pilot)
        assert screen.current is not None and screen.current.id == 4
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, LabelingScreen)
        # leaving gives the claimed tasks back (in a worker: failed in CI when asked at once), so
        # another annotator gets task 4 first; a call that finds nothing claims nothing
        got: list[int] = []
        await until(pilot, lambda: bool(got.extend(t.id for t in lab.next_tasks("news", "bob", 1)) or got))
        assert got == [4]


async def test_leaving_gives_every_task_back_whenever_a_read_runs(lab_services: Services) -> None:
    """Prefetching reads run in threads that closing the screen cannot stop: one still claiming
    ends before the release, and one whose thread runs after the release claims nothing. The
    release itself runs although the screen's own workers are cancelled as it closes."""
    lab = lab_services.labeling
    app = app_for(lab_services)

    def bob_gets_all() -> bool:
        return sorted(t.id for t in lab.next_tasks("news", "bob", 5)) == [1, 2, 3, 4, 5]

    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_news(pilot)
        assert not bob_gets_all()  # ann holds 1-4
        lab.release("news", "bob")
        screen.claims.acquire()  # a read is claiming: held here so that it is still claiming on escape
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LabelingScreen)
        screen.claims.release()
        await until(pilot, bob_gets_all)
        lab.release("news", "bob")
        AnnotateScreen.read_next.__wrapped__(screen, 5)  # type: ignore[attr-defined]  # a late read
        assert bob_gets_all()


async def test_digits_draw_as_half_blocks_and_cli_opens_the_project(lab_services: Services) -> None:
    app = app_for(lab_services)
    app.call_later(open_annotator, app, "digits", "ann")  # what `mlbox label digits` does before app.run()
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.current is not None)
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        assert "▀" in text_of(app, "#body")
        await pilot.press("8")
        await until(pilot, lambda: screen.current is None and not screen.pending)
        assert "nothing left to label" in text_of(app, "#body")
        assert [a.value for a in lab_services.labeling.annotations("digits")] == [{"label": "7"}]


async def test_next_task_shows_at_once_with_prefetch(lab_services: Services) -> None:
    """The next task comes from memory: p99 of key press to the next task on screen stays < 50 ms."""
    lab = lab_services.labeling
    lab.create_project("big", {"choices": ["a", "b"]})
    lab.add_tasks("big", [{"text": f"task {i}"} for i in range(20_000)])
    app = app_for(lab_services)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        open_annotator(app, "big", "ann")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        await until(pilot, lambda: screen.current is not None)
        times = []
        for _ in range(60):
            before = screen.shown
            t0 = time.perf_counter()
            await pilot.press("1")
            while screen.shown == before:
                await pilot.pause(0.001)
            times.append(screen.shown_perf - t0)
        times.sort()
        assert times[0] > 0  # measured: the task was drawn after the key press
        assert times[int(0.99 * len(times))] < 0.05, times[-5:]
        await settle(pilot)
        await until(pilot, lambda: not screen.pending)
    assert len(lab.annotations("big")) == 60


def _svg_text(svg: str) -> str:
    return "\n".join(html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg))


async def _snap_list(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await pilot.press("9")
    await settle(pilot)


class TestLabelingSnapshots:
    @pytest.mark.parametrize("size", [(160, 48), (100, 30)])
    def test_projects(self, lab_services: Services, size: tuple[int, int], snap_compare: Snap) -> None:
        assert snap_compare(app_for(lab_services), terminal_size=size, run_before=_snap_list)

    @pytest.mark.parametrize("size", [(160, 48), (100, 30)])
    def test_annotator(self, lab_services: Services, size: tuple[int, int], snap_compare: Snap) -> None:
        assert snap_compare(app_for(lab_services), terminal_size=size, run_before=open_news)


async def test_boxes_as_numbers_with_keys(lab_services: Services, tmp_path: object) -> None:
    from pathlib import Path

    from PIL import Image

    folder = Path(str(tmp_path)) / "imgs"
    folder.mkdir()
    Image.new("RGB", (100, 50), (200, 30, 30)).save(folder / "a.png")
    lab = lab_services.labeling
    lab.create_project("cars", {"boxes": ["car", "truck"]})
    lab.import_tasks("cars", folder)
    app = app_for(lab_services)
    app.call_later(open_annotator, app, "cars", "ann")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.current is not None)
        assert "▀" in text_of(app, "#body")  # the image in half blocks
        await pilot.press("b", "right", "right", "shift+down", "n")
        assert "box 1: truck x=29 y=12 w=50 h=27" in text_of(app, "#note")
        await pilot.press("enter")
        await settle(pilot)
        await until(pilot, lambda: not app.screen.pending)  # type: ignore[attr-defined]
    (a,) = lab.annotations("cars")
    assert a.value == {"boxes": [{"x": 29.0, "y": 12.0, "w": 50.0, "h": 27.0, "label": "truck"}]}


def _with_history(services: Services) -> Services:
    """The digits project with a model in the loop that retrained three times."""
    lab = services.labeling
    lab.set_loop("digits", "digits-model", 10)
    for labels, acc in ((10, 0.42), (20, 0.61), (30, 0.74)):
        lab.record_accuracy(
            "digits", labels, acc, method="5-fold CV", model="digits-model", version=labels // 10
        )
    return services


async def _open_digits(pilot: Pilot[None]) -> None:
    app = pilot.app
    await settle(pilot)
    open_annotator(app, "digits", "ann")
    await until(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.current is not None)
    await settle(pilot)


async def test_the_model_accuracy_chart_grows_with_the_labels(lab_services: Services) -> None:
    from mlbox.tui.widgets.accuracy_plot import AccuracyPlot

    app = app_for(lab_services)
    async with app.run_test(size=(160, 48)) as pilot:
        news = await open_news(pilot)  # no model in the loop: no chart
        assert not news.query_one(AccuracyPlot).display
        await pilot.press("escape")
        await settle(pilot)
        _with_history(lab_services)
        await _open_digits(pilot)
        screen = app.screen
        assert isinstance(screen, AnnotateScreen)
        plot = screen.query_one(AccuracyPlot)
        assert plot.display and plot.region.width >= 34
        assert plot.drawn == ([10.0, 20.0, 30.0], [0.42, 0.61, 0.74])
        assert plot.plot_title == "0.74 at 30 labels"
        assert plot.border_subtitle == "5-fold CV · digits-model/3"
        # a retraining finishes while the annotator works: the chart takes the new point
        lab_services.labeling.record_accuracy("digits", 40, 0.83, method="5-fold CV", model="digits-model")
        screen.poll_accuracy()
        await until(pilot, lambda: len(plot.drawn[0]) == 4)
        assert plot.drawn[1][-1] == 0.83 and plot.plot_title == "0.83 at 40 labels"


async def test_a_loop_without_retraining_yet_says_so(lab_services: Services) -> None:
    from mlbox.tui.widgets.accuracy_plot import AccuracyPlot

    lab_services.labeling.set_loop("digits", "digits-model", 25)
    app = app_for(lab_services)
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_digits(pilot)
        plot = app.screen.query_one(AccuracyPlot)
        assert plot.display and plot.drawn == ([], [])
        assert plot.empty == "no retraining yet (every 25 labels)"


class TestAccuracySnapshots:
    @pytest.mark.parametrize("size", [(160, 48), (100, 30)])
    def test_annotator_with_accuracy(
        self, lab_services: Services, size: tuple[int, int], snap_compare: Snap
    ) -> None:
        app = app_for(_with_history(lab_services))
        assert snap_compare(app, terminal_size=size, run_before=_open_digits)


@pytest.fixture
def kitty_terminal() -> Iterator[None]:
    """The labeling screen as a terminal that speaks Kitty's graphics protocol gets it."""
    from mlbox.tui.widgets import label_graphics

    assert label_graphics.detect("kitty") == "kitty"
    yield
    label_graphics.detect("halfblock")


async def test_images_in_the_terminals_graphics_protocol(
    lab_services: Services, kitty_terminal: None
) -> None:
    from textual_image.widget import TGPImage

    app = app_for(lab_services)
    app.call_later(open_annotator, app, "digits", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, AnnotateScreen) and app.screen.current is not None)
        await settle(pilot)
        picture = app.screen.query_one("#picture")
        assert isinstance(picture, TGPImage) and picture.display
        assert picture.region.height == 16 and picture.region.width > 0
        from PIL.Image import Image

        image = picture.image
        assert isinstance(image, Image) and image.size == (256, 256)  # 8 x 8 pixels, 32 times each
        # the fixture's pixel (x, y) is x * y % 16: (3, 5) is 15, the brightest (white); (0, 0) is 0
        assert image.getpixel((3 * 32, 5 * 32)) == (255, 255, 255)
        assert image.getpixel((0, 0)) == (0, 0, 0)
        body = text_of(app, "#body")
        assert "▀" not in body and "pixels" not in body  # drawn once, by the protocol
        await pilot.press("8")
        await until(pilot, lambda: app.screen.current is None and not app.screen.pending)  # type: ignore[attr-defined]
        assert not picture.display  # no task, no picture
