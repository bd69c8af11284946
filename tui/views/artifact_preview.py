"""What an artifact looks like in the terminal: text, JSON, YAML, CSV and Parquet as a table,
images in half-block cells, HTML named with the command that saves it to open. Pure over bytes.

An artifact can be large: the TUI reads at most `MAX_BYTES` of a text and
shows at most `MAX_ROWS` rows of a table. Parquet and images are decoded
only when previewed (pyarrow and Pillow are imported here, lazily).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from rich.style import Style
from rich.text import Text

from mlbox.textsafe import visible

Kind = Literal["text", "json", "yaml", "csv", "parquet", "image", "html", "binary"]
MAX_BYTES = 1 << 20
"""Read at most this much of an artifact to preview it (images and Parquet: whole, up to 32 MiB)."""
MAX_WHOLE = 32 << 20
MAX_ROWS = 500

SUFFIXES: dict[str, Kind] = {
    ".txt": "text", ".log": "text", ".md": "text", ".py": "text", ".cfg": "text", ".ini": "text",
    ".toml": "text", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".png": "image", ".jpg": "image", ".jpeg": "image", ".gif": "image",
    ".bmp": "image", ".webp": "image", ".html": "html", ".htm": "html", ".ipynb": "json",
}  # fmt: skip


def kind_of(path: str) -> Kind:
    return SUFFIXES.get(PurePosixPath(path).suffix.lower(), "binary")


def needs_whole(kind: Kind) -> bool:
    return kind in ("parquet", "image")


@dataclass
class Preview:
    kind: Kind
    text: Text | None = None
    """What to show as text (the content, an image's cells, or a note)."""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    """A table (CSV, Parquet): its columns and its first rows."""
    note: str = ""
    """One line above the content: how much is shown, or how to open it."""


def preview(path: str, data: bytes, *, run_id: int, width: int = 80, truncated: bool = False) -> Preview:
    """The preview of artifact ``path`` of run ``run_id`` from its first bytes ``data``."""
    kind = kind_of(path)
    cut = " (first 1 MiB)" if truncated else ""
    try:
        if kind == "json" and not truncated:
            pretty = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
            return Preview(kind, text=Text(visible(pretty, keep="\n")), note="JSON")
        if kind == "csv":
            return _csv(path, data, cut)
        if kind == "parquet":
            return _parquet(data)
        if kind == "image":
            return _image(data, width)
    except Exception as exc:  # a damaged file previews as what is wrong with it, never a crash
        return Preview(kind, text=Text(visible(f"cannot preview: {exc}")), note=kind)
    if kind == "html":
        name = PurePosixPath(path).name
        return Preview(
            kind,
            text=Text(visible(data[:2000].decode("utf-8", "replace"), keep="\n")),
            note=f"HTML: save it to open in a browser:  mlbox runs artifacts {run_id} {path} -o {name}",
        )
    if b"\x00" in data[:4096] and kind in ("binary",):
        return Preview(kind, note=f"binary, not shown; save it:  mlbox runs artifacts {run_id} {path} -o .")
    text = data.decode("utf-8", "replace")
    return Preview(kind, text=Text(visible(text, keep="\n\t")), note=f"{kind}{cut}")


def _csv(path: str, data: bytes, cut: str) -> Preview:
    dialect = "excel-tab" if path.lower().endswith(".tsv") else "excel"
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace")), dialect=dialect)
    header = next(reader, [])
    rows = [row for _, row in zip(range(MAX_ROWS), reader, strict=False)]
    return Preview("csv", columns=header, rows=rows, note=f"CSV, first {len(rows)} rows{cut}")


def _parquet(data: bytes) -> Preview:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    head = table.slice(0, MAX_ROWS).to_pylist()
    columns = table.column_names
    rows = [[_cell(r.get(c)) for c in columns] for r in head]
    return Preview(
        "parquet", columns=columns, rows=rows, note=f"Parquet, {table.num_rows:,} rows; first {len(rows)}"
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _image(data: bytes, width: int) -> Preview:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        size = img.size
        rgb = img.convert("RGB")
        cols = max(1, min(width, size[0]))
        rows2 = max(2, round(size[1] * cols / size[0] / 2) * 2)  # a cell is about twice as tall as wide
        small = rgb.resize((cols, rows2))
        return Preview(
            "image",
            text=half_blocks(small),
            note=f"image {size[0]}x{size[1]}, drawn {cols}x{rows2 // 2} cells",
        )


def half_blocks(img: object) -> Text:
    """An RGB image as ``▀`` cells: the upper pixel the foreground, the lower the background."""
    from PIL import Image

    assert isinstance(img, Image.Image)
    w, h = img.size
    px = img.load()
    assert px is not None
    text = Text()
    for y in range(0, h - 1, 2):
        for x in range(w):
            top, bottom = px[x, y], px[x, y + 1]
            text.append("▀", Style(color=_hex(top), bgcolor=_hex(bottom)))
        text.append("\n")
    return text


def _hex(pixel: object) -> str:
    r, g, b = pixel[:3]  # type: ignore[index]
    return f"#{r:02x}{g:02x}{b:02x}"
