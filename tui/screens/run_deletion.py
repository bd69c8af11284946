"""The Experiments screen's delete, restore and deleted-runs keys (its actions call these).

``d`` (or Delete) deletes the marked runs, else the run under the cursor, or, in the
experiments sidebar, the highlighted experiment with its runs; each after a confirmation
(`mlbox.tui.deleting`). ``D`` switches the table (and the sidebar) to the deleted runs and
experiments, where ``R`` restores what is under the cursor. Deleted things stay restorable
for the retention period (``MLBOX_RETENTION_DAYS``) until ``mlbox gc`` purges them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

from mlbox.tui.deleting import Deleted, confirm_then, restorable, run_off_thread
from mlbox.tui.views.saved_views import ALL
from mlbox.tui.widgets.experiments_list import ExperimentsList

if TYPE_CHECKING:
    from mlbox.tui.screens.experiments import ExperimentsScreen

DELETE_BINDINGS = [
    Binding("d,delete", "delete", "Delete", show=False),
    Binding("D", "toggle_deleted", "Deleted runs", show=False),
    Binding("R", "restore", "Restore", show=False),
]
DELETED_SUBTITLE = "deleted runs and experiments · R restores · D goes back"


def _sidebar_experiment(screen: ExperimentsScreen) -> str | None:
    """The experiment highlighted in the sidebar when it has the focus (None: the table has it)."""
    sidebar = screen.query_one(ExperimentsList)
    if screen.focused is not sidebar:
        return None
    index = sidebar.highlighted
    return ALL if not index else sidebar.names[index - 1]


def _chosen_runs(screen: ExperimentsScreen) -> list[int]:
    table = screen.table
    current = table.current_run_id
    return list(table.marked) or ([] if current is None else [current])


def delete(screen: ExperimentsScreen) -> None:
    if screen.lifecycle == "deleted":
        screen.notify("Already deleted: R restores, D shows the live runs.", title="Delete")
        return
    tracking, days = screen.tracking, screen.ctx.services.settings.retention_days
    experiment = _sidebar_experiment(screen)
    if experiment == ALL:
        screen.notify("Highlight one experiment to delete.", title="Delete", severity="warning")
        return
    if experiment is not None:
        confirm_then(
            screen,
            "Delete experiment",
            f"experiment {experiment} and its runs",
            restorable(days, "D, then R in the sidebar"),
            lambda: f"deleted experiment {tracking.delete_experiment(experiment).name}",
        )
        return
    ids = _chosen_runs(screen)
    if not ids:
        screen.notify("No run under the cursor.", title="Delete", severity="warning")
        return
    names = ", ".join(f"{i} ({r.name})" if (r := screen.table.run_by_id.get(i)) else str(i) for i in ids)

    def delete() -> str:
        for run_id in ids:
            tracking.delete_run(run_id)
        return f"deleted run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"

    confirm_then(
        screen,
        "Delete runs" if len(ids) > 1 else "Delete run",
        f"run {names}",
        restorable(days, "D shows deleted runs, R restores"),
        delete,
    )


def restore(screen: ExperimentsScreen) -> None:
    if screen.lifecycle != "deleted":
        screen.notify("D shows the deleted runs; R restores one there.", title="Restore")
        return
    tracking = screen.tracking
    experiment = _sidebar_experiment(screen)
    if experiment not in (None, ALL):
        run_off_thread(screen, lambda: f"restored experiment {tracking.restore_experiment(experiment).name}")
        return
    ids = _chosen_runs(screen)
    if ids:
        run_off_thread(
            screen, lambda: "restored run " + ", ".join(str(tracking.restore_run(i).id) for i in ids)
        )


def toggle_deleted(screen: ExperimentsScreen) -> None:
    screen.lifecycle = "active" if screen.lifecycle == "deleted" else "deleted"
    screen.sub_title = DELETED_SUBTITLE if screen.lifecycle == "deleted" else ""
    screen.choose_experiment(ALL)
    screen.list_experiments()


def deleted(screen: ExperimentsScreen, message: Deleted) -> None:
    screen.notify(message.text, title="Experiments")
    screen.table.clear_marks()
    screen.request("replace", screen.applied_filter)
    screen.list_experiments()
