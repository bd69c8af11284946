"""The TUI shows user text, never runs it: markup and escape sequences in every name stay inert.

One real home is seeded with hostile strings wherever the services take free
text — an experiment and run names, param and tag values, a model's
description and an alias note, a job's name and log, a sweep's name, a
notebook's folder, feature values — and every screen (with the detail panes
and dialogs that show those strings) is opened with Pilot. Each must open
without a crash (an unbalanced ``[/]`` or ``[link=…]`` parsed as markup raises
MarkupError and takes the whole app down), show the markup as its literal
characters, and let no ESC character reach the rendered screen: ``\\x1b]52;…``
would write the clipboard, ``\\x1b[2J`` clear the screen, ``\\x1b]0;…`` set the
window title.
"""

from __future__ import annotations

import datetime as dt
import html
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from mlbox.features.definitions import Entity, FeatureView, Field, FrameSource
from mlbox.registry.flavors import save_model
from mlbox.scheduler.schemas import JobSpec
from mlbox.services import Services
from mlbox.sweeps.schemas import SweepSpec
from mlbox.textsafe import visible
from mlbox.tui.app import MlboxApp
from mlbox.tui.screens.compare import CompareScreen
from mlbox.tui.screens.experiments import ExperimentsScreen
from mlbox.tui.screens.features import FeaturesScreen
from mlbox.tui.screens.jobs import JobsScreen
from mlbox.tui.screens.models import ModelsScreen
from mlbox.tui.screens.notebooks import NotebooksScreen
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.screens.serving import ServingScreen
from mlbox.tui.screens.sweeps import SweepsScreen
from mlbox.tui.views.format import inert
from mlbox.tui.widgets.confirm_dialog import ConfirmDialog
from mlbox.tui.widgets.job_detail import JobDetailDialog
from tests.models import Doubler
from tests.test_tui import app_for, settle, until

ESC = "\x1b"
ESCAPES = "\x1b]52;c;aGk=\x07\x1b[2J\x1b]0;pwned\x07"
"""A clipboard write, a screen clear and a window title, as a terminal would obey them."""
LINK = "job[link=http://x]click[/link]"
BOLD = "[bold red]x[/]"
UNBALANCED = "a[/]b"
SIZE = (220, 50)


def test_visible_escapes_control_characters_only() -> None:
    assert visible("plain [bold]text[/] \\x1b") == "plain [bold]text[/] \\x1b"
    assert visible(ESCAPES) == "\\x1b]52;c;aGk=\\x07\\x1b[2J\\x1b]0;pwned\\x07"
    assert visible("a\tb\nc\x9b\u202ed\x7f") == "a\\x09b\\x0ac\\x9b\\u202ed\\x7f"
    assert visible("a\tb\nc", keep="\n") == "a\\x09b\nc"
    text = inert(BOLD + ESC)
    assert text.plain == BOLD + "\\x1b" and not text.spans  # literal: no style taken from the text


def seed(services: Services, folder: Path) -> None:
    tracking = services.tracking
    for name in (BOLD + ESCAPES, UNBALANCED):
        run = tracking.create_run(f"exp{BOLD}", name, tags={"note": LINK + ESCAPES})
        tracking.log_params(run.id, {"opt": BOLD + ESCAPES, f"k{UNBALANCED}": UNBALANCED})
        tracking.log_points(run.id, [("loss", 0, 1.0, 0.5), ("loss", 1, 2.0, 0.25)])
        save_model(Doubler(2.0), folder / f"m{run.id}", example_input=np.ones((2, 2)))
        tracking.log_artifact(run.id, folder / f"m{run.id}", "model")
        tracking.end_run(run.id, "finished")
        services.registry.register("hostile", run_id=run.id, description=LINK + ESCAPES)
    services.registry.set_alias("hostile", "champion", 2, note=BOLD + ESCAPES)
    sched = services.scheduler
    job = sched.submit(JobSpec(name=LINK + ESCAPES, command=[sys.executable, "-c", "pass"]))
    log = sched.log_path(job.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"epoch 1 {BOLD}{ESCAPES}\nlone \x1b escape and \x9b2J a C1 one\n{LINK}\n")
    sched.submit(JobSpec(name=UNBALANCED + ESCAPES, command=[sys.executable, "-c", "pass"]))
    services.sweeps.create(
        SweepSpec(
            metric="loss",
            command=[sys.executable, "trial.py"],
            space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
            name=BOLD,  # it names the experiment too, which refuses control characters
            n_trials=1,
            workdir=str(folder),
        )
    )
    root = folder / "nb[bold red]x\x1b]0;pwned\x07"  # a folder name cannot hold the '/' of [/]
    root.mkdir()
    services.notebooks.start(root_dir=root)
    t0 = dt.datetime(2024, 3, 1)
    customer = Entity("customer", ["customer_id"], "a buyer")
    frame = pl.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": [t0, t0], "remark": [LINK, BOLD + ESCAPES]}
    )
    view = FeatureView(
        "remarks", [customer], FrameSource(frame), "event_timestamp", [Field("remark", "string")]
    )
    services.features.apply([customer, view])


