"""What a feature store holds: entities, sources, feature views, on-demand views.

Definitions are plain frozen values, written in Python or loaded from YAML
(`mlbox.features.loader.load_definitions`). Each has a *canonical form* (a
JSON-able dict with sorted keys and nothing derived), and a view's version is
the hash of that form: the invariant this module owns is that two
definitions hash alike exactly when they would compute the same features from
the same source. Polars is imported only when an on-demand expression is built
or evaluated, so the CLI starts fast.

Naming: entity, view and feature names are identifiers (``[A-Za-z_][A-Za-z0-9_]*``);
they become SQL column and table names, so this rule is what keeps the
generated SQL free of quoting problems.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import polars as pl

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Declared dtypes and the DuckDB type families a source column may have for each.
# A float64 feature may come from a FLOAT column (widened), never from a VARCHAR.
DTYPES: dict[str, tuple[str, ...]] = {
    "int8": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"),
    "int16": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"),
    "int32": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"),
    "int64": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"),
    "float32": ("FLOAT", "DOUBLE", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DECIMAL"),
    "float64": ("FLOAT", "DOUBLE", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "DECIMAL"),
    "string": ("VARCHAR",),
    "bool": ("BOOLEAN",),
}
# The DuckDB type each declared dtype is cast to in results.
DUCKDB_TYPES: dict[str, str] = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
}


def check_name(name: object, what: str, fld: str = "name") -> str:
    """An identifier, or InvalidInput naming what was wrong with it."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(
            f"{what} name {name!r} must be an identifier (letters, digits, underscore; not starting "
            "with a digit)",
            field=fld,
        )
    if name.startswith("__"):
        raise InvalidInput(f"{what} name {name!r} must not start with '__' (reserved)", field=fld)
    return name


@dataclass(frozen=True)
class Field:
    """A feature: a column of the source with its declared dtype (one of `DTYPES`)."""

    name: str
    dtype: str = "float64"
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "feature", "features")
        if self.dtype not in DTYPES:
            raise InvalidInput(
                f"feature {self.name!r}: unknown dtype {self.dtype!r} (one of {', '.join(DTYPES)})",
                field="dtype",
            )


@dataclass(frozen=True)
class Entity:
    """Who features describe: a name and the columns that identify one of them."""

    name: str
    join_keys: tuple[str, ...]
    description: str = ""

    def __init__(
        self, name: str, join_keys: list[str] | tuple[str, ...] | str, description: str = ""
    ) -> None:
        keys = (join_keys,) if isinstance(join_keys, str) else tuple(join_keys)
        check_name(name, "entity")
        if not keys:
            raise InvalidInput(f"entity {name!r} has no join keys", field="join_keys")
        for key in keys:
            check_name(key, f"entity {name!r} join key", "join_keys")
        if len(set(keys)) != len(keys):
            raise InvalidInput(f"entity {name!r} repeats a join key", field="join_keys")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "description", description)

    def canonical(self) -> dict[str, Any]:
        return {"kind": "entity", "name": self.name, "join_keys": list(self.join_keys)}


# -- sources -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParquetSource:
    """One Parquet file, a folder of them (read recursively), or a glob."""

    path: str

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", str(path))

    def canonical(self) -> dict[str, Any]:
        return {"kind": "parquet", "path": self.path}


@dataclass(frozen=True)
class CsvSource:
    """A CSV file (or glob) with a header row; DuckDB sniffs the column types."""

    path: str
    delimiter: str = ","

    def __init__(self, path: str | Path, delimiter: str = ",") -> None:
        object.__setattr__(self, "path", str(path))
        object.__setattr__(self, "delimiter", delimiter)

    def canonical(self) -> dict[str, Any]:
        return {"kind": "csv", "path": self.path, "delimiter": self.delimiter}


