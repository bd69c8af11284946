"""Running the offline join: entity frame checks, the views' joins, on-demand features.

The point-in-time math is `mlbox.features.pointintime` (pure numpy); this
module owns the I/O around it. Each view's source is checked by DuckDB
(`sources.describe`, the footers or a CSV sample) and the entity frame against
it, then `viewjoin.view_values` reads the source in batches that
`BucketJoin.merge` folds into each entity row's best source row so far, within
the store's ``memory_limit``, so a source larger than memory joins. The views'
columns are put beside the entity frame, on-demand features computed from
them. `sample` and `event_range` run their SQL on DuckDB.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from mlbox.features import sources as src
from mlbox.features import viewjoin
from mlbox.features.definitions import (
    DUCKDB_TYPES,
    FeatureView,
    OnDemandFeatureView,
    polars_dtype,
)
from mlbox.features.offline import JoinView, event_range_sql, q
from mlbox.features.refs import FeaturePlan, ResolvedView, internal_name
from mlbox.features.request import request_columns
from mlbox.features.schemas import TrainingSetInfo
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import polars as pl


class RetrievalJob:
    """The result of `FeatureStore.get_historical_features` (already computed),
    with its training-set record: ``to_polars()``, ``to_pandas()`` / ``to_df()``
    (Feast's name), ``to_arrow()``, ``training_set_id``."""

    def __init__(self, frame: pl.DataFrame, training_set: TrainingSetInfo) -> None:
        self._frame = frame
        self.training_set = training_set

    @property
    def training_set_id(self) -> int:
        return self.training_set.id

    def to_polars(self) -> pl.DataFrame:
        return self._frame

    def to_pandas(self) -> pd.DataFrame:
        return self._frame.to_pandas()

    def to_df(self) -> pd.DataFrame:
        return self.to_pandas()

    def to_arrow(self) -> Any:
        return self._frame.to_arrow()

    def __len__(self) -> int:
        return self._frame.height

    def __repr__(self) -> str:
        return f"RetrievalJob(training_set_id={self.training_set_id}, rows={self._frame.height})"


def join_view(
    con: duckdb.DuckDBPyConnection, view: ResolvedView, features: tuple[str, ...]
) -> tuple[JoinView, dict[str, str]]:
    """The join plan of a view version, after checking its source still fits it."""
    fv = view.feature_view
    schema = src.describe(con, fv.source, f"feature view {fv.name!r} v{view.version}")
    aware = src.check_schema(fv, view.join_keys, schema)
    dtypes = view.dtypes
    ttl_us = None if fv.ttl is None else int(fv.ttl.total_seconds() * 1_000_000)
    return JoinView(
        relation=src.relation_sql(fv.source),
        join_keys=view.join_keys,
        timestamp_field=fv.timestamp_field,
        created_field=fv.created_timestamp_field,
        features=tuple((f, internal_name(fv.name, f), DUCKDB_TYPES[dtypes[f]]) for f in features),
        ttl_us=ttl_us,
        tz_aware=aware,
    ), schema


def entity_frame(entity_df: Any) -> pl.DataFrame:
    import polars as pl

    if isinstance(entity_df, pl.DataFrame):
        return entity_df
    import pandas as pd

    if isinstance(entity_df, pd.DataFrame):
        return pl.from_pandas(entity_df)
    raise InvalidInput("entity_df must be a polars or pandas DataFrame", field="entity_df")


def entity_hash(frame: pl.DataFrame) -> str:
    """A digest of the entity frame's schema and rows (what lineage compares)."""
    h = hashlib.sha256(repr(list(frame.schema.items())).encode())
    if frame.height:
        h.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()[:16]


def historical(
    entity_df: Any,
    plan: FeaturePlan,
    *,
    timestamp_field: str,
    full_feature_names: bool,
    config: dict[str, Any],
    batch_rows: int | None = None,
) -> tuple[pl.DataFrame, str, int]:
    """The point-in-time frame, the entity frame's hash and its row count.

    ``batch_rows`` (default: from ``config['memory_limit']``) is how many source
    rows are in memory at once; tests lower it to force many batches.
    """
    import polars as pl

    frame = entity_frame(entity_df)
    names = plan.output_names(full_feature_names)
    if timestamp_field not in frame.columns:
        raise InvalidInput(
            f"the entity frame has no {timestamp_field!r} column (columns: {', '.join(frame.columns)})",
            field="entity_df",
        )
    ts_dtype = frame.schema[timestamp_field]
    if isinstance(ts_dtype, pl.Date):
        ts_dtype = pl.Datetime("us")
    if not isinstance(ts_dtype, pl.Datetime):
        raise InvalidInput(
            f"entity frame column {timestamp_field!r} is {ts_dtype}, not a datetime", field="entity_df"
        )
    entity_aware = ts_dtype.time_zone is not None
    for view_req in plan.views:
        missing = [k for k in view_req.view.join_keys if k not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the entity frame lacks join key {missing[0]!r} needed by view {view_req.view.name!r}",
                field="entity_df",
            )
    clash = sorted(set(names) & set(frame.columns))
    if clash:
        raise InvalidInput(
            f"entity frame column {clash[0]!r} has the name of a requested feature; rename it"
            + ("" if full_feature_names else " or pass full_feature_names=True"),
            field="entity_df",
        )
    # Entity times as epoch microseconds (absolute for aware columns, wall clock as UTC
    # for naive ones, as DuckDB's epoch_us reads the sources); a NULL time matches nothing.
    times = frame.get_column(timestamp_field).cast(ts_dtype).dt.epoch("us")
    timed = times.is_not_null().to_numpy()
    t_us = times.fill_null(0).to_numpy()

    # The checks only DESCRIBE the sources: the database `apply`'s checks opened serves.
    con = src.connect(src.DESCRIBE_CONFIG, [r.view.feature_view.source for r in plan.views])
    try:
        checked = []
        for view_req in plan.views:
            jv, schema = join_view(con, view_req.view, view_req.features)
            _check_entity_side(frame, view_req.view, schema, jv.tz_aware, entity_aware, timestamp_field)
            checked.append((view_req.view, jv, schema))
    finally:
        con.close()
    parts = [
        viewjoin.view_values(
            config, frame, t_us, timed, view, jv, schema, batch_rows or viewjoin.rows_per_batch(config, jv)
        )
        for view, jv, schema in checked
    ]
    result = pl.concat(parts, how="horizontal") if parts else pl.DataFrame()
    if result.width and result.height != frame.height:  # every entity row once; never silently lose rows
        raise AssertionError(f"point-in-time join returned {result.height} rows for {frame.height}")
    out = pl.concat([frame, result], how="horizontal") if result.width else frame
    out = apply_on_demand(out, plan)
    rename = {internal_name(o.view, o.feature): o.name(full_feature_names) for o in plan.outputs}
    final = out.select(*frame.columns, *[pl.col(k).alias(v) for k, v in rename.items()])
    return final, entity_hash(frame), frame.height


def _check_entity_side(
    frame: pl.DataFrame,
    view: ResolvedView,
    schema: dict[str, str],
    source_aware: bool,
    entity_aware: bool,
    timestamp_field: str,
) -> None:
    import polars as pl

    if source_aware != entity_aware:
        kinds = ("timezone-aware", "timezone-naive")
        raise InvalidInput(
            f"entity frame column {timestamp_field!r} is {kinds[not entity_aware]} but view {view.name!r}'s "
            f"timestamps are {kinds[not source_aware]}; make both naive or both aware",
            field="entity_df",
        )
    for key in view.join_keys:
        dtype = frame.schema[key]
        source_is_int = src.family(schema[key]) in src.INT_FAMILIES
        entity_is_int = dtype.is_integer()
        entity_is_str = dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)
        if dtype == pl.Null:
            continue
        if (source_is_int and not entity_is_int) or (not source_is_int and not entity_is_str):
            raise InvalidInput(
                f"entity frame join key {key!r} is {dtype} but view {view.name!r}'s source has {schema[key]}",
                field="entity_df",
            )