def rendered(app: MlboxApp) -> str:
    """The screen's text as the SVG screenshot draws it (entities decoded, spaces as spaces)."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def check(app: MlboxApp, *literals: str) -> str:
    """The screen as drawn: no ESC in it, and each of ``literals`` shown as its characters."""
    screen = rendered(app)
    assert ESC not in screen, f"a raw ESC reached {type(app.screen).__name__}"
    for literal in literals:
        assert literal in screen, f"{literal!r} is not shown on {type(app.screen).__name__}"
    return screen


async def go(pilot: Pilot[None], key: str, screen_type: type) -> None:
    await pilot.press(key)
    await settle(pilot)
    await until(pilot, lambda: isinstance(pilot.app.screen, screen_type), lambda: pilot.app.screen)


async def test_every_screen_shows_hostile_text_literally(services: Services, tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        seed(services, Path(tmp))
        app = app_for(services, live_s=3600)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, ExperimentsScreen)
            check(app, "[bold", "red]x[/]", "\\x1b]52;c;", "a[/]b")

            # a filter the search language refuses, quoting the user's text: summary and error line
            runs = app.screen
            await pilot.press("slash")
            runs.query_one("#filter", Input).value = 'params.opt = "[/]" and'
            await pilot.press("enter")
            await settle(pilot)
            check(app, '"[/]"')
            runs.action_clear_filter()
            runs.action_leave_filter()
            await settle(pilot)

            # compare the two runs, then one run in full (params and tags tabs)
            await pilot.press("space", "down", "space", "c")
            await settle(pilot)
            await until(pilot, lambda: isinstance(app.screen, CompareScreen))
            await settle(pilot)
            check(app, "a[/]b", "[bold")
            await pilot.press("escape")
            await settle(pilot)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
            await settle(pilot)
            check(app, "\\x1b]52;c;")
            tabs = app.screen.query_one(TabbedContent)
            tabs.active = "tab-params"
            await settle(pilot)
            check(app, "red]x[/]", "a[/]b")
            tabs.active = "tab-tags"
            await settle(pilot)
            check(app, "[link=http://x]click[/link]")
            await pilot.press("escape")
            await settle(pilot)

            await go(pilot, "2", ModelsScreen)
            await pilot.press("enter")  # into the versions: the lineage shows the description
            await settle(pilot)
            check(app, "[link=http://x]click[/link]", "red]x[/]")

            await go(pilot, "3", ServingScreen)
            check(app)

            await go(pilot, "5", JobsScreen)
            jobs = app.screen
            assert isinstance(jobs, JobsScreen)
            jobs.table.move_cursor(row=jobs.table.get_row_index("1"))  # job 1: the one with a log
            await until(pilot, lambda: any("epoch 1" in line for line in jobs.log_view.shown))
            await pilot.pause()
            check(app, "log of job 1 job[link=http://x]click[/link]", "epoch 1 [bold", "\\x1b", "\\x9b")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailDialog))
            await settle(pilot)
            check(app, "job[link=http://x]click[/link]\\x1b]52;c;")
            await pilot.press("escape")
            await settle(pilot)
            await pilot.press("c")  # the cancel confirmation names the job
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            check(app, "[link=http://x]click[/link]")
            await pilot.press("n")
            await settle(pilot)
            jobs.notify(f"note {BOLD}{ESCAPES}", title=f"title {UNBALANCED}{ESCAPES}")
            await until(pilot, lambda: bool(list(app._notifications)))
            note = list(app._notifications)[-1]
            assert not note.markup  # a toast draws it as Content(message): markup parsed would raise or style
            assert (note.title, note.message) == (
                f"title {UNBALANCED}{visible(ESCAPES)}",
                f"note {BOLD}{visible(ESCAPES)}",
            )

            await go(pilot, "6", SweepsScreen)
            check(app, "[bold", "red]x[/]")
            await go(pilot, "7", NotebooksScreen)
            check(app, "nb[bold red]x\\x1b]0;pwned\\x07")
            await go(pilot, "4", FeaturesScreen)
            await settle(pilot)
            check(app, "job[link=http://x]click[/li", "[bold red]x[/]\\x1b]52")  # sample values, clipped


async def test_markup_in_a_job_name_does_not_crash_the_jobs_screen(services: Services) -> None:
    """The log pane's border title once parsed the job's name: ``[/link]`` without its opening raised."""
    services.scheduler.submit(JobSpec(name=LINK, command=[sys.executable, "-c", "pass"]))
    services.scheduler.submit(JobSpec(name=UNBALANCED, command=[sys.executable, "-c", "pass"]))
    app = app_for(services, live_s=3600)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await go(pilot, "5", JobsScreen)
        await pilot.press("down")
        await settle(pilot)
        check(app, f"log of job 1 {LINK}", UNBALANCED)
