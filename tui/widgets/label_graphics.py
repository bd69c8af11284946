"""Task images in a terminal graphics protocol (Kitty's, or Sixel) where the terminal speaks one.

`textual-image` draws them; half-block cells (`label_image`) stay the fallback and what tests and
snapshots see. Which protocol a terminal speaks is learned by asking it (an escape sequence and
its answer on stdin), and that can only be done before Textual owns the terminal: Textual's input
thread would swallow the answer. So `detect` runs in the launchers, before the app starts, and
remembers the answer for the labeling screen (`protocol`). With no terminal (tests, snapshots,
output piped), nothing is asked and the answer is ``halfblock``. ``MLBOX_LABELING_IMAGES``
chooses instead of asking (`LabelingSettings.images`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.tui.widgets.label_image import gray_grid

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from textual.widget import Widget

HALFBLOCK = "halfblock"
GRAPHICS = ("kitty", "sixel")
_chosen = HALFBLOCK


def protocol() -> str:
    """What `detect` found (``halfblock`` until it runs)."""
    return _chosen


def detect(choice: str = "auto") -> str:
    """Settle how images are drawn, asking the terminal when ``choice`` is ``auto``; call before the
    app runs. A terminal that answers neither query, or no terminal at all, gets half blocks."""
    global _chosen
    if choice == HALFBLOCK or choice in GRAPHICS:
        _chosen = choice
        return _chosen
    _chosen = HALFBLOCK
    if not _is_terminal():
        return _chosen
    try:
        # Importing it asks the terminal (Sixel's device attributes, then a Kitty graphics query,
        # 0.1 s each at most) and its cell size in pixels.
        import textual_image.renderable as renderable
        import textual_image.widget  # noqa: F401  (caches the cell size while it can still be asked)
    except Exception:  # a terminal that answers garbage must not keep the TUI from starting
        return _chosen
    if renderable.Image is renderable.TGPImage:
        _chosen = "kitty"
    elif renderable.Image is renderable.SixelImage:
        _chosen = "sixel"
    return _chosen


def _is_terminal() -> bool:
    out, inp = sys.__stdout__, sys.__stdin__
    return bool(out and inp and out.isatty() and inp.isatty())


def picture_widget(kind: str, *, id: str) -> Widget:
    """An empty image widget drawing with ``kind`` (``kitty`` or ``sixel``)."""
    from textual_image.widget import SixelImage, TGPImage

    cls: Any = TGPImage if kind == "kitty" else SixelImage
    widget: Widget = cls(None, id=id)
    return widget


def task_picture(data: dict[str, Any], max_side: int = 256) -> PILImage | None:
    """The task's image as Pillow holds it: an image file it names, or its ``pixels`` (grayscale, row
    by row, ``width`` wide) scaled up without smoothing so small images stay crisp. None where the
    task has neither (or the file does not read)."""
    from PIL import Image

    pixels, width = data.get("pixels"), data.get("width")
    if isinstance(pixels, list) and isinstance(width, int):
        if not all(isinstance(v, (int, float)) for v in pixels):
            return None
        grid = gray_grid([float(v) for v in pixels], width)
        if not grid:
            return None
        height = len(grid)
        img = Image.new("RGB", (width, height))
        img.putdata([px for row in grid for px in row])
        scale = max(1, max_side // max(width, height))
        return img.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    path = data.get("image")
    if isinstance(path, str):
        try:
            with Image.open(Path(path)) as opened:
                return opened.convert("RGB")
        except OSError:
            return None
    return None