@dataclass(frozen=True)
class SqlSource:
    """A DuckDB ``SELECT`` over Parquet/CSV files (``read_parquet('…')``, ``'x.csv'``).

    Relative file names in the query resolve against ``base_dir`` (the YAML
    file's folder when loaded from YAML), else the working folder.
    """

    query: str
    base_dir: str | None = None

    def canonical(self) -> dict[str, Any]:
        return {"kind": "sql", "query": self.query.strip(), "base_dir": self.base_dir}


@dataclass(frozen=True, eq=False)
class FrameSource:
    """A polars frame in memory. `FeatureStore.apply` snapshots it to Parquet under
    ``$MLBOX_HOME/features/frames/`` (named by its content hash), so the registered
    version keeps reading exactly these rows."""

    frame: pl.DataFrame

    def content_hash(self) -> str:
        buf = io.BytesIO()
        self.frame.write_ipc(buf, compression="uncompressed")
        return hashlib.sha256(buf.getvalue()).hexdigest()

    def canonical(self) -> dict[str, Any]:
        return {"kind": "frame", "sha256": self.content_hash()}


Source = ParquetSource | CsvSource | SqlSource | FrameSource


# -- views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureView:
    """Features read from a source, keyed by entities and stamped with an event time.

    ``ttl``: a feature row serves entity times up to ``event_ts + ttl`` (offline
    and online); ``None`` means forever. ``created_timestamp_field`` breaks ties
    between rows of one entity with the same event time: the latest created wins.
    """

    name: str
    entities: tuple[str, ...]
    source: Source
    timestamp_field: str
    features: tuple[Field, ...]
    created_timestamp_field: str | None = None
    ttl: timedelta | None = None
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()

    def __init__(
        self,
        name: str,
        entities: list[str | Entity] | tuple[str | Entity, ...],
        source: Source,
        timestamp_field: str,
        features: list[Field] | tuple[Field, ...],
        created_timestamp_field: str | None = None,
        ttl: timedelta | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        check_name(name, "feature view")
        names = tuple(e.name if isinstance(e, Entity) else e for e in entities)
        if not names:
            raise InvalidInput(f"feature view {name!r} names no entity", field="entities")
        if not features:
            raise InvalidInput(f"feature view {name!r} declares no features", field="features")
        seen = [f.name for f in features]
        dupes = sorted({n for n in seen if seen.count(n) > 1})
        if dupes:
            raise InvalidInput(f"feature view {name!r} declares {dupes[0]!r} twice", field="features")
        check_name(timestamp_field, f"feature view {name!r} timestamp field", "timestamp_field")
        if created_timestamp_field is not None:
            check_name(created_timestamp_field, f"view {name!r} created field", "created_timestamp_field")
        for special in (timestamp_field, created_timestamp_field):
            if special in seen:
                raise InvalidInput(
                    f"feature view {name!r}: {special!r} is a timestamp field and a feature", field="features"
                )
        if ttl is not None and ttl <= timedelta(0):
            raise InvalidInput(f"feature view {name!r}: ttl must be positive", field="ttl")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entities", names)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "timestamp_field", timestamp_field)
        object.__setattr__(self, "features", tuple(features))
        object.__setattr__(self, "created_timestamp_field", created_timestamp_field)
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "tags", tuple(sorted((tags or {}).items())))

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def canonical(self) -> dict[str, Any]:
        """What the version hash covers. Description and tags are not in it: editing
        prose does not make a new version."""
        return {
            "kind": "feature_view",
            "name": self.name,
            "entities": list(self.entities),
            "source": self.source.canonical(),
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "features": [{"name": f.name, "dtype": f.dtype} for f in self.features],
            "ttl_s": None if self.ttl is None else self.ttl.total_seconds(),
        }


RequestFields = list[Field] | tuple[Field, ...] | dict[str, str]


