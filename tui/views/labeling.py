"""What the labeling screen shows, as pure functions of the service's structs.

Task text is user data: it is shown literally (control characters escaped,
never parsed as markup), with its spans highlighted by offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from mlbox.labeling.schema import LabelSchema
from mlbox.labeling.schemas import Prelabel, Progress, Project
from mlbox.textsafe import visible

SPAN_STYLES = (
    "bold black on #e3b341",
    "bold black on #58a6ff",
    "bold black on #3fb950",
    "bold black on #f778ba",
)


def highlighted(text: str, spans: Sequence[dict[str, Any]], labels: Sequence[str]) -> Text:
    """``text`` shown literally with each span in its label's colour and the label after it."""
    out = Text()
    pos = 0
    for s in sorted(spans, key=lambda s: (s["start"], s["end"])):
        start, end = max(s["start"], pos), min(s["end"], len(text))
        if start >= end:
            continue
        out.append(visible(text[pos:start], keep="\n"))
        style = (
            SPAN_STYLES[labels.index(s["label"]) % len(SPAN_STYLES)] if s["label"] in labels else "reverse"
        )
        out.append(visible(text[start:end], keep="\n"), style)
        out.append(f"[{visible(s['label'])}]", "dim")
        pos = end
    out.append(visible(text[pos:], keep="\n"))
    return out


def data_lines(data: dict[str, Any], skip: Sequence[str] = ()) -> Text:
    """The task's other fields, one ``key: value`` line each, literal."""
    out = Text()
    for k, v in data.items():
        if k in skip:
            continue
        shown = v if isinstance(v, str) else repr(v)
        if len(shown) > 200:
            shown = shown[:199] + "…"
        if out:
            out.append("\n")
        out.append(visible(str(k)) + ": ", "dim")
        out.append(visible(shown))
    return out


def describe(value: dict[str, Any] | None) -> str:
    """A value in a few words: ``dog``, ``cat+bird``, ``2 spans``, ``rating 4``."""
    if not value:
        return "—"
    bits = []
    if "label" in value:
        bits.append(str(value["label"]))
    if "labels" in value:
        bits.append("+".join(value["labels"]) or "none")
    if value.get("spans"):
        bits.append(f"{len(value['spans'])} spans")
    if value.get("boxes"):
        bits.append(f"{len(value['boxes'])} boxes")
    if "rating" in value:
        bits.append(f"rating {value['rating']}")
    if value.get("note"):
        bits.append("note")
    return ", ".join(bits)


def prelabel_line(pre: Prelabel | None) -> Text:
    if pre is None:
        return Text("no pre-label", style="dim")
    conf = "" if pre.confidence is None else f" ({pre.confidence:.0%})"
    out = Text("pre-label: ", style="dim")
    out.append(visible(describe(pre.value)) + conf, "bold #58a6ff")
    out.append(f"  from {visible(pre.model)}  · a accepts", "dim")
    return out


def choices_line(schema: LabelSchema, chosen: Sequence[str] = ()) -> Text:
    """The number keys and their labels; chosen ones (multi-label) lit."""
    out = Text()
    for i, c in enumerate(schema.choices[:9], 1):
        if out:
            out.append("  ")
        out.append(f" {i} ", "bold reverse")
        out.append(" " + visible(c), "bold #3fb950" if c in chosen else "")
    if schema.rating is not None and not schema.choices:
        low, high = schema.rating
        out.append(f"rating: number keys {low}-{min(high, 9)}", "dim")
    if schema.multi:
        out.append("   enter saves", "dim")
    return out


def bar(done: int, total: int, width: int = 24) -> str:
    filled = 0 if total <= 0 else round(width * done / total)
    return "█" * filled + "░" * (width - filled)


def status_line(project: str, annotator: str, progress: Progress | None) -> Text:
    out = Text()
    out.append(visible(project), "bold")
    out.append("  annotator ", "dim")
    out.append(visible(annotator), "bold #d29922")
    if progress is not None:
        out.append(f"  {bar(progress.done, progress.tasks)} {progress.done}/{progress.tasks}", "#3fb950")
        out.append(f"  mine {progress.mine}  {progress.labels_per_hour:.0f} labels/h", "dim")
    return out


def project_row(p: Project) -> tuple[str, ...]:
    pct = f"{100 * p.done / p.tasks:.0f}%" if p.tasks else "—"
    return (
        p.name,
        str(p.tasks),
        str(p.done),
        pct,
        str(p.labels),
        str(p.open_reviews),
        p.label_schema.brief(),
    )
