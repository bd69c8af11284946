"""The pipeline's DAG, drawn by `mlbox.pipelines.dagtext`, each box coloured by its step's state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from mlbox.pipelines.dagtext import draw, step_label
from mlbox.pipelines.schemas import StepRun
from mlbox.tui.views.pipelines import STATE_STYLES


def dag_text(steps: list[StepRun], *, selected: str | None = None, box_w: int = 20) -> Text:
    """The drawing as literal text (step names are never read as markup), boxes styled."""
    by_node = {s.node: s for s in steps}
    labels = {n: (n, step_label(s.state, s.duration_s, s.attempt)) for n, s in by_node.items()}
    lines, placed = draw({n: s.deps for n, s in by_node.items()}, labels, box_w=box_w)
    texts = [Text(line) for line in lines]
    for p in placed:
        style = STATE_STYLES.get(by_node[p.node].state, "")
        if p.node == selected:
            style = f"{style} reverse".strip()
        for r in range(p.row, min(p.row + p.height, len(texts))):
            texts[r].stylize(style, p.col, p.col + p.width)
    return Text("\n").join(texts)


class DagView(Static):
    """A static drawing; its container scrolls when the graph is wider or taller than the screen."""

    def show(self, steps: list[StepRun], selected: str | None = None) -> None:
        self.update(dag_text(steps, selected=selected) if steps else Text("no run selected", style="dim"))