def request_fields(view: str, request: RequestFields | None) -> tuple[Field, ...]:
    """An on-demand view's request fields (``[Field(...)]`` or ``{name: dtype}``),
    checked: identifiers, known dtypes, none twice. Errors name the field
    (``field="request"``)."""
    if not request:
        return ()
    items = list(request.items()) if isinstance(request, dict) else list(request)
    out: list[Field] = []
    for item in items:
        if isinstance(item, Field):
            name, dtype, description = item.name, item.dtype, item.description
        elif isinstance(item, tuple) and len(item) == 2:
            (name, dtype), description = item, ""
        else:
            raise InvalidInput(
                f"on-demand view {view!r}: request field {item!r} must be a Field or name: dtype",
                field="request",
            )
        check_name(name, f"on-demand view {view!r} request field", "request")
        if dtype not in DTYPES:
            raise InvalidInput(
                f"on-demand view {view!r}: request field {name!r} has unknown dtype {dtype!r} "
                f"(one of {', '.join(DTYPES)})",
                field="request",
            )
        if any(f.name == name for f in out):
            raise InvalidInput(
                f"on-demand view {view!r} declares request field {name!r} twice", field="request"
            )
        out.append(Field(name, dtype, description))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class OnDemandFeatureView:
    """Features computed after retrieval from other views' features and values sent
    with the request, with polars expressions, one per feature.

    ``expressions`` values are ``polars.Expr`` or strings in polars SQL
    (``"amount / nullif(count, 0)"``, parsed by ``pl.sql_expr``); they refer to
    the source views' features and the ``request`` fields by their plain names.
    ``request`` (Feast's ``RequestSource``) declares values that are not stored
    anywhere but arrive with each lookup: offline as columns of the entity frame,
    online beside the join keys in each entity row.
    """

    name: str
    sources: tuple[str, ...]
    features: tuple[Field, ...]
    expressions: dict[str, Any]
    description: str = ""
    request: tuple[Field, ...] = ()

    def __init__(
        self,
        name: str,
        sources: list[str | FeatureView] | tuple[str | FeatureView, ...],
        features: list[Field] | tuple[Field, ...],
        expressions: dict[str, Any],
        description: str = "",
        request: RequestFields | None = None,
    ) -> None:
        check_name(name, "on-demand feature view")
        names = tuple(s.name if isinstance(s, FeatureView) else s for s in sources)
        if not names:
            raise InvalidInput(f"on-demand view {name!r} has no source views", field="sources")
        declared = [f.name for f in features]
        if not declared:
            raise InvalidInput(f"on-demand view {name!r} declares no features", field="features")
        if len(set(declared)) != len(declared):
            raise InvalidInput(f"on-demand view {name!r} declares a feature twice", field="features")
        if set(expressions) != set(declared):
            missing = sorted(set(declared) - set(expressions))
            extra = sorted(set(expressions) - set(declared))
            detail = f"no expression for {missing}" if missing else f"expressions for undeclared {extra}"
            raise InvalidInput(f"on-demand view {name!r}: {detail}", field="expressions")
        for fname, expr in expressions.items():
            _expr_form(expr, f"{name}.{fname}")  # validates strings parse
        fields = request_fields(name, request)
        for f in fields:
            if f.name in declared:
                raise InvalidInput(
                    f"on-demand view {name!r}: request field {f.name!r} is also one of its features",
                    field="request",
                )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "sources", names)
        object.__setattr__(self, "features", tuple(features))
        object.__setattr__(self, "expressions", dict(expressions))
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "request", fields)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def polars_exprs(self) -> dict[str, pl.Expr]:
        """Each feature's expression as a polars expression, aliased to its name."""
        import polars as pl

        out: dict[str, pl.Expr] = {}
        for f in self.features:
            expr = self.expressions[f.name]
            parsed = pl.sql_expr(expr) if isinstance(expr, str) else expr
            out[f.name] = parsed.alias(f.name)
        return out

    def request_used(self, features: list[str] | tuple[str, ...]) -> tuple[Field, ...]:
        """The request fields the expressions of ``features`` read (what a lookup of
        just those features must be sent)."""
        if not self.request:
            return ()
        exprs = self.polars_exprs()
        roots = {n for f in features for n in exprs[f].meta.root_names()}
        return tuple(f for f in self.request if f.name in roots)

    def canonical(self) -> dict[str, Any]:
        """``request`` is only present when declared, so views defined before request
        fields existed keep their hash (and version)."""
        out: dict[str, Any] = {
            "kind": "on_demand_feature_view",
            "name": self.name,
            "sources": list(self.sources),
            "features": [{"name": f.name, "dtype": f.dtype} for f in self.features],
            "expressions": {
                k: _expr_form(v, f"{self.name}.{k}") for k, v in sorted(self.expressions.items())
            },
        }
        if self.request:
            out["request"] = [{"name": f.name, "dtype": f.dtype} for f in self.request]
        return out


