"""The experiments sidebar: "all experiments" and each experiment with its run count.

Choosing an entry (enter, or a click) narrows the runs table beside it to that
experiment; the names are user text, shown inert.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from mlbox.tracking.schemas import Experiment
from mlbox.tui.views import format as fmt
from mlbox.tui.views.saved_views import ALL

ALL_ID = "\x00all"
"""The option id of "all experiments" (no experiment name holds a NUL)."""


def entry(label: Text, count: int, width: int) -> Text:
    """``label`` and ``count`` on one line of ``width`` cells, the label clipped with an ellipsis."""
    number = f"{count:,}"
    room = max(width - len(number) - 1, 4)
    if len(label) > room:
        label.truncate(room - 1)
        label.append("…")
    label.append(" " * (width - len(label) - len(number)))
    label.append(number, style="dim")
    return label


class ExperimentsList(OptionList):
    DEFAULT_CSS = """
    ExperimentsList {
        width: 24;
        height: 1fr;
        border: round $panel-lighten-1;
        border-title-color: $text-muted;
    }
    ExperimentsList:focus {
        border: round $accent;
    }
    """

    class Chosen(Message):
        """The user chose an experiment (``ALL`` for every one)."""

        def __init__(self, experiment: str) -> None:
            super().__init__()
            self.experiment = experiment

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.names: list[str] = []
        self.experiments: Sequence[Experiment] | None = None
        self.total: int | None = None
        """The count beside "all experiments" when it is not the sum of the experiments' counts."""
        self.chosen = ALL

    def on_mount(self) -> None:
        self.border_title = "experiments"

    def on_resize(self) -> None:
        if self.experiments is not None:
            self.show(self.experiments, total=self.total)

    def show(self, experiments: Sequence[Experiment], *, total: int | None = None) -> None:
        """The entries for ``experiments``; the highlight stays on its experiment.

        ``total`` is the count of "all experiments" where the experiments' own
        counts do not add up to it: deleted runs of experiments that are not
        deleted are under no deleted experiment. Drawn again when the list's
        width changes (the first answer can come before the first layout), so
        the counts stay right-aligned.
        """
        self.experiments, self.total = experiments, total
        names = [e.name for e in experiments]
        width = max(self.scrollable_content_region.width, 12)
        if total is None:
            total = sum(e.run_count for e in experiments)
        highlighted = self.names[self.highlighted - 1] if self.highlighted and self.names else None
        options = [Option(entry(Text("all experiments", style="italic"), total, width), id=ALL_ID)]
        options += [Option(entry(fmt.inert(e.name), e.run_count, width), id=e.name) for e in experiments]
        self.clear_options()
        self.add_options(options)
        self.names = names
        if highlighted in names:
            self.highlighted = names.index(highlighted) + 1
        elif self.chosen in names:
            self.highlighted = names.index(self.chosen) + 1
        else:
            self.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id
        self.chosen = ALL if option_id in (None, ALL_ID) else option_id
        self.post_message(self.Chosen(self.chosen))
