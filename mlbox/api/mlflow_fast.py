"""MLflow's metric logging routes answered before Litestar routes them.

MLflow's client sends one request per ``log_metric`` call and waits for its
answer, so the rate it logs at is one over the time a request takes. Through
Litestar a request spends most of its server CPU in the framework (routing,
the guards, parsing the handler's signature, a worker thread, the response
objects), not in the work. Here ``POST .../runs/log-metric`` and
``.../runs/log-batch`` (metrics only) are read with msgspec and handed to the
`MetricIntake` by the same functions the Litestar handlers call
(`mlbox.mlflow.protocol.metric_points`, `MetricIntake.add`), after the same
Host and token checks (`mlbox.api.security`).

Anything this path would not answer ``200 {}`` (a wrong host or token, a body
that is not what the client sends, a bad value, an unknown run, params or tags
in a batch, a full buffer) is handed to Litestar with the body replayed, so
the Litestar handlers stay the one reference for errors and for everything
else. Installed by `install` as the app's ``asgi_handler`` around whatever
handler was there (the scoring fast path), like `ScoringFastPath`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Litestar

from mlbox.api.mlflow_errors import API_PREFIXES
from mlbox.api.security import accepted_names, bearer_matches, check_host
from mlbox.mlflow import protocol as p
from mlbox.mlflow.intake import close_intake, intake_for
from mlbox.serving.admission import Admission
from mlbox.store.errors import MlboxError
from mlbox.tracking.service import TrackingService

ROUTES: dict[str, str] = {
    **{f"{prefix}/runs/log-metric": "metric" for prefix in API_PREFIXES},
    **{f"{prefix}/runs/log-batch": "batch" for prefix in API_PREFIXES},
}
OK_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]
RUN_CHECK_S = 1.0
"""How long a run found to exist is taken to exist without asking SQLite again: that query was
the path's largest cost under a real server (a run purged meanwhile loses its points at the
intake's commit, with a log line, as it did between the check and the commit)."""
_decode_metric = msgspec.json.Decoder(p.LogMetricIn)
_decode_batch = msgspec.json.Decoder(p.LogBatchIn)


class MlflowFastPath:
    def __init__(
        self,
        inner: Any,
        tracking: TrackingService,
        *,
        token: str,
        accepted_hosts: frozenset[str],
        max_body_bytes: int,
        admission: Admission,
    ) -> None:
        self.inner = inner
        self.tracking = tracking
        self.token = token.encode()
        self.names = accepted_names(accepted_hosts)
        self.max_body_bytes = max_body_bytes
        self.admission = admission
        self.answered = 0
        """Requests this path answered itself (the rest went to Litestar)."""
        self._checked: dict[int, float] = {}
        """Run id → when it was last found to exist (monotonic seconds)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None or self.admission.draining or not self._allowed(scope["headers"]):
            await self.inner(scope, receive, send)
            return
        messages: list[Any] = []
        body = await self._read(receive, messages)
        if body is not None and self._take(kind, body):
            self.answered += 1
            await send({"type": "http.response.start", "status": 200, "headers": OK_HEADERS})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await self.inner(scope, _replay(messages, receive), send)

    def _allowed(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """The Host check and the token, as Litestar's guards make them (a refusal is theirs to say)."""
        host = auth = None
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"authorization":
                auth = value
        try:
            check_host(None if host is None else host.decode("latin-1"), self.names)
        except MlboxError:
            return False
        return auth is not None and bearer_matches(auth, self.token)

    async def _read(self, receive: Any, messages: list[Any]) -> bytes | None:
        """The body, its messages kept in ``messages``; None when the client went away or the
        body outgrew the limit (Litestar, handed the same messages, answers that)."""
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return None
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                bodies = [m.get("body", b"") for m in messages]
                return bodies[0] if len(bodies) == 1 else b"".join(bodies)

    def _take(self, kind: str, body: bytes) -> bool:
        """Queue the request's points; False leaves the request to Litestar."""
        items: Sequence[p.MetricIn]
        try:
            if kind == "metric":
                one = _decode_metric.decode(body)
                run, items = one.run_id or one.run_uuid, [one]
            else:
                batch = _decode_batch.decode(body)
                if batch.params or batch.tags or not batch.metrics:
                    return False
                run, items = batch.run_id or batch.run_uuid, batch.metrics
            run_id = p.int_id(run, "run_id")
            points = p.metric_points(items, time.time())
            intake = intake_for(self.tracking)
            if not intake.room(len(points)):
                return False  # the Litestar handler waits for room in a worker thread
            self._require_run(run_id)
            intake.add(run_id, points)
        except (msgspec.DecodeError, MlboxError):
            return False
        return True

    def _require_run(self, run_id: int) -> None:
        """`NotFound` for an unknown run, asked of SQLite at most once a `RUN_CHECK_S` per run."""
        now = time.monotonic()
        if now - self._checked.get(run_id, -RUN_CHECK_S) < RUN_CHECK_S:
            return
        self.tracking._require_run(run_id)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked[run_id] = now


def _replay(messages: list[Any], receive: Any) -> Any:
    """``receive`` that first gives back the messages already read, then defers to the real one."""
    pending = list(messages)

    async def replay() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def install(
    app: Litestar,
    tracking: TrackingService,
    *,
    token: str,
    accepted_hosts: frozenset[str],
    max_body_bytes: int,
) -> None:
    """Put the fast path in front of ``app``'s handler; commit the points waiting when the app stops."""
    app.asgi_handler = MlflowFastPath(
        app.asgi_handler,
        tracking,
        token=token,
        accepted_hosts=accepted_hosts,
        max_body_bytes=max_body_bytes,
        admission=app.state.admission,
    )
    app.on_shutdown.append(lambda: close_intake(tracking))
