"""What the labeling service returns (the API encodes these as they are)."""

from __future__ import annotations

from typing import Any

import msgspec

from mlbox.labeling.schema import LabelSchema


class Project(msgspec.Struct, frozen=True):
    id: int
    name: str
    label_schema: LabelSchema
    instructions: str
    overlap: int
    model: str | None
    retrain_every: int | None
    created_at: float
    tasks: int = 0
    done: int = 0
    """Tasks with ``overlap`` labels."""
    labels: int = 0
    open_reviews: int = 0


class Prelabel(msgspec.Struct, frozen=True):
    model: str
    value: dict[str, Any]
    confidence: float | None


class Annotation(msgspec.Struct, frozen=True):
    id: int
    task_id: int
    annotator: str
    kind: str
    value: dict[str, Any] | None
    comment: str
    lead_time_s: float | None
    from_prelabel: bool
    created_at: float


class Task(msgspec.Struct, frozen=True):
    id: int
    project_id: int
    data: dict[str, Any]
    source: str
    priority: float
    prelabel: Prelabel | None = None
    annotations: list[Annotation] = []


class Review(msgspec.Struct, frozen=True):
    id: int
    task_id: int
    reason: str
    detail: str
    created_by: str
    created_at: float
    resolved_by: str | None
    resolved_value: dict[str, Any] | None


class ImportResult(msgspec.Struct, frozen=True):
    project: str
    imported: int
    prelabels: int
    first_id: int
    last_id: int


class ExportResult(msgspec.Struct, frozen=True):
    project: str
    format: str
    path: str
    rows: int
    digest: str
    run_id: int | None


class ModelAccuracy(msgspec.Struct, frozen=True):
    """One retraining of the project's model in the loop: what the labeling screen's accuracy chart
    draws, one point per retraining (accuracy against the labels it learned from)."""

    labels: int
    accuracy: float | None
    """On labels the model did not see (``method`` says how); None where too few labels to tell."""
    method: str
    """How ``accuracy`` was measured, e.g. ``5-fold CV``."""
    model: str
    """The registered model's name."""
    version: int | None
    run_id: int | None
    created_at: float


class Progress(msgspec.Struct, frozen=True):
    """What the labeling screen's status line shows for one annotator."""

    tasks: int
    done: int
    mine: int
    labels_per_hour: float
