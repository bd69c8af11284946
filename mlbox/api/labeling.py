"""The labeling service over HTTP (every route needs the token), so another front end could label.

The annotator is named in each call: by the ``X-Mlbox-Annotator`` header (a
front end or proxy that knows who its user is sets it once per session), or
by the body's ``annotator`` field (the reviewer's ``reviewer``) as before.
Where both are given they must agree, so a client cannot label under another
name than the one its header carries. The header names who labels; it grants
nothing: every route still needs the bearer token. Paths named in imports and
exports are on the appliance's machine.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from mlbox.api.ranges import INT64_MAX, Int64
from mlbox.labeling.schema import LabelSchema
from mlbox.labeling.schemas import (
    Annotation,
    ExportResult,
    ImportResult,
    ModelAccuracy,
    Progress,
    Project,
    Review,
    Task,
)
from mlbox.labeling.service import LabelingService
from mlbox.store.errors import InvalidInput

ANNOTATOR_HEADER = "X-Mlbox-Annotator"
AnnotatorHeader = Annotated[
    str | None,
    HeaderParameter(
        name=ANNOTATOR_HEADER.lower(),
        required=False,
        description="who labels; the body's annotator, where given, must be the same",
    ),
]


def who(header: str | None, body: str, field: str = "annotator") -> str:
    """The annotator: the header's, else the body's; both given and different is refused."""
    if header is not None and header.strip():
        if body and body != header:
            raise InvalidInput(
                f"the {ANNOTATOR_HEADER} header names {header!r} but the body's {field} is {body!r}",
                field=field,
            )
        return header
    if not body:
        raise InvalidInput(
            f"name the annotator: the {ANNOTATOR_HEADER} header or the body's {field!r}", field=field
        )
    return body


class NewProject(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    label_schema: LabelSchema
    instructions: str = ""
    overlap: Int64 = 1


class AddTasks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tasks given inline (``tasks``: data objects) or read from a file on the appliance (``path``)."""

    tasks: list[dict[str, Any]] | None = None
    path: str | None = None
    format: str | None = None


class NextTasks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    annotator: str = ""
    n: Int64 = 1


