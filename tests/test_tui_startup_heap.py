"""Once the TUI has painted and imported its other screens, what start-up made leaves the cyclic
garbage collector's view, so no full collection inside a key press walks it (issue 18)."""

from __future__ import annotations

import gc
import sys

from mlbox.services import Services
from mlbox.tui import app as app_module
from tests.test_tui import app_for, until


async def test_the_startup_heap_is_frozen_after_the_preload(services: Services) -> None:
    gc.unfreeze()  # as a fresh process: an earlier test's app may have frozen it
    app_module._heap_frozen = False
    app = app_for(services)
    async with app.run_test() as pilot:
        assert gc.get_freeze_count() == 0
        await until(pilot, lambda: gc.get_freeze_count() > 10_000, lambda: gc.get_freeze_count())
        assert "mlbox.tui.screens.labeling" in sys.modules  # frozen after the other screens' imports
    frozen = gc.get_freeze_count()
    async with app_for(services).run_test() as pilot:  # once per process
        await pilot.pause(app_module.PRELOAD_AFTER_S + 0.5)
        await pilot.app.workers.wait_for_complete()
    assert gc.get_freeze_count() <= frozen  # none added (frozen objects can still be freed)