def apply_on_demand(frame: pl.DataFrame, plan: FeaturePlan) -> pl.DataFrame:
    """Add each requested on-demand feature (as ``view__feature``) computed from its
    source views' fetched features and its request fields (the entity frame's
    columns of those names), which the expressions know by plain names."""
    import polars as pl

    for req in plan.on_demand:
        odfv = req.view.definition
        assert isinstance(odfv, OnDemandFeatureView)
        inputs = request_columns(frame, req.view.name, req.request)
        for src_name, src_version in req.view.source_versions:
            source_req = next(
                v for v in plan.views if v.view.name == src_name and v.view.version == src_version
            )
            inputs += [pl.col(internal_name(src_name, f)).alias(f) for f in source_req.features]
        dtypes = {f.name: f.dtype for f in odfv.features}
        exprs = odfv.polars_exprs()
        computed = frame.select(inputs).select(
            [exprs[f].cast(polars_dtype(dtypes[f])).alias(internal_name(odfv.name, f)) for f in req.features]
        )
        frame = pl.concat([frame, computed], how="horizontal")
    return frame


def sample(view: ResolvedView, n: int, config: dict[str, Any]) -> pl.DataFrame:
    """The newest ``n`` rows of a feature view's source, declared columns only."""
    import polars as pl

    if not isinstance(view.definition, FeatureView):
        raise InvalidInput(f"{view.name!r} is an on-demand view: it has no rows of its own", field="view")
    fv = view.definition
    con = src.connect(config, [fv.source])
    try:
        jv, _ = join_view(con, view, tuple(fv.feature_names))
        cols = [*view.join_keys, fv.timestamp_field]
        if fv.created_timestamp_field:
            cols.append(fv.created_timestamp_field)
        cols += fv.feature_names
        sql = (
            f"SELECT {', '.join(q(c) for c in cols)} FROM {jv.relation} "
            f"ORDER BY {q(fv.timestamp_field)} DESC NULLS LAST LIMIT {int(n)}"
        )
        frame = pl.from_arrow(con.sql(sql).to_arrow_table())
    finally:
        con.close()
    assert isinstance(frame, pl.DataFrame)
    return frame


def event_range(view: ResolvedView, config: dict[str, Any]) -> tuple[int | None, int | None]:
    """Oldest and newest event time of a view's source (epoch microseconds)."""
    con = src.connect(config, [view.feature_view.source])
    try:
        jv, _ = join_view(con, view, ())
        row = con.execute(event_range_sql(jv)).fetchone()
    finally:
        con.close()
    return (None, None) if row is None else (row[0], row[1])