class Label(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    value: dict[str, Any]
    annotator: str = ""
    comment: str = ""
    lead_time_s: float | None = None
    from_prelabel: bool = False


class Skip(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    annotator: str = ""
    comment: str = ""


class Flag(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    annotator: str = ""
    detail: str = ""


class Resolve(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reviewer: str = ""
    value: dict[str, Any] | None = None


class Export(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    format: str | None = None


class PrelabelBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str
    """``NAME@ALIAS`` (or ``NAME/VERSION``) in the registry."""
    strategy: str = "margin"


class Consensus(msgspec.Struct, frozen=True):
    task_id: int
    value: dict[str, Any]
    how: str


class LabelingController(Controller):
    path = "/api/v1/labeling"
    tags = ("labeling",)

    @get("/projects", operation_id="listLabelingProjects", sync_to_thread=True, summary="All projects")
    def list_all(self, labeling: NamedDependency[LabelingService]) -> list[Project]:
        return labeling.projects()

    @post("/projects", operation_id="createLabelingProject", sync_to_thread=True, summary="A new project")
    def create(self, labeling: NamedDependency[LabelingService], data: JSONBody[NewProject]) -> Project:
        return labeling.create_project(
            data.name, data.label_schema, instructions=data.instructions, overlap=data.overlap
        )

    @get(
        "/projects/{name:str}", operation_id="getLabelingProject", sync_to_thread=True, summary="One project"
    )
    def get_project(self, labeling: NamedDependency[LabelingService], name: FromPath[str]) -> Project:
        return labeling.project(name)

    @get("/projects/{name:str}/tasks", operation_id="listLabelingTasks", sync_to_thread=True, summary="Tasks")
    def tasks(
        self,
        labeling: NamedDependency[LabelingService],
        name: FromPath[str],
        after: Annotated[int, QueryParameter(ge=0, le=INT64_MAX, description="tasks with a larger id")] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[Task]:
        return labeling.tasks(name, after=after, limit=limit)

    @post(
        "/projects/{name:str}/tasks",
        operation_id="addLabelingTasks",
        sync_to_thread=True,
        summary="Add tasks inline or from a file (all or nothing)",
    )
    def add(
        self, labeling: NamedDependency[LabelingService], name: FromPath[str], data: JSONBody[AddTasks]
    ) -> ImportResult:
        from mlbox.store.errors import InvalidInput

        if (data.tasks is None) == (data.path is None):
            raise InvalidInput("give either tasks or path", field="tasks")
        if data.path is not None:
            return labeling.import_tasks(name, data.path, data.format)
        assert data.tasks is not None
        return labeling.add_tasks(name, data.tasks)

    @post(
        "/projects/{name:str}/next",
        operation_id="nextLabelingTasks",
        status_code=200,
        sync_to_thread=True,
        summary="Claim the annotator's next tasks",
    )
    def next_tasks(
        self,
        labeling: NamedDependency[LabelingService],
        name: FromPath[str],
        data: JSONBody[NextTasks],
        annotator: AnnotatorHeader = None,
    ) -> list[Task]:
        return labeling.next_tasks(name, who(annotator, data.annotator), data.n)

    @get("/tasks/{task_id:int}", operation_id="getLabelingTask", sync_to_thread=True, summary="One task")
    def task(self, labeling: NamedDependency[LabelingService], task_id: FromPath[int]) -> Task:
        return labeling.task(task_id)

    @post(
        "/tasks/{task_id:int}/annotations",
        operation_id="annotateLabelingTask",
        sync_to_thread=True,
        summary="Label a task (replaces the annotator's earlier label)",
    )
    def annotate(
        self,
        labeling: NamedDependency[LabelingService],
        task_id: FromPath[int],
        data: JSONBody[Label],
        annotator: AnnotatorHeader = None,
    ) -> Annotation:
        return labeling.annotate(
            task_id,
            who(annotator, data.annotator),
            data.value,
            comment=data.comment,
            lead_time_s=data.lead_time_s,
            from_prelabel=data.from_prelabel,
        )

    @post("/tasks/{task_id:int}/skip", operation_id="skipLabelingTask", sync_to_thread=True, summary="Skip")
    def skip(
        self,
        labeling: NamedDependency[LabelingService],
        task_id: FromPath[int],
        data: JSONBody[Skip],
        annotator: AnnotatorHeader = None,
    ) -> Annotation:
        return labeling.skip(task_id, who(annotator, data.annotator), comment=data.comment)

    @post("/tasks/{task_id:int}/flag", operation_id="flagLabelingTask", sync_to_thread=True, summary="Flag")
    def flag(
        self,
        labeling: NamedDependency[LabelingService],
        task_id: FromPath[int],
        data: JSONBody[Flag],
        annotator: AnnotatorHeader = None,
    ) -> Review:
        return labeling.flag(task_id, who(annotator, data.annotator), data.detail)

    @get(
        "/projects/{name:str}/annotations",
        operation_id="listLabelingAnnotations",
        sync_to_thread=True,
        summary="Every label",
    )
    def annotations(
        self, labeling: NamedDependency[LabelingService], name: FromPath[str]
    ) -> list[Annotation]:
        return labeling.annotations(name)

    @get(
        "/projects/{name:str}/reviews",
        operation_id="listLabelingReviews",
        sync_to_thread=True,
        summary="Reviews",
    )
    def reviews(self, labeling: NamedDependency[LabelingService], name: FromPath[str]) -> list[Review]:
        return labeling.reviews(name)

    @post(
        "/reviews/{review_id:int}/resolve",
        operation_id="resolveLabelingReview",
        status_code=200,
        sync_to_thread=True,
        summary="Settle a review; its value becomes the consensus label",
    )
    def resolve(
        self,
        labeling: NamedDependency[LabelingService],
        review_id: FromPath[int],
        data: JSONBody[Resolve],
        annotator: AnnotatorHeader = None,
    ) -> Review:
        return labeling.resolve(review_id, who(annotator, data.reviewer, "reviewer"), data.value)

    @get(
        "/projects/{name:str}/consensus",
        operation_id="labelingConsensus",
        sync_to_thread=True,
        summary="A label per task: the reviewer's, or the majority",
    )
    def consensus(self, labeling: NamedDependency[LabelingService], name: FromPath[str]) -> list[Consensus]:
        return [Consensus(t, v, how) for t, (v, how) in sorted(labeling.consensus(name).items())]

    @post(
        "/projects/{name:str}/prelabel",
        operation_id="prelabelLabelingProject",
        status_code=200,
        sync_to_thread=True,
        summary="Pre-label open tasks with a registered model and order the queue by its uncertainty",
    )
    def prelabel(
        self, labeling: NamedDependency[LabelingService], name: FromPath[str], data: JSONBody[PrelabelBody]
    ) -> dict[str, int]:
        return {"prelabeled": labeling.prelabel(name, data.model, strategy=data.strategy)}

    @get(
        "/projects/{name:str}/agreement",
        operation_id="labelingAgreement",
        sync_to_thread=True,
        summary="Cohen's and Fleiss' kappa, Krippendorff's alpha, per label and annotator",
    )
    def agreement(self, labeling: NamedDependency[LabelingService], name: FromPath[str]) -> dict[str, Any]:
        return dataclasses.asdict(labeling.agreement(name))

    @get(
        "/projects/{name:str}/accuracy",
        operation_id="labelingModelAccuracy",
        sync_to_thread=True,
        summary="The model in the loop's accuracy at each retraining, against the labels it learned from",
    )
    def accuracy(
        self, labeling: NamedDependency[LabelingService], name: FromPath[str]
    ) -> list[ModelAccuracy]:
        return labeling.accuracy_history(name)

    @get(
        "/projects/{name:str}/progress",
        operation_id="labelingProgress",
        sync_to_thread=True,
        summary="Progress",
    )
    def progress(
        self,
        labeling: NamedDependency[LabelingService],
        name: FromPath[str],
        annotator: Annotated[str, QueryParameter(description="whose labels per hour")],
    ) -> Progress:
        return labeling.progress(name, annotator)

    @post(
        "/projects/{name:str}/export",
        operation_id="exportLabelingProject",
        sync_to_thread=True,
        summary="Write the labels (Parquet is recorded as a dataset); never over an existing file",
    )
    def export(
        self, labeling: NamedDependency[LabelingService], name: FromPath[str], data: JSONBody[Export]
    ) -> ExportResult:
        return labeling.export(name, data.path, data.format)
