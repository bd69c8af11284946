"""The monitoring service over HTTP (every route needs the token): monitors, alerts, references,
window evaluations, the HTML report, and late labels (``POST /api/v1/feedback``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from mlbox.monitoring.schemas import (
    Alert,
    ColumnTest,
    Evaluation,
    FeedbackItem,
    FeedbackResult,
    Monitor,
    MonitorRun,
    Reference,
)
from mlbox.monitoring.service import MonitoringService


class FeedbackBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Labels for logged predictions, joined by request id (and row, 0 for a one-row request)."""

    labels: list[FeedbackItem]


class CreateMonitor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str
    """``NAME@ALIAS``."""
    window_s: float = 3600.0
    every_s: float | None = None
    checks: list[str] | None = None
    thresholds: dict[str, float] = {}
    segment: str | None = None
    """A logged column whose groups the ``bias`` check compares."""
    command: str | None = None
    column_tests: dict[str, ColumnTest] = {}
    """Per-column drift test and/or threshold, e.g. ``{"age": {"test": "psi", "threshold": 0.2}}``."""
    """A local command run (no shell) when an alert is raised, the alert in MLBOX_ALERT_* variables."""


class Report(msgspec.Struct, frozen=True):
    model: str
    html: str
    """A self-contained page: save it as ``report.html``."""


class SetReference(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A Parquet/CSV file on the appliance's machine, or (``from_log``) a window of the log."""

    path: str | None = None
    from_log: bool = False
    since: float | None = None
    until: float | None = None


class MonitoringController(Controller):
    """Mounted at ``/api/v1`` so late labels live at ``/api/v1/feedback`` beside ``/api/v1/monitors``."""

    path = "/api/v1"
    tags = ("monitoring",)

    @post(
        "/feedback",
        operation_id="postFeedback",
        status_code=200,
        sync_to_thread=True,
        summary="Store late labels",
    )
    def post_feedback(
        self, monitoring: NamedDependency[MonitoringService], data: JSONBody[FeedbackBody]
    ) -> FeedbackResult:
        return monitoring.add_feedback(data.labels)

    @get("/monitors", operation_id="listMonitors", sync_to_thread=True, summary="Every monitor")
    def list_all(self, monitoring: NamedDependency[MonitoringService]) -> list[Monitor]:
        return monitoring.list()

    @post("/monitors", operation_id="createMonitor", sync_to_thread=True, summary="Monitor a model alias")
    def create(
        self, monitoring: NamedDependency[MonitoringService], data: JSONBody[CreateMonitor]
    ) -> Monitor:
        return monitoring.create_monitor(
            data.model,
            window_s=data.window_s,
            every_s=data.every_s,
            checks=data.checks,
            thresholds=dict(data.thresholds),
            command=data.command,
            segment=data.segment,
            column_tests=data.column_tests,
        )

    @get("/monitors/{monitor_id:int}", operation_id="getMonitor", sync_to_thread=True, summary="One monitor")
    def get_one(self, monitoring: NamedDependency[MonitoringService], monitor_id: FromPath[int]) -> Monitor:
        return monitoring.monitor(monitor_id)

    @delete(
        "/monitors/{monitor_id:int}",
        operation_id="deleteMonitor",
        sync_to_thread=True,
        summary="Delete a monitor",
    )
    def delete_one(self, monitoring: NamedDependency[MonitoringService], monitor_id: FromPath[int]) -> None:
        monitoring.delete_monitor(monitor_id)

    @post(
        "/monitors/{monitor_id:int}/run",
        operation_id="runMonitor",
        status_code=200,
        sync_to_thread=True,
        summary="Run a monitor now (alerts raised or cleared)",
    )
    def run(self, monitoring: NamedDependency[MonitoringService], monitor_id: FromPath[int]) -> MonitorRun:
        return monitoring.run_monitor(monitor_id)

    @get("/monitors/alerts", operation_id="listAlerts", sync_to_thread=True, summary="Alerts, newest first")
    def alerts(
        self,
        monitoring: NamedDependency[MonitoringService],
        open_only: Annotated[bool, QueryParameter(name="open", description="only those not cleared")] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
    ) -> list[Alert]:
        return monitoring.alerts(open_only=open_only, limit=limit)

    @get(
        "/monitors/references",
        operation_id="listReferences",
        sync_to_thread=True,
        summary="Stored references",
    )
    def references(self, monitoring: NamedDependency[MonitoringService]) -> list[Reference]:
        return monitoring.references()

    @post(
        "/monitors/references/{ref:str}",
        operation_id="setReference",
        sync_to_thread=True,
        summary="Store the reference of a model version (NAME@ALIAS or NAME/VERSION)",
    )
    def set_reference(
        self, monitoring: NamedDependency[MonitoringService], ref: FromPath[str], data: JSONBody[SetReference]
    ) -> Reference:
        return monitoring.set_reference(
            ref, path=data.path, from_log=data.from_log, since=data.since, until=data.until
        )

    @get(
        "/monitors/evaluate/{ref:str}",
        operation_id="evaluateModel",
        sync_to_thread=True,
        summary="Drift, data quality, outliers and performance of a window of logged traffic",
    )
    def evaluate(
        self,
        monitoring: NamedDependency[MonitoringService],
        ref: FromPath[str],
        since: Annotated[float | None, QueryParameter(description="window start, unix seconds")] = None,
        until: Annotated[float | None, QueryParameter(description="window end (excluded)")] = None,
        last: Annotated[int | None, QueryParameter(ge=1, le=100_000_000)] = None,
        segment: Annotated[str | None, QueryParameter(description="a column to measure bias across")] = None,
    ) -> Evaluation:
        return monitoring.evaluate(ref, since=since, until=until, last=last, segment=segment)

    @get(
        "/monitors/report/{ref:str}",
        operation_id="monitorReport",
        sync_to_thread=True,
        summary="A self-contained HTML report of a window (no external reference), as a JSON string",
    )
    def report(
        self,
        monitoring: NamedDependency[MonitoringService],
        ref: FromPath[str],
        since: Annotated[float | None, QueryParameter(description="window start, unix seconds")] = None,
        until: Annotated[float | None, QueryParameter(description="window end (excluded)")] = None,
    ) -> Report:
        # the API serves no HTML (`mlbox.api.app.no_html`): the page travels as a JSON string
        return Report(ref, monitoring.report(ref, since=since, until=until))
