"""A project's label schema and the check of an annotation's value against it.

Pure (no I/O): the service, the importers (pre-labels) and the front ends all
validate through `check_value`, so a value outside the schema is refused the
same way whether it comes from a key press, an HTTP body or a Label Studio file.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from mlbox.store.errors import InvalidInput


class LabelSchema(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an annotator may give for one task; every part is optional but one must be there."""

    choices: list[str] = []
    """Classification labels (number keys 1..9 pick them in the TUI)."""
    multi: bool = False
    """Several choices per task (multi-label) instead of one."""
    spans: list[str] = []
    """Labels of text spans (named entities): ``{"start", "end", "label"}`` by character offset."""
    boxes: list[str] = []
    """Labels of bounding boxes on an image, as numbers ``{"x", "y", "w", "h", "label"}`` in pixels."""
    rating: tuple[int, int] | None = None
    """A numeric rating between these bounds, inclusive."""
    note: bool = False
    """A free-text note."""

    def parts(self) -> list[str]:
        """The value keys this schema allows."""
        out: list[str] = []
        if self.choices:
            out.append("labels" if self.multi else "label")
        if self.spans:
            out.append("spans")
        if self.boxes:
            out.append("boxes")
        if self.rating is not None:
            out.append("rating")
        if self.note:
            out.append("note")
        return out

    def brief(self) -> str:
        """One line for listings: ``choice: cat, dog · spans: PER · rating 1-5``."""
        bits: list[str] = []
        if self.choices:
            bits.append(("multi: " if self.multi else "choice: ") + ", ".join(self.choices))
        if self.spans:
            bits.append("spans: " + ", ".join(self.spans))
        if self.boxes:
            bits.append("boxes: " + ", ".join(self.boxes))
        if self.rating is not None:
            bits.append(f"rating {self.rating[0]}-{self.rating[1]}")
        if self.note:
            bits.append("note")
        return " · ".join(bits)


def parse_schema(raw: Any) -> LabelSchema:
    """A schema from JSON-like data; `InvalidInput` naming ``schema`` when it is not one."""
    try:
        schema = msgspec.convert(raw, LabelSchema)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"label schema: {exc}", field="schema") from None
    for name, labels in (("choices", schema.choices), ("spans", schema.spans), ("boxes", schema.boxes)):
        if len(set(labels)) != len(labels):
            raise InvalidInput(f"label schema: {name} has a label twice", field="schema")
        if any(not label.strip() for label in labels):
            raise InvalidInput(f"label schema: {name} has an empty label", field="schema")
    if schema.rating is not None and schema.rating[0] >= schema.rating[1]:
        raise InvalidInput("label schema: rating needs low < high", field="schema")
    if not schema.parts():
        raise InvalidInput(
            "label schema: give at least one of choices, spans, boxes, rating, note", field="schema"
        )
    return schema


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InvalidInput(f"{where} must be a finite number, got {v!r}", field=where)
    return float(v)


def check_value(schema: LabelSchema, value: Any, *, text: str | None = None) -> dict[str, Any]:
    """``value`` as stored, when the schema allows it; `InvalidInput` naming the offending part.

    ``text`` (the task's text, when known) bounds span offsets.
    """
    if not isinstance(value, dict) or not value:
        raise InvalidInput("an annotation value is a non-empty JSON object", field="value")
    allowed = schema.parts()
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key not in allowed:
            raise InvalidInput(
                f"value.{key} is not in this project's schema (it allows {', '.join(allowed)})",
                field=f"value.{key}",
            )
        if key == "label":
            if v not in schema.choices:
                raise InvalidInput(f"label {v!r} is not one of {schema.choices}", field="value.label")
            out[key] = v
        elif key == "labels":
            if not isinstance(v, list) or any(x not in schema.choices for x in v) or len(set(v)) != len(v):
                raise InvalidInput(
                    f"labels must be distinct labels from {schema.choices}, got {v!r}", field="value.labels"
                )
            out[key] = sorted(v, key=schema.choices.index)
        elif key == "spans":
            out[key] = _spans(schema, v, text)
        elif key == "boxes":
            out[key] = _boxes(schema, v)
        elif key == "rating":
            assert schema.rating is not None
            low, high = schema.rating
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise InvalidInput(
                    f"rating must be a whole number {low}..{high}, got {v!r}", field="value.rating"
                )
            out[key] = v
        elif key == "note":
            if not isinstance(v, str):
                raise InvalidInput("note must be text", field="value.note")
            out[key] = v
    return out


def _spans(schema: LabelSchema, v: Any, text: str | None) -> list[dict[str, Any]]:
    if not isinstance(v, list):
        raise InvalidInput("spans must be a list", field="value.spans")
    out = []
    for i, s in enumerate(v):
        where = f"value.spans[{i}]"
        if not isinstance(s, dict) or set(s) != {"start", "end", "label"}:
            raise InvalidInput(f"{where} must have exactly start, end, label", field=where)
        start, end = s["start"], s["end"]
        if (
            isinstance(start, bool)
            or isinstance(end, bool)
            or not isinstance(start, int)
            or not isinstance(end, int)
        ):
            raise InvalidInput(f"{where}: start and end are character offsets", field=where)
        if not 0 <= start < end or (text is not None and end > len(text)):
            raise InvalidInput(f"{where}: offsets {start}..{end} are outside the text", field=where)
        if s["label"] not in schema.spans:
            raise InvalidInput(f"{where}: label {s['label']!r} is not one of {schema.spans}", field=where)
        out.append({"start": start, "end": end, "label": s["label"]})
    return sorted(out, key=lambda s: (s["start"], s["end"]))


def _boxes(schema: LabelSchema, v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, list):
        raise InvalidInput("boxes must be a list", field="value.boxes")
    out = []
    for i, b in enumerate(v):
        where = f"value.boxes[{i}]"
        if not isinstance(b, dict) or set(b) != {"x", "y", "w", "h", "label"}:
            raise InvalidInput(f"{where} must have exactly x, y, w, h, label", field=where)
        x, y, w, h = (_number(b[k], where) for k in ("x", "y", "w", "h"))
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise InvalidInput(f"{where}: x, y must be >= 0 and w, h > 0", field=where)
        if b["label"] not in schema.boxes:
            raise InvalidInput(f"{where}: label {b['label']!r} is not one of {schema.boxes}", field=where)
        out.append({"x": x, "y": y, "w": w, "h": h, "label": b["label"]})
    return out


def class_of(value: dict[str, Any]) -> str | None:
    """The single class a value names (what agreement and consensus compare), if it names one."""
    label = value.get("label")
    if isinstance(label, str):
        return label
    labels = value.get("labels")
    if isinstance(labels, list):
        return "|".join(labels)
    return None
