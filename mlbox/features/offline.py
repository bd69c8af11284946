"""The point-in-time join and the materialization query, as pure SQL builders.

No I/O here: each function turns a plan into DuckDB SQL text, so the
semantics can be read (and tested) in one place. The semantics:

* For an entity row at time ``t`` and a view, the chosen feature row is the one
  with the same join keys and the greatest ``event_ts <= t``; among rows with
  that event time, the greatest created time (NULL created sorts first).
* DuckDB's ASOF join picks *one* row per left row but says nothing about which
  one among rows tied on the inequality column. So when a view has a created
  timestamp, the inequality runs on one HUGEINT that orders by event time and
  then created time: ``event_us * 2^63 + (created_us + 2^62)`` against the
  entity side's ``t_us * 2^63 + (2^63 - 1)``. The greatest such key at or below
  the entity's is exactly the row above, found in one ASOF pass with no
  pre-aggregation over the source.
* TTL: after the join, a row whose ``event_ts < t - ttl`` is nulled. Because
  the ASOF row is the newest one, no older row could be within the TTL either.
* Every entity row appears once (ASOF LEFT JOIN), tagged with its input index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

SHIFT = 2**63  # the event part of the ordering key; created_us + 2^62 stays below it
CREATED_OFFSET = 2**62


@dataclass(frozen=True)
class JoinView:
    """One feature view as the join needs it (all names already identifiers)."""

    relation: str
    join_keys: tuple[str, ...]
    timestamp_field: str
    created_field: str | None
    features: tuple[tuple[str, str, str], ...]  # (source column, result column, DuckDB type)
    ttl_us: int | None
    tz_aware: bool


def q(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def _ts_type(tz_aware: bool) -> str:
    return "TIMESTAMPTZ" if tz_aware else "TIMESTAMP"


def _order_key(ev: str, cr: str) -> str:
    return (
        f"(epoch_us({ev})::HUGEINT * {SHIFT} + "
        f"(coalesce(epoch_us({cr}), -{CREATED_OFFSET})::HUGEINT + {CREATED_OFFSET}))"
    )


def _source_cte(i: int, v: JoinView) -> str:
    ts = _ts_type(v.tz_aware)
    cols = [q(k) for k in v.join_keys]
    ev = f"CAST({q(v.timestamp_field)} AS {ts})"
    cols.append(f"{ev} AS __ev")
    if v.created_field is not None:
        cr = f"CAST({q(v.created_field)} AS {ts})"
        cols.append(f"{_order_key(ev, cr)} AS __ord")
    cols += [f"CAST({q(src)} AS {typ}) AS {q(out)}" for src, out, typ in v.features]
    return f"s{i} AS (SELECT {', '.join(cols)} FROM {v.relation} WHERE {q(v.timestamp_field)} IS NOT NULL)"


def historical_sql(entity_table: str, views: list[JoinView]) -> str:
    """The point-in-time join of ``entity_table`` (columns: join keys, ``__ts``,
    ``__row``) with each view; returns ``__row`` and the feature columns, in
    no particular order: the caller sorts by ``__row`` (cheaper in polars than a
    DuckDB ORDER BY, which materializes every payload column). ``__ts`` has the
    same timezone-awareness as every view."""
    ctes = [_source_cte(i, v) for i, v in enumerate(views)]
    need_ord = any(v.created_field is not None for v in views)
    entity_cols = "*"
    if need_ord:
        entity_cols = f"*, (epoch_us(__ts)::HUGEINT * {SHIFT} + {SHIFT - 1}) AS __ord"
    ctes.insert(0, f"e AS (SELECT {entity_cols} FROM {q(entity_table)})")
    select = ["e.__row"]
    joins = []
    for i, v in enumerate(views):
        on = [f"e.{q(k)} = s{i}.{q(k)}" for k in v.join_keys]
        on.append(f"e.__ord >= s{i}.__ord" if v.created_field is not None else f"e.__ts >= s{i}.__ev")
        joins.append(f"ASOF LEFT JOIN s{i} ON {' AND '.join(on)}")
        for _, out, _ in v.features:
            col = f"s{i}.{q(out)}"
            if v.ttl_us is not None:
                col = f"CASE WHEN s{i}.__ev >= e.__ts - to_microseconds({v.ttl_us}) THEN {col} END"
            select.append(f"{col} AS {q(out)}")
    return f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM e {' '.join(joins)}"


def ts_literal(value: datetime, tz_aware: bool) -> str:
    """A DuckDB timestamp literal; naive datetimes mean UTC, aware ones are converted."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    naive = value.replace(tzinfo=None).isoformat(sep=" ")
    return f"TIMESTAMPTZ '{naive}+00:00'" if tz_aware else f"TIMESTAMP '{naive}'"


def latest_sql(v: JoinView, start: datetime, end: datetime) -> str:
    """The newest row per entity with ``start <= event_ts <= end``, as
    (join keys…, ``__ev_us``, ``__cr_us``, features…) ready for the online store."""
    ts = _ts_type(v.tz_aware)
    ev = f"CAST({q(v.timestamp_field)} AS {ts})"
    cr = f"CAST({q(v.created_field)} AS {ts})" if v.created_field else f"CAST(NULL AS {ts})"
    keys = ", ".join(q(k) for k in v.join_keys)
    feats = ", ".join(f"CAST({q(src)} AS {typ}) AS {q(out)}" for src, out, typ in v.features)
    return (
        f"SELECT {keys}, epoch_us({ev}) AS __ev_us, epoch_us({cr}) AS __cr_us, {feats} "
        f"FROM {v.relation} "
        f"WHERE {ev} >= {ts_literal(start, v.tz_aware)} AND {ev} <= {ts_literal(end, v.tz_aware)} "
        + "".join(f"AND {q(k)} IS NOT NULL " for k in v.join_keys)
        + f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ev} DESC, {cr} DESC NULLS LAST) = 1"
    )


def event_range_sql(v: JoinView) -> str:
    """Oldest and newest event time of a source, as epoch microseconds."""
    ev = f"CAST({q(v.timestamp_field)} AS {_ts_type(v.tz_aware)})"
    return f"SELECT epoch_us(min({ev})), epoch_us(max({ev})) FROM {v.relation}"
