"""Images drawn in the terminal with half-block cells: every terminal shows them.

One cell is two pixels stacked: the upper half block ``▀`` in the top pixel's
colour over a background of the bottom pixel's. Pure: a grid of RGB pixels in,
a rich `Text` out; reading and scaling the file (Pillow, lazily) is apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.style import Style
from rich.text import Text

RGB = tuple[int, int, int]


def half_blocks(pixels: Sequence[Sequence[RGB]]) -> Text:
    """``pixels`` (rows of RGB) as lines of ``▀`` cells, two pixel rows per line."""
    out = Text()
    for y in range(0, len(pixels), 2):
        top = pixels[y]
        bottom = pixels[y + 1] if y + 1 < len(pixels) else None
        for x, (r, g, b) in enumerate(top):
            if bottom is None:
                out.append("▀", Style(color=f"rgb({r},{g},{b})"))
            else:
                r2, g2, b2 = bottom[x]
                out.append("▀", Style(color=f"rgb({r},{g},{b})", bgcolor=f"rgb({r2},{g2},{b2})"))
        if y + 2 < len(pixels):
            out.append("\n")
    return out


def gray_grid(values: Sequence[float], width: int, scale: int = 1) -> list[list[RGB]]:
    """A flat grayscale image (``values`` row by row, any range) as RGB rows, each pixel ``scale`` times."""
    if width <= 0 or not values or len(values) % width:
        return []
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    rows: list[list[RGB]] = []
    for y in range(len(values) // width):
        row: list[RGB] = []
        for x in range(width):
            v = int(255 * (values[y * width + x] - low) / span)
            row.extend([(v, v, v)] * scale)
        rows.extend([row] * scale)
    return rows


def file_grid(path: Path, max_w: int, max_h: int) -> list[list[RGB]]:
    """The image at ``path`` scaled to fit ``max_w`` x ``max_h`` pixels (aspect kept), as RGB rows."""
    from PIL import Image

    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    ratio = min(max_w / rgb.width, max_h / rgb.height)
    size = (max(1, int(rgb.width * ratio)), max(1, int(rgb.height * ratio)))
    small = rgb.resize(size)
    w, h = size
    px = small.load()
    assert px is not None
    rows: list[list[RGB]] = []
    for y in range(h):
        row: list[RGB] = []
        for x in range(w):
            r, g, b = px[x, y]  # type: ignore[misc]
            row.append((int(r), int(g), int(b)))
        rows.append(row)
    return rows