Definition = Entity | FeatureView | OnDemandFeatureView
View = FeatureView | OnDemandFeatureView


def _expr_form(expr: Any, where: str) -> dict[str, str]:
    """The storable form of an expression: SQL text as written, or polars' JSON plan."""
    import polars as pl

    if isinstance(expr, str):
        try:
            pl.sql_expr(expr)
        except Exception as exc:  # polars raises several types for bad SQL
            raise InvalidInput(
                f"{where}: cannot parse expression {expr!r}: {exc}", field="expressions"
            ) from None
        return {"sql": expr}
    if isinstance(expr, pl.Expr):
        return {"polars": expr.meta.serialize(format="json")}
    raise InvalidInput(f"{where}: an expression must be a string or polars.Expr", field="expressions")


def canonical_json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def definition_hash(canonical: dict[str, Any]) -> str:
    """The version identity of a definition: sha256 of its canonical JSON, 12 hex digits."""
    return hashlib.sha256(canonical_json(canonical).encode()).hexdigest()[:12]


def from_canonical(data: dict[str, Any], *, frames_dir: Path | None = None) -> Definition:
    """Rebuild a stored definition (the registry keeps canonical forms, plus prose).

    A frame source comes back as the Parquet snapshot `apply` wrote for it.
    """
    import polars as pl

    kind = data["kind"]
    if kind == "entity":
        return Entity(data["name"], data["join_keys"], data.get("description", ""))
    features = [Field(f["name"], f["dtype"], f.get("description", "")) for f in data["features"]]
    if kind == "on_demand_feature_view":
        exprs: dict[str, Any] = {}
        for k, form in data["expressions"].items():
            exprs[k] = (
                form["sql"]
                if "sql" in form
                else pl.Expr.deserialize(io.StringIO(form["polars"]), format="json")
            )
        request = [Field(f["name"], f["dtype"]) for f in data.get("request", [])]
        return OnDemandFeatureView(
            data["name"], data["sources"], features, exprs, data.get("description", ""), request
        )
    src = data["source"]
    source: Source
    if src["kind"] == "parquet":
        source = ParquetSource(src["path"])
    elif src["kind"] == "csv":
        source = CsvSource(src["path"], src.get("delimiter", ","))
    elif src["kind"] == "sql":
        source = SqlSource(src["query"], src.get("base_dir"))
    else:
        base = frames_dir or Path(".")
        source = ParquetSource(base / f"{src['sha256']}.parquet")
    ttl = None if data.get("ttl_s") is None else timedelta(seconds=data["ttl_s"])
    return FeatureView(
        data["name"],
        data["entities"],
        source,
        data["timestamp_field"],
        features,
        created_timestamp_field=data.get("created_timestamp_field"),
        ttl=ttl,
        description=data.get("description", ""),
        tags=dict(data.get("tags", [])),
    )


def polars_dtype(dtype: str) -> Any:
    """The polars dtype of a declared dtype."""
    import polars as pl

    return {
        "int8": pl.Int8,
        "int16": pl.Int16,
        "int32": pl.Int32,
        "int64": pl.Int64,
        "float32": pl.Float32,
        "float64": pl.Float64,
        "string": pl.String,
        "bool": pl.Boolean,
    }[dtype]
