"""Definitions from a YAML file, so a repository can keep its features as data.

The format (every key optional except names; paths relative to the file)::

    entities:
      - name: driver
        join_keys: [driver_id]
    feature_views:
      - name: driver_stats
        entities: [driver]
        source: {parquet: data/stats/}        # or {csv: x.csv}, {sql: "SELECT …"}
        timestamp_field: event_ts
        created_timestamp_field: created_ts
        ttl: 2d                               # 90s, 30m, 12h, 2d, 1w or seconds
        features:
          - {name: trips, dtype: int64}
          - conv_rate: float64                # shorthand
    on_demand_feature_views:
      - name: driver_derived
        sources: [driver_stats]
        request: {fare: float64}              # values sent with each lookup (or a list like features)
        features:
          - {name: trips_per_rate, dtype: float64, expression: "trips / conv_rate"}
          - {name: fare_per_trip, dtype: float64, expression: "fare / nullif(trips, 0)"}

Errors name the file, the entry and the key, because a YAML mistake is the
most common bad input a feature store sees.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlbox.features.definitions import (
    CsvSource,
    Definition,
    Entity,
    FeatureView,
    Field,
    OnDemandFeatureView,
    ParquetSource,
    Source,
    SqlSource,
)
from mlbox.store.errors import InvalidInput, MlboxError

_TTL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TOP_KEYS = {"entities", "feature_views", "on_demand_feature_views"}


def parse_ttl(value: object, where: str = "ttl") -> timedelta | None:
    """``None``/``0`` (no TTL), seconds as a number, or ``'90s'``/``'30m'``/``'12h'``/``'2d'``/``'1w'``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: {value!r} is not a duration", field="ttl")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _TTL_RE.match(str(value))
        if not m:
            raise InvalidInput(f"{where}: {value!r} is not a duration like 90s, 30m, 12h, 2d", field="ttl")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    return None if seconds == 0 else timedelta(seconds=seconds)


def ttl_text(seconds: float | None) -> str:
    """A TTL as `parse_ttl` reads it back: ``1w``, ``7d``, ``12h``, ``90s`` (the largest whole unit); ``-`` for none."""
    if seconds is None:
        return "-"
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def load_definitions(path: str | Path) -> list[Definition]:
    """Parse a YAML definitions file into definition objects (not yet applied)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(f"definitions file {str(path)!r} does not exist", field="path") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}", field="path") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping with {sorted(_TOP_KEYS)}", field="path")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise InvalidInput(
            f"{path}: unknown section {unknown[0]!r} (expected {sorted(_TOP_KEYS)})", field="path"
        )
    base = path.resolve().parent
    defs: list[Definition] = []
    for section, build in (
        ("entities", _entity),
        ("feature_views", _feature_view),
        ("on_demand_feature_views", _on_demand),
    ):
        items = data.get(section) or []
        if not isinstance(items, list):
            raise InvalidInput(f"{path}: {section} must be a list", field=section)
        for i, item in enumerate(items):
            where = f"{path.name}: {section}[{i}]"
            if not isinstance(item, dict):
                raise InvalidInput(f"{where} must be a mapping", field=section)
            if "name" in item:
                where = f"{path.name}: {section} {item['name']!r}"
            try:
                defs.append(build(item, base))
            except MlboxError as exc:
                raise InvalidInput(f"{where}: {exc.message}", field=exc.field) from None
            except KeyError as exc:
                raise InvalidInput(f"{where}: missing key {exc.args[0]!r}", field=str(exc.args[0])) from None
    return defs


def _entity(item: dict[str, Any], base: Path) -> Entity:
    return Entity(item["name"], item["join_keys"], item.get("description", ""))


def _fields(items: object, *, with_expr: bool = False) -> tuple[list[Field], dict[str, str]]:
    if not isinstance(items, list):
        raise InvalidInput("features must be a list", field="features")
    fields: list[Field] = []
    exprs: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict) and "name" not in item and len(item) == 1:
            ((name, dtype),) = item.items()
            item = {"name": name, "dtype": dtype}
        if not isinstance(item, dict):
            raise InvalidInput(f"feature {item!r} must be {{name: …, dtype: …}}", field="features")
        fields.append(Field(item["name"], item.get("dtype", "float64"), item.get("description", "")))
        if with_expr:
            if "expression" not in item:
                raise InvalidInput(f"feature {item['name']!r} has no expression", field="expression")
            exprs[item["name"]] = str(item["expression"])
    return fields, exprs


def _source(spec: object, base: Path) -> Source:
    if not isinstance(spec, dict) or len({"parquet", "csv", "sql"} & set(spec)) != 1:
        raise InvalidInput("source must be one of {parquet: path}, {csv: path}, {sql: query}", field="source")

    def resolve(p: str) -> str:
        return str(p) if Path(p).is_absolute() else str(base / p)

    if "parquet" in spec:
        return ParquetSource(resolve(spec["parquet"]))
    if "csv" in spec:
        return CsvSource(resolve(spec["csv"]), spec.get("delimiter", ","))
    return SqlSource(str(spec["sql"]), base_dir=str(base))


def _feature_view(item: dict[str, Any], base: Path) -> FeatureView:
    fields, _ = _fields(item["features"])
    tags = item.get("tags") or {}
    return FeatureView(
        item["name"],
        list(item["entities"]),
        _source(item["source"], base),
        item["timestamp_field"],
        fields,
        created_timestamp_field=item.get("created_timestamp_field"),
        ttl=parse_ttl(item.get("ttl")),
        description=item.get("description", ""),
        tags={str(k): str(v) for k, v in tags.items()},
    )


def _on_demand(item: dict[str, Any], base: Path) -> OnDemandFeatureView:
    fields, exprs = _fields(item["features"], with_expr=True)
    return OnDemandFeatureView(
        item["name"],
        list(item["sources"]),
        fields,
        exprs,
        item.get("description", ""),
        _request(item.get("request")),
    )


def _request(spec: object) -> dict[str, str]:
    """``request: {amount: float64}`` or a list in the features' forms (no expressions);
    names and dtypes are checked by the view (`definitions.request_fields`)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        spec = [{"name": k, "dtype": v} for k, v in spec.items()]
    if not isinstance(spec, list):
        raise InvalidInput("request must be a mapping {name: dtype} or a list of fields", field="request")
    out: dict[str, str] = {}
    for item in spec:
        if isinstance(item, dict) and "name" not in item and len(item) == 1:
            ((name, dtype),) = item.items()
            item = {"name": name, "dtype": dtype}
        if not isinstance(item, dict) or "name" not in item:
            raise InvalidInput(f"request field {item!r} must be {{name: …, dtype: …}}", field="request")
        name = str(item["name"])
        if name in out:
            raise InvalidInput(f"request field {name!r} is declared twice", field="request")
        out[name] = str(item.get("dtype", "float64"))
    return out
