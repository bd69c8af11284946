"""The feature store over HTTP: online lookups, the catalog, materialization.

Every route needs the management token (the app-wide guard); none is in
``OPEN_ROUTES``, as online values are data a token holder chose to expose.

``POST /api/v1/features/online`` takes Feast's feature-server body as it is
(``{"features": [...], "entities": {"customer_id": [1, 2]}, "full_feature_names": false}``)
or entity rows (``"entity_rows": [{"customer_id": 1}]``, Feast's SDK shape).
An on-demand feature's request values travel the same way, beside the join
keys (``"entities": {"customer_id": [1], "amount": [12.5]}``); a missing one
is a 400 naming it.
It answers columns (``{"values": {"customer_id": [...], "f0": [...]}}``, the
shape of Feast's ``to_dict()``), with ``<feature>__event_ts`` and
``<feature>__age_s`` beside each feature when ``with_event_time`` is set, or
with ``"response": "feast"`` the feature server's own shape
(``metadata.feature_names`` and per-column ``values``/``statuses``/``event_timestamps``).
A lookup of a few entities is an indexed SQLite read well under a
millisecond, so it runs on the event loop instead of paying a thread hop;
larger ones (`INLINE_ROWS`) run in a worker thread.

``DELETE /api/v1/features/views/{name}`` and ``/entities/{name}`` delete (404
when unknown or already deleted, 409 naming the dependents while something
uses it; ``?dry_run=true`` checks without deleting).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from mlbox.api.ranges import INT64_MAX, INT64_MIN
from mlbox.features.schemas import DeleteResult, EntityInfo, MaterializeResult, TrainingSetInfo, ViewInfo
from mlbox.features.service import FeatureStore
from mlbox.store.errors import InvalidInput

MAX_ENTITY_ROWS = 10_000
INLINE_ROWS = 64
"""Lookups of up to this many rows run on the event loop (well under a millisecond);
larger ones go to a worker thread so they never stall other requests."""


class OnlineRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/features/online``: give ``entities`` or ``entity_rows``."""

    features: list[str]
    entities: dict[str, list[Any]] | None = None
    entity_rows: list[dict[str, Any]] | None = None
    full_feature_names: bool = False
    with_event_time: bool = False
    response: Literal["columns", "feast"] = "columns"


class OnlineAnswer(msgspec.Struct, frozen=True):
    values: dict[str, list[Any]]


class FeastColumn(msgspec.Struct, frozen=True):
    values: list[Any]
    statuses: list[str]
    event_timestamps: list[str | None]


class FeastMetadata(msgspec.Struct, frozen=True):
    feature_names: list[str]


class FeastAnswer(msgspec.Struct, frozen=True):
    metadata: FeastMetadata
    results: list[FeastColumn]


class MaterializeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/features/materialize``.

    A window (``start`` and ``end``: ISO 8601, naive meaning UTC, or epoch
    seconds) or ``incremental`` (up to ``end``, now by default). ``chunk``
    splits a backfill (``"1d"``, ``"12h"`` or seconds).
    """

    start: str | float | None = None
    end: str | float | None = None
    incremental: bool = False
    views: list[str] | None = None
    chunk: str | float | None = None


_AT = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")

S = TypeVar("S", bound=msgspec.Struct)


def parse_body(data: dict[str, Any], schema: type[S]) -> S:
    """The body as ``schema``, or InvalidInput naming the field msgspec complained about.

    Bodies are taken as plain JSON objects and converted here, because the
    app's generic validation answer names only ``body``; this names the field.
    """
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text) or _NAMED.search(text)
        raise InvalidInput(text, field=match.group(1) if match else "body") from None


def entity_rows(data: OnlineRequest) -> list[dict[str, Any]]:
    """The request's entities as rows, or InvalidInput naming the field at fault."""
    if not data.features:
        raise InvalidInput("features must name at least one VIEW:FEATURE", field="features")
    if (data.entities is None) == (data.entity_rows is None):
        raise InvalidInput("give exactly one of entities (columns) or entity_rows", field="entities")
    if data.entity_rows is not None:
        rows = data.entity_rows
        field = "entity_rows"
    else:
        columns = data.entities or {}
        field = "entities"
        if not columns:
            raise InvalidInput("entities must name at least one join key", field=field)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in columns.items())
            raise InvalidInput(f"entities columns differ in length ({sizes})", field=field)
        keys = list(columns)
        rows = [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    if not rows:
        raise InvalidInput("no entity rows given", field=field)
    if len(rows) > MAX_ENTITY_ROWS:
        raise InvalidInput(f"at most {MAX_ENTITY_ROWS:,} entity rows per request", field=field)
    return rows


def feast_shape(values: dict[str, list[Any]], feature_cols: list[str]) -> FeastAnswer:
    """Columns in the shape of Feast's feature server (keys first, then features)."""
    names = [c for c in values if not c.endswith(("__event_ts", "__age_s"))]
    results = []
    for name in names:
        column = values[name]
        if name in feature_cols:
            stamps = values.get(f"{name}__event_ts") or [None] * len(column)
            statuses = [("PRESENT" if v is not None else "NOT_FOUND") for v in column]
            times = [_iso(t) for t in stamps]
        else:
            statuses, times = ["PRESENT"] * len(column), [None] * len(column)
        results.append(FeastColumn(values=column, statuses=statuses, event_timestamps=times))
    return FeastAnswer(metadata=FeastMetadata(feature_names=names), results=results)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def parse_time(value: str | float | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InvalidInput(f"{field} must be a finite number of seconds", field=field)
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if value.strip().lower() == "now":
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 time", field=field) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_chunk(value: str | float | None) -> dt.timedelta | None:
    from mlbox.features.loader import parse_ttl

    try:
        return parse_ttl(value, "chunk")
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="chunk") from None


def lookup(
    store: FeatureStore, request: OnlineRequest, rows: list[dict[str, Any]]
) -> OnlineAnswer | FeastAnswer:
    as_feast = request.response == "feast"
    values = store.get_online_features(
        rows,
        request.features,
        with_event_time=request.with_event_time or as_feast,
        full_feature_names=request.full_feature_names,
    )
    if not as_feast:
        return OnlineAnswer(values=values)
    stamped = [c.removesuffix("__event_ts") for c in values if c.endswith("__event_ts")]
    return feast_shape(values, stamped)


class FeatureController(Controller):
    path = "/api/v1/features"
    tags = ("features",)

    @post(
        "/online",
        operation_id="getOnlineFeatures",
        status_code=200,
        summary="Online feature values for entity rows (Feast's request shape accepted)",
    )
    async def online(
        self, features: NamedDependency[FeatureStore], data: JSONBody[dict[str, Any]]
    ) -> OnlineAnswer | FeastAnswer:
        """The body is an `OnlineRequest`."""
        request = parse_body(data, OnlineRequest)
        rows = entity_rows(request)
        if len(rows) <= INLINE_ROWS:
            return lookup(features, request, rows)
        return await anyio.to_thread.run_sync(lookup, features, request, rows)

    @get("/views", operation_id="listFeatureViews", sync_to_thread=True, summary="Views, versions, freshness")
    def list_views(self, features: NamedDependency[FeatureStore]) -> list[ViewInfo]:
        return features.list_views()

    @get(
        "/views/{name:str}",
        operation_id="getFeatureView",
        sync_to_thread=True,
        summary="One view (latest version unless ?version=)",
    )
    def get_view(
        self,
        features: NamedDependency[FeatureStore],
        name: FromPath[str],
        version: Annotated[int | None, QueryParameter(ge=INT64_MIN, le=INT64_MAX)] = None,
    ) -> ViewInfo:
        return features.get_view(name, version)

    @delete(
        "/views/{name:str}",
        operation_id="deleteFeatureView",
        status_code=200,
        sync_to_thread=True,
        summary="Delete a view (versions kept for lineage, online values removed)",
    )
    def delete_view(
        self, features: NamedDependency[FeatureStore], name: FromPath[str], dry_run: FromQuery[bool] = False
    ) -> DeleteResult:
        return features.delete_view(name, dry_run=dry_run)

    @delete(
        "/entities/{name:str}",
        operation_id="deleteEntity",
        status_code=200,
        sync_to_thread=True,
        summary="Delete an entity no live view uses",
    )
    def delete_entity(
        self, features: NamedDependency[FeatureStore], name: FromPath[str], dry_run: FromQuery[bool] = False
    ) -> DeleteResult:
        return features.delete_entity(name, dry_run=dry_run)

    @get("/entities", operation_id="listEntities", sync_to_thread=True, summary="Entities and join keys")
    def list_entities(self, features: NamedDependency[FeatureStore]) -> list[EntityInfo]:
        return features.list_entities()

    @get(
        "/training-sets",
        operation_id="listTrainingSets",
        sync_to_thread=True,
        summary="Training sets built, newest first",
    )
    def training_sets(
        self,
        features: NamedDependency[FeatureStore],
        limit: Annotated[int, QueryParameter(le=INT64_MAX, description="rows at most")] = 100,
        view: FromQuery[str | None] = None,
    ) -> list[TrainingSetInfo]:
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", field="limit")
        return features.training_sets(limit=limit, view=view)

    @post(
        "/materialize",
        operation_id="materializeFeatures",
        status_code=200,
        sync_to_thread=True,
        summary="Materialize a window (or incrementally) into the online store",
    )
    def materialize(
        self, features: NamedDependency[FeatureStore], data: JSONBody[dict[str, Any]]
    ) -> list[MaterializeResult]:
        """The body is a `MaterializeRequest`."""
        return self._materialize(features, parse_body(data, MaterializeRequest))

    @staticmethod
    def _materialize(features: FeatureStore, data: MaterializeRequest) -> list[MaterializeResult]:
        start = parse_time(data.start, "start")
        end = parse_time(data.end, "end")
        chunk = parse_chunk(data.chunk)
        views = data.views or None
        if data.incremental:
            if start is not None:
                raise InvalidInput("give start/end or incremental, not both", field="start")
            return features.materialize_incremental(end, views, chunk=chunk)
        if start is None:
            raise InvalidInput("start is required (or incremental: true)", field="start")
        if end is None:
            raise InvalidInput("end is required with start", field="end")
        if start >= end:
            raise InvalidInput("start must be before end", field="start")
        return features.materialize(start, end, views, chunk=chunk)
