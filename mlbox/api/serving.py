"""The scoring routes: Open Inference Protocol V2, MLflow-style ``/predict`` and ``/invocations``,
and ``/metrics``.

Who may call them: scoring, health and metadata are open (no token) on the
hosts the Host guard accepts, like KServe, MLServer and ``mlflow models serve``
on loopback: applications on this machine call the scoring endpoint without
holding the management token, and the token guard still covers every route
that changes state (registering or uploading a model, moving an alias). These
routes only read models already registered, and only score what is already
served: the versions an alias points to (loaded at start-up), or versions a
caller with the token had loaded. An open route never loads another version,
takes a GPU lease or grows memory: a version nothing serves answers 404 "not
served", and the same route called with ``Authorization: Bearer <token>``
loads it on demand (capped, unloaded when idle, on the CPU:
`mlbox.serving.ondemand`). ``/v2/health/ready`` is 200 only when every
aliased model is loaded, else 503 listing each one not served and why. They are listed one by one in
`mlbox.api.security.OPEN_ROUTES`; a new route stays closed unless added there.
Binding the appliance beyond loopback (``MLBOX_HOST``) therefore exposes
scoring to that network too, as it would with those servers (``mlbox up`` warns of it), unless
``MLBOX_SERVING_REQUIRE_TOKEN=1`` makes scoring, model metadata and ``/metrics`` need the token.

Handlers read the raw body themselves: the hot path is decode, score, encode,
with msgspec and numpy and nothing else, and `ScoringFastPath` answers the
scoring POSTs before Litestar routes them. Bodies over ``max_body_bytes`` are
refused from their Content-Length before being read, and while being read
when they lie.

Errors are ``{"error": ..., "field": ...}`` JSON, by one rule on every
scoring route, fast path and Litestar path alike:

* 400: the body cannot be read as a request: not JSON (or CSV), a required
  field missing or of the wrong JSON type, none or several of the MLflow
  keys, broken binary framing (``Inference-Header-Content-Length``,
  ``binary_data_size``); also a malformed model name in the path.
* 422: the body was read, and what it holds cannot be scored: tensors that
  contradict themselves (an unknown datatype, values not of the datatype,
  a value count that is not the shape's product, a negative dimension,
  ragged or no rows), inputs that do not match the model's signature (a
  BYTES tensor for a numeric input names the datatype expected), an output
  the model does not have, inputs the model itself raised on.
* 404 an unknown model, alias or version; 409 ``/invocations`` cannot tell
  which model to score; 413 too large; 503 overloaded or loading (with
  ``Retry-After``); 504 timed out.

This is the line MLServer and KServe draw between a body their request model
cannot parse and one it can (FastAPI's 422 for content, 400 for syntax), made
explicit: a client fixes a 400 in its serializer and a 422 in its data.

Outputs are named from the model's signature, never from its flavor: one
array is ``output_0``, a tuple ``output_0``, ``output_1``, …, a dict its
keys, a frame its columns (`mlbox.serving.deployment.output_name`); a
request asking for the name an older release answered (``predict``) still
gets it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, PathParameter
from litestar.types import OperationIDCreator

from mlbox import __version__
from mlbox.api.encoding import BodyTooLarge, decompressed
from mlbox.api.security import accepted_names, authorized, check_host, require_bearer
from mlbox.registry.schemas import ModelVersion
from mlbox.registry.signature import Schema
from mlbox.serving.admission import Admission
from mlbox.serving.codecs import (
    decode_csv,
    decode_mlflow,
    decode_oip,
    encode_json,
    encode_oip,
    encode_oip_binary,
    encode_predictions,
    select_outputs,
)
from mlbox.serving.deployment import Deployment, output_name
from mlbox.serving.errors import NotReady, Overloaded
from mlbox.serving.service import ServingService
from mlbox.serving.tensors import NUMPY_TO_OIP
from mlbox.store.errors import InvalidInput, MlboxError

JSON = "application/json"
log = logging.getLogger("mlbox.api")


Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
"""A scoring answer before any framework sees it: status, JSON body, extra headers."""


def _json(answer: Answer) -> Response[bytes]:
    status, body, extra = answer
    headers = {k.decode(): v.decode() for k, v in extra}
    media_type = headers.pop("content-type", JSON)  # a binary OIP answer names its own
    return Response(body, status_code=status, media_type=media_type, headers=headers or None)


def error_answer(exc: MlboxError) -> Answer:
    extra = [(b"retry-after", str(exc.retry_after_s).encode())] if isinstance(exc, Overloaded) else []
    return exc.http_status, encode_json(exc.to_dict()), extra


def error_response(exc: MlboxError) -> Response[bytes]:
    return _json(error_answer(exc))


async def admit(admission: Admission, key: str, produce: Callable[[], Awaitable[Answer]]) -> Answer:
    """``produce()``'s answer if `Admission` lets the request for model ``key`` in, else its 503.

    Called once the body is read: a client slow to send it holds a connection, not a place.
    """
    try:
        ticket = admission.enter(key, time.perf_counter())
    except Overloaded as exc:
        return error_answer(exc)
    status = 500
    try:
        answer = await produce()
        status = answer[0]
        return answer
    finally:  # only answers that were scored (or timed out) teach the limit a latency
        admission.leave(
            ticket, time.perf_counter(), answered=status < 400 or status == 504, shed=status == 503
        )


def _admission(request: Request[Any, Any, Any]) -> Admission:
    """The app's one `Admission` (`mlbox.api.app.create_app` puts it in the app's state)."""
    return cast(Admission, request.app.state.admission)


def _model_key(name: str, version: str | None) -> str:
    return name if version is None else f"{name}/versions/{version}"


async def versioned_ref(serving: ServingService, name: str, version: str | None) -> str:
    """``name/3`` for the ``/versions/{version}`` routes (``name`` may be ``name@alias``);
    ``name`` as given on the plain routes (``version`` None). See `ServingService.version_ref`."""
    if version is None:
        return name
    if "@" in name:  # checking the alias may read the registry
        return await asyncio.to_thread(serving.version_ref, name, version)
    return serving.version_ref(name, version)


async def answer_infer(
    serving: ServingService,
    ref: str,
    label: str,
    body: bytes,
    header_length: str | None,
    started: float,
    may_load: bool = False,
) -> Answer:
    """``POST /v2/models/{name}[/versions/{v}]/infer``: decode, score, encode (errors as answers).

    ``may_load``: the caller holds the token (`mlbox.api.security.authorized`)."""
    try:
        try:
            length = None if header_length is None else int(header_length)
        except ValueError:
            raise InvalidInput(
                "Inference-Header-Content-Length must be an integer", field="inference-header-content-length"
            ) from None
        decoded = decode_oip(body, length)
    except MlboxError as exc:
        serving.record_error(ref, exc.http_status, time.perf_counter() - started)
        return error_answer(exc)
    try:
        scored = await serving.score(
            ref, decoded.payload, request_id=decoded.id, started=started, may_load=may_load
        )
        outputs = select_outputs(scored.outputs, decoded.outputs, scored.deployment.legacy_outputs)
    except MlboxError as exc:
        return error_answer(exc)
    if decoded.binary:  # the binary tensor extension: raw output bytes after a JSON header
        body_out, json_length = encode_oip_binary(
            label, str(scored.deployment.number), scored.request_id, outputs, decoded.binary
        )
        return (
            200,
            body_out,
            [
                (b"content-type", b"application/octet-stream"),
                (b"inference-header-content-length", str(json_length).encode()),
            ],
        )
    return 200, encode_oip(label, str(scored.deployment.number), scored.request_id, outputs), []


async def answer_predict(
    serving: ServingService,
    name: str,
    body: bytes,
    content_type: str,
    request_id: str | None,
    started: float,
    may_load: bool = False,
) -> Answer:
    """``POST /api/v1/models/{name}/predict``: MLflow bodies or CSV in, ``{"predictions": ...}`` out."""
    try:
        payload = decode_csv(body) if content_type.startswith("text/csv") else decode_mlflow(body)
    except MlboxError as exc:
        serving.record_error(name, exc.http_status, time.perf_counter() - started)
        return error_answer(exc)
    try:
        scored = await serving.score(name, payload, request_id=request_id, started=started, may_load=may_load)
    except MlboxError as exc:
        return error_answer(exc)
    headers = [
        (b"x-request-id", scored.request_id.encode()),
        (b"mlbox-model-version", str(scored.deployment.number).encode()),
    ]
    return 200, encode_predictions(scored.outputs), headers


async def answer_invocations(
    serving: ServingService, body: bytes, content_type: str, request_id: str | None, started: float
) -> Answer:
    """``POST /invocations`` (MLflow's and SageMaker's scoring path): `answer_predict` for the model
    `ServingService.invocations_ref` chooses."""
    try:
        ref = serving.invocations_ref()
    except MlboxError as exc:
        return error_answer(exc)
    return await answer_predict(serving, ref, body, content_type, request_id, started)


def _oip_datatype(dtype: str) -> str:
    return NUMPY_TO_OIP.get(dtype, "BYTES")


def tensor_metadata(schema: Schema | None, unnamed: str = "input") -> list[dict[str, Any]]:
    """OIP tensor metadata of a schema; a tensor without a name is called ``unnamed``."""
    if schema is None:
        return []
    if schema.kind == "columns":
        return [{"name": c.name, "datatype": _oip_datatype(c.dtype), "shape": [-1]} for c in schema.columns]
    return [
        {"name": t.name or unnamed, "datatype": _oip_datatype(t.dtype), "shape": list(t.shape)}
        for t in schema.tensors
    ]


def model_metadata(name: str, mv: ModelVersion, versions: list[str]) -> dict[str, Any]:
    """OIP model metadata: inputs and outputs under the names scoring takes and answers with."""
    sig = mv.signature
    return {
        "name": name,
        "versions": versions,
        "platform": f"mlbox-{mv.flavor}",
        "inputs": tensor_metadata(sig.inputs if sig else None),
        "outputs": tensor_metadata(sig.outputs if sig else None, output_name(mv)),
    }


def versioned(plain: str, with_version: str) -> OperationIDCreator:
    """Operation ids for a handler mounted on ``.../{name}`` and ``.../{name}/versions/{version}``."""

    def operation_id(handler: HTTPRouteHandler, method: Any, components: list[Any]) -> str:
        return with_version if any(getattr(c, "name", None) == "version" for c in components) else plain

    return operation_id


Version = Annotated[str | None, PathParameter()]
"""The ``{version}`` of the ``/versions/{version}`` spelling of a route; None on the plain one."""


class ScoringController(Controller):
    """The scoring routes, the reference behind `ScoringFastPath` and the OpenAPI documentation.

    Each route is mounted both on the model's name and on one of its versions
    (``/v2/models/{name}/versions/{version}/...``); the handler reads ``version``
    as None on the plain path.
    """

    path = "/"
    tags = ("scoring",)

    @post(
        ["/v2/models/{name:str}/infer", "/v2/models/{name:str}/versions/{version:str}/infer"],
        operation_id=versioned("modelInfer", "modelVersionInfer"),
        summary="Score tensors (Open Inference Protocol V2)",
    )
    async def infer(
        self,
        serving: NamedDependency[ServingService],
        request: Request[Any, Any, Any],
        name: FromPath[str],
        version: Version = None,
    ) -> Response[bytes]:
        t0 = time.perf_counter()
        body = await _request_body(serving, request)
        header_length = request.headers.get("inference-header-content-length")

        async def produce() -> Answer:
            try:
                ref = await versioned_ref(serving, name, version)
            except MlboxError as exc:
                return error_answer(exc)
            return await answer_infer(serving, ref, name, body, header_length, t0, authorized(request.scope))

        return _json(await admit(_admission(request), _model_key(name, version), produce))

    @post(
        "/api/v1/models/{name:str}/predict",
        operation_id="predict",
        summary="Score MLflow-style bodies (instances, inputs, dataframe_split, dataframe_records, CSV)",
    )
    async def predict(
        self, serving: NamedDependency[ServingService], request: Request[Any, Any, Any], name: FromPath[str]
    ) -> Response[bytes]:
        t0 = time.perf_counter()
        body = await _request_body(serving, request)
        ctype = request.headers.get("content-type", "")
        rid = request.headers.get("x-request-id")
        produce = partial(answer_predict, serving, name, body, ctype, rid, t0, authorized(request.scope))
        return _json(await admit(_admission(request), name, produce))

    @post(
        "/invocations",
        operation_id="invocations",
        summary="Score MLflow-style bodies with the served model (MLflow's and SageMaker's scoring path)",
        description="The model is MLBOX_SERVING_INVOCATIONS_MODEL, else the one model served by alias"
        " (its champion); 404 when none is served, 409 when several are.",
    )
    async def invocations(
        self, serving: NamedDependency[ServingService], request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        t0 = time.perf_counter()
        body = await _request_body(serving, request)
        ctype = request.headers.get("content-type", "")
        rid = request.headers.get("x-request-id")
        produce = partial(answer_invocations, serving, body, ctype, rid, t0)
        return _json(await admit(_admission(request), "/invocations", produce))

    @get("/v2", operation_id="serverMetadata", summary="Server metadata (OIP)", sync_to_thread=False)
    def server_metadata(self) -> Response[bytes]:
        return _json((200, encode_json({"name": "mlbox", "version": __version__, "extensions": []}), []))

    @get("/v2/health/live", operation_id="serverLive", summary="Is the server live?", sync_to_thread=False)
    def live(self) -> Response[bytes]:
        return _json((200, b'{"live":true}', []))

    @get(
        "/v2/health/ready",
        operation_id="serverReady",
        summary="Are the served models loaded?",
        sync_to_thread=False,
    )
    def ready(self, serving: NamedDependency[ServingService]) -> Response[bytes]:
        """200 only when every aliased model is loaded; else 503 naming each one not served and why."""
        if not serving.ready:
            return error_response(NotReady("models are still loading"))
        unserved = serving.unserved()
        if not unserved:
            return _json((200, b'{"ready":true}', []))
        status, _, extra = error_answer(NotReady(""))
        first = next(iter(unserved.values()))
        more = f" (and {len(unserved) - 1} more)" if len(unserved) > 1 else ""
        body = {"ready": False, "error": f"{first}{more}", "field": None, "unserved": unserved}
        return _json((status, encode_json(body), extra))

    @get(
        ["/v2/models/{name:str}", "/v2/models/{name:str}/versions/{version:str}"],
        operation_id=versioned("modelMetadata", "modelVersionMetadata"),
        summary="Model metadata (OIP)",
    )
    async def metadata(
        self, serving: NamedDependency[ServingService], name: FromPath[str], version: Version = None
    ) -> Response[bytes]:
        try:
            ref = await versioned_ref(serving, name, version)
            mv = await asyncio.to_thread(serving.describe, ref)
            versions = [str(v) for v in await asyncio.to_thread(serving.versions, mv.name)]
        except MlboxError as exc:
            return error_response(exc)
        return _json((200, encode_json(model_metadata(name, mv, versions)), []))

    @get(
        ["/v2/models/{name:str}/ready", "/v2/models/{name:str}/versions/{version:str}/ready"],
        operation_id=versioned("modelReady", "modelVersionReady"),
        summary="Is this model (version) loaded? Asking loads nothing",
    )
    async def model_ready(
        self, serving: NamedDependency[ServingService], name: FromPath[str], version: Version = None
    ) -> Response[bytes]:
        """Answered from what is loaded: an open route never loads a version (nor takes a GPU)."""
        try:
            ref = await versioned_ref(serving, name, version)
            state: Deployment | str | None = serving.route_now(ref)
            if state is None:
                state = await asyncio.to_thread(serving.readiness, ref)
        except MlboxError as exc:
            return error_response(exc)
        if isinstance(state, str):
            return error_response(NotReady(state))
        return _json((200, encode_json({"name": name, "ready": True}), []))

    @get(
        "/metrics",
        operation_id="metrics",
        summary="Prometheus metrics of the served models",
        sync_to_thread=False,
    )
    def metrics(self, serving: NamedDependency[ServingService]) -> Response[str]:
        return Response(serving.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _request_body(serving: ServingService, request: Request[Any, Any, Any]) -> bytes:
    """The body as the client wrote it before any ``Content-Encoding`` (`mlbox.api.encoding`)."""
    body = await request.body()
    encoding = request.headers.get("content-encoding")
    return body if encoding is None else decompressed(body, encoding, serving.settings.max_body_bytes)


# -- the fast path -----------------------------------------------------------------------


class ScoringFastPath:
    """Serves the scoring POST routes before Litestar routes them; hands everything else on.

    Per request Litestar spends more CPU than decoding, scoring and encoding
    together (routing, a copy of the route handler per guard, signature
    parsing, response objects), which halves the requests/s one core can
    answer. These routes need no token and take raw bytes, so here they run
    the same `answer_infer`/`answer_predict` the Litestar handlers run, after
    the same Host check (`mlbox.api.security.check_host`) and the same body
    limit. Anything that does not match exactly (another method, a trailing
    slash, an empty name) falls through to Litestar, whose routes stay the
    reference and the OpenAPI documentation.

    Installed by `create_app` as the app's ``asgi_handler`` (inside Litestar's
    ``__call__``, so lifespan and the app object in the scope are untouched).
    Scoring passes the app's `Admission` once its body is read; while the
    admission drains (the appliance stopping), every answer, its own or
    Litestar's, says ``Connection: close``, so no keep-alive connection is
    left idle for the server to close under a request the client is sending.
    """

    def __init__(
        self,
        inner: Any,
        serving: ServingService,
        *,
        accepted_hosts: frozenset[str],
        max_body_bytes: int,
        admission: Admission,
        require_token: str | None = None,
    ) -> None:
        self.inner = inner
        # MLBOX_SERVING_REQUIRE_TOKEN: the token every scoring POST must carry (None: open)
        self.require_token = None if require_token is None else require_token.encode()
        self.serving = serving
        self.names = accepted_names(accepted_hosts)
        self.max_body_bytes = max_body_bytes
        self.admission = admission

    @staticmethod
    def match(path: str) -> tuple[str, str, str | None] | None:
        """``(kind, name, version)`` for a scoring POST path, else None."""
        if path == "/invocations":
            return "invocations", "", None
        parts = path.split("/")
        n = len(parts)
        if n == 5 and parts[1] == "v2" and parts[2] == "models" and parts[4] == "infer" and parts[3]:
            return "infer", parts[3], None
        if (
            n == 6
            and parts[1] == "api"
            and parts[2] == "v1"
            and parts[3] == "models"
            and parts[5] == "predict"
        ):
            return ("predict", parts[4], None) if parts[4] else None
        if (
            n == 7
            and parts[1] == "v2"
            and parts[2] == "models"
            and parts[4] == "versions"
            and parts[6] == "infer"
        ):
            return ("infer", parts[3], parts[5]) if parts[3] and parts[5] else None
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = self.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is not None and not await self._serves(route, scope):
            route = None  # Litestar's guard checks the token (one check), and its handler may load
        if route is None:
            await self.inner(scope, receive, _closing(send) if self.admission.draining else send)
            return
        t0 = time.perf_counter()
        try:
            answer = await self._answer(route, scope, receive, t0)
        except MlboxError as exc:
            answer = error_answer(exc)
        except Exception:
            log.exception("POST %s failed", scope["path"])
            answer = (500, b'{"error":"internal error"}', [])
        status, body, extra = answer
        headers = [
            *(
                []
                if any(k == b"content-type" for k, _ in extra)
                else [(b"content-type", b"application/json")]
            ),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        if self.admission.draining:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _serves(self, route: tuple[str, str, str | None], scope: Any) -> bool:
        """False for a request with an Authorization header for a version not loaded now: that
        one goes to the Litestar handler, whose guard checks the token, so that a caller with the
        token gets the version loaded on demand. Without the header, or for a served version,
        the fast path answers (a version nothing serves: 404 "not served")."""
        kind, name, version = route
        if kind == "invocations" or not any(k == b"authorization" for k, _ in scope["headers"]):
            return True
        try:
            return self.serving.route_now(await versioned_ref(self.serving, name, version)) is not None
        except MlboxError:
            return True  # the fast path answers the error as Litestar would

    async def _answer(
        self, route: tuple[str, str, str | None], scope: Any, receive: Any, t0: float
    ) -> Answer:
        headers: dict[bytes, bytes] = dict(scope["headers"])
        host = headers.get(b"host")
        check_host(None if host is None else host.decode("latin-1"), self.names)
        if self.require_token is not None:
            require_bearer(headers.get(b"authorization"), self.require_token)
        body = await self._body(headers.get(b"content-length"), receive)
        encoding = headers.get(b"content-encoding")
        if encoding is not None:
            body = decompressed(body, encoding.decode("latin-1"), self.max_body_bytes)
        return await admit(
            self.admission,
            _model_key(route[1] or "/invocations", route[2]),
            lambda: self._score(route, headers, body, t0),
        )

    async def _score(
        self, route: tuple[str, str, str | None], headers: dict[bytes, bytes], body: bytes, t0: float
    ) -> Answer:
        kind, name, version = route
        if kind != "infer":
            ctype = headers.get(b"content-type", b"").decode("latin-1")
            raw_id = headers.get(b"x-request-id")
            rid = None if raw_id is None else raw_id.decode()
            if kind == "invocations":
                return await answer_invocations(self.serving, body, ctype, rid, t0)
            return await answer_predict(self.serving, name, body, ctype, rid, t0)
        ref = await versioned_ref(self.serving, name, version)
        length = headers.get(b"inference-header-content-length")
        return await answer_infer(
            self.serving, ref, name, body, None if length is None else length.decode(), t0
        )

    async def _body(self, content_length: bytes | None, receive: Any) -> bytes:
        limit = self.max_body_bytes
        if content_length is not None:
            try:
                announced = int(content_length)
            except ValueError:
                raise InvalidInput("Content-Length is not a number", field="content-length") from None
            if announced > limit:
                raise BodyTooLarge(f"the body ({announced} bytes) is larger than {limit} bytes", field="body")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidInput("the client went away", field="body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the body is larger than {limit} bytes", field="body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _closing(send: Any) -> Any:
    """``send`` that adds ``Connection: close`` to the response's headers (uvicorn then closes)."""

    async def closing_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing_send
