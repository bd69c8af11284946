"""What `Catalog.apply` checks and writes for each definition, before any write.

A feature view is checked against its source (DuckDB describes it: join keys,
timestamp columns, declared dtypes), an on-demand view against its source
views' features and its request fields (every expression is run on an empty
frame of those types); each becomes its stored form, the canonical definition
with its resolved join keys (and source views' hashes), whose hash is its
version. All of it runs before the apply's transaction, so a bad definition
changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mlbox.features import deletion
from mlbox.features import sources as src
from mlbox.features.definitions import (
    Definition,
    Entity,
    FeatureView,
    FrameSource,
    OnDemandFeatureView,
    definition_hash,
    polars_dtype,
)
from mlbox.features.refs import ResolvedView
from mlbox.store.db import Database
from mlbox.store.errors import InvalidInput, NotFound


def prepare_view(view: FeatureView, entities: dict[str, Entity]) -> tuple[dict[str, Any], Any]:
    """The stored form of a feature view (``__hash`` its version hash) and its frame
    to snapshot (a frame source), after checking its source against it."""
    keys: list[str] = []
    for name in view.entities:
        if name not in entities:
            raise InvalidInput(f"feature view {view.name!r} names unknown entity {name!r}", field="entities")
        keys.extend(k for k in entities[name].join_keys if k not in keys)
    con = src.connect(src.DESCRIBE_CONFIG, [view.source])
    try:
        where = f"feature view {view.name!r}"
        frame = None
        if isinstance(view.source, FrameSource):
            frame = view.source.frame
            con.register("__frame", frame.to_arrow())
            rows = con.execute("DESCRIBE SELECT * FROM __frame").fetchall()
            schema = {str(r[0]): str(r[1]) for r in rows}
        else:
            schema = src.describe(con, view.source, where)
        src.check_schema(view, tuple(keys), schema)
    finally:
        con.close()
    canonical = view.canonical()
    canonical["join_keys"] = keys
    digest = definition_hash(canonical)
    stored = dict(canonical, description=view.description, tags=[list(t) for t in view.tags])
    stored["feature_descriptions"] = {f.name: f.description for f in view.features if f.description}
    stored["__hash"] = digest
    return stored, frame


def prepare_on_demand(
    view: OnDemandFeatureView,
    batch: dict[str, tuple[str, tuple[str, ...], dict[str, str]]],
    *,
    resolve: Callable[[str], ResolvedView],
    db: Database,
) -> dict[str, Any]:
    """The stored form of an on-demand view (``__hash`` its version hash), after checking
    that its expressions compute from its sources' features and request fields. A source
    is taken from ``batch`` (views applied with it: hash, join keys, dtypes) or else
    resolved from the catalog."""
    import polars as pl

    source_hashes: dict[str, str] = {}
    schema: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for name in view.sources:
        if name in batch:
            digest, _, dtypes = batch[name]
        else:
            try:
                resolved = resolve(name)
            except NotFound:
                known = deletion.is_deleted(db.conn, name)
                raise InvalidInput(
                    f"on-demand view {view.name!r} names "
                    + (
                        f"source view {name!r}, which was deleted"
                        if known
                        else f"unknown source view {name!r}"
                    ),
                    field="sources",
                ) from None
            if not isinstance(resolved.definition, FeatureView):
                raise InvalidInput(
                    f"on-demand view {view.name!r}: source {name!r} is on-demand", field="sources"
                )
            digest, dtypes = resolved.hash, resolved.dtypes
        source_hashes[name] = digest
        for fname, dtype in dtypes.items():
            if fname in owner:
                raise InvalidInput(
                    f"on-demand view {view.name!r}: feature {fname!r} is in both {owner[fname]!r} and {name!r}",
                    field="sources",
                )
            owner[fname] = name
            schema[fname] = polars_dtype(dtype)
    for field in view.request:
        if field.name in owner:
            raise InvalidInput(
                f"on-demand view {view.name!r}: request field {field.name!r} is also a feature of "
                f"source view {owner[field.name]!r}; rename one",
                field="request",
            )
        schema[field.name] = polars_dtype(field.dtype)
    empty = pl.DataFrame(schema=schema)
    declared = {f.name: f.dtype for f in view.features}
    for fname, expr in view.polars_exprs().items():
        unknown = [n for n in expr.meta.root_names() if n not in schema]
        if unknown:
            requested = [f.name for f in view.request]
            raise InvalidInput(
                f"on-demand view {view.name!r}: feature {fname!r} cannot be computed: it uses {unknown[0]!r}, "
                "which is neither "
                f"a feature of its sources ({', '.join(sorted(owner)) or 'none'}) nor a request field "
                f"({', '.join(requested) or 'none declared'})",
                field="expressions",
            )
        try:
            empty.select(expr.cast(polars_dtype(declared[fname])))
        except Exception as exc:  # ColumnNotFoundError, InvalidOperationError, ...
            first = str(exc).strip().splitlines()[0]
            raise InvalidInput(
                f"on-demand view {view.name!r}: feature {fname!r} cannot be computed from "
                f"{sorted(schema)}: {first}",
                field="expressions",
            ) from None
    canonical = view.canonical()
    canonical["source_hashes"] = source_hashes
    stored = dict(canonical, description=view.description, join_keys=[], __hash=definition_hash(canonical))
    return stored


def check_duplicates(defs: Sequence[Definition]) -> None:
    """Refuse anything that is not a definition, and a name defined twice in one apply."""
    seen: dict[tuple[str, str], str] = {}
    for d in defs:
        if not isinstance(d, (Entity, FeatureView, OnDemandFeatureView)):
            raise InvalidInput(
                f"{d!r} is not an Entity, FeatureView or OnDemandFeatureView", field="definitions"
            )
        space = "entity" if isinstance(d, Entity) else "view"
        if (space, d.name) in seen:
            raise InvalidInput(f"duplicate definition: {space} {d.name!r} is defined twice", field="name")
        seen[(space, d.name)] = d.name
