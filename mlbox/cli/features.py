"""``mlbox features``: the feature store from the shell (definitions, materialization, lookups).

Features are named as everywhere else: ``VIEW:FEATURE``, ``VIEW:*`` or a
pinned ``VIEW:FEATURE@v2``. Times on the command line are ISO 8601
(``2024-05-01``, ``2024-05-01T12:00``, with or without an offset; naive means
UTC) or ``now``. Entity rows for ``get`` are ``--entity key=value[,key=value]``,
one option per row; values that read as JSON numbers are numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx, print_table, progress_bar, when
from mlbox.features.loader import ttl_text
from mlbox.features.schemas import DeleteResult, MaterializeProgress, ViewInfo
from mlbox.store.errors import MlboxError
from mlbox.timefmt import age

if TYPE_CHECKING:
    import polars as pl

MAX_FEATURES_SHOWN = 6


@click.group()
def features() -> None:
    """Feature store: entities, feature views, training sets, online features."""


def _freshness(view: ViewInfo) -> str:
    f = view.freshness
    if view.kind != "feature_view":
        request = ", ".join(f"{r.name}:{r.dtype}" for r in view.request)
        return f"on demand · request {request}" if request else "on demand"
    if f is None or f.materialized_end is None:
        return "never materialized"
    return f"to {when(f.materialized_end)}  newest {when(f.newest_event_ts)}  {f.rows:,} rows"


@features.command("ls")
@json_option
@pass_ctx
def features_ls(ctx: Context, as_json: bool) -> None:
    """List entities and views: versions, features, TTL and freshness."""
    store = ctx.services.features
    entities, views = store.list_entities(), store.list_views()
    if as_json:
        echo_json({"entities": entities, "views": views})
        return
    hint = "register definitions with: mlbox features apply DEFS.yaml"
    print_table(
        ["ENTITY", "JOIN KEYS"],
        [[e.name, ", ".join(e.join_keys)] for e in entities],
        empty=f"no entities yet; {hint}",
    )
    click.echo("")
    rows = []
    for v in views:
        names = [f.name for f in v.features]
        shown = ", ".join(names[:MAX_FEATURES_SHOWN]) + (
            f", … (+{len(names) - MAX_FEATURES_SHOWN})" if len(names) > MAX_FEATURES_SHOWN else ""
        )
        rows.append([v.name, f"v{v.version}", len(v.versions), ttl_text(v.ttl_s), shown, _freshness(v)])
    print_table(
        ["VIEW", "VERSION", "OF", "TTL", "FEATURES", "FRESHNESS"],
        rows,
        empty=f"no features yet; {hint}",
        right={"VERSION", "OF", "TTL"},
    )


@features.command("apply")
@click.argument("definitions", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and show what would change; write nothing.")
@json_option
@pass_ctx
def features_apply(ctx: Context, definitions: Path, dry_run: bool, as_json: bool) -> None:
    """Register the entities and views of a YAML definitions file.

    Every view is checked against its source first; a changed view becomes a
    new version, older versions stay usable.
    """
    try:
        result = ctx.services.features.apply(definitions, dry_run=dry_run)
    except MlboxError as exc:  # YAML parser messages span lines; a CLI error is one
        if "\n" not in exc.message:
            raise
        raise type(exc)(" ".join(exc.message.split()), field=exc.field) from None
    if as_json:
        echo_json(result)
        return
    print_table(
        ["ACTION", "KIND", "NAME"],
        [
            [c.action, c.kind, c.name + ("" if c.version is None else f" v{c.version}")]
            for c in result.changes
        ],
        empty="nothing to apply",
    )
    if result.changes and dry_run:
        click.echo("(dry run: nothing written)")


def _versions(numbers: list[int]) -> str:
    if not numbers:
        return "no versions"
    if len(numbers) == 1:
        return f"v{numbers[0]}"
    return f"v{numbers[0]}–v{numbers[-1]}"


def _deletion(result: DeleteResult) -> str:
    """What a view's deletion keeps and removes, in words."""
    return (
        f"{_versions(result.versions)} kept for training-set lineage, "
        f"{result.online_rows:,} online row{'' if result.online_rows == 1 else 's'} removed"
    )


@features.command("delete")
@click.argument("name")
@click.option("--entity", "is_entity", is_flag=True, help="NAME is an entity, not a feature view.")
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
@json_option
@pass_ctx
def features_delete(ctx: Context, name: str, is_entity: bool, yes: bool, as_json: bool) -> None:
    """Delete a feature view (or, with --entity, an entity).

    A deleted view no longer lists or resolves and its online values are
    removed; its versions stay, so training sets built from it keep their
    lineage, and applying its definition again restores it. Refused while an
    on-demand view or a registered model version uses the view (or a view
    uses the entity).
    """
    store = ctx.services.features
    delete = store.delete_entity if is_entity else store.delete_view
    what = f"entity {name!r}" if is_entity else f"feature view {name!r}"
    planned = delete(name, dry_run=True)  # not found, or in use: refused before asking
    if not yes:
        detail = "" if is_entity else f" ({_deletion(planned)})"
        try:
            confirmed = click.confirm(f"delete {what}{detail}?", default=False, err=True)
        except click.Abort:  # end of input: no answer is not a yes
            confirmed = False
        if not confirmed:
            click.echo("nothing deleted (answer y, or pass --yes)", err=True)
            raise click.exceptions.Exit(1)
    result = delete(name)
    if as_json:
        echo_json(result)
        return
    if is_entity:
        click.echo(f"deleted entity {name}")
    else:
        click.echo(f"deleted feature view {name}: {_deletion(result)}")


def parse_time(text: str, hint: str) -> dt.datetime:
    """ISO 8601 or ``now``; naive times are UTC (as the service reads them)."""
    if text.strip().lower() == "now":
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00)", param_hint=hint
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_duration(text: str | None, hint: str) -> dt.timedelta | None:
    if text is None:
        return None
    from mlbox.features.loader import parse_ttl
    from mlbox.store.errors import InvalidInput

    try:
        value = parse_ttl(text, hint)
    except InvalidInput as exc:
        raise click.BadParameter(exc.message, param_hint=hint) from None
    if value is None:
        raise click.BadParameter("must be a positive duration like 1d", param_hint=hint)
    return value


class _Bars:
    """One rich progress task per view (chunks done of its total), added when its first chunk is reported."""

    def __init__(self, quiet: bool) -> None:
        self.progress = None if quiet else progress_bar("chunks")
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, p: MaterializeProgress) -> None:
        if self.progress is None:
            return
        key = f"{p.view} v{p.version}"
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(key, total=p.chunks)
        self.progress.advance(self.tasks[key])


@features.command("materialize")
@click.option("--start", help="Window start (ISO 8601); with --end.")
@click.option("--end", help="Window end (ISO 8601 or now); with --start, or with --incremental.")
@click.option("--incremental", is_flag=True, help="From where each view last stopped up to --end (now).")
@click.option("--view", "views", multiple=True, help="Only this view (repeatable); default all.")
@click.option("--chunk", help="Backfill in windows of this length (e.g. 1d), oldest first.")
@json_option
@pass_ctx
def features_materialize(
    ctx: Context,
    start: str | None,
    end: str | None,
    incremental: bool,
    views: tuple[str, ...],
    chunk: str | None,
    as_json: bool,
) -> None:
    """Copy the latest value per entity into the online store.

    Either a window (--start and --end, a backfill when the window is long;
    split it with --chunk) or --incremental. Re-running is safe: a stored
    value is only replaced by a newer one.
    """
    if incremental and start is not None:
        raise click.BadParameter("give --start/--end or --incremental, not both", param_hint="--start")
    if not incremental and (start is None or end is None):
        raise click.BadParameter("give --start and --end, or --incremental", param_hint="--start")
    step = parse_duration(chunk, "--chunk")
    end_at = None if end is None else parse_time(end, "--end")
    store = ctx.services.features
    with _Bars(quiet=as_json) as bars:  # drawn on stderr, and only when it is a terminal
        if incremental:
            results = store.materialize_incremental(end_at, list(views) or None, chunk=step, progress=bars)
        else:
            start_at = parse_time(start or "", "--start")
            assert end_at is not None
            if start_at >= end_at:
                raise click.BadParameter("must be before --end", param_hint="--start")
            results = store.materialize(start_at, end_at, list(views) or None, chunk=step, progress=bars)
    if as_json:
        echo_json(results)
        return
    for r in results:
        click.echo(
            f"{r.view} v{r.version}: {r.rows:,} rows from {when(r.start)} to {when(r.end)} "
            f"in {r.chunks} chunk{'s' if r.chunks != 1 else ''}, {r.seconds:.2f} s"
        )
    if not results:
        click.echo("no feature views to materialize")


def _value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else text


def parse_entity(text: str) -> dict[str, Any]:
    """``key=value[,key=value]`` → one entity row."""
    row: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{text!r} is not key=value[,key=value]", param_hint="--entity")
        if key in row:
            raise click.BadParameter(f"{text!r} names {key!r} twice", param_hint="--entity")
        row[key] = _value(raw.strip())
    return row


def _cell(column: str, v: Any) -> str:
    """A value for the table: event times as times, ages as durations (JSON keeps the numbers)."""
    if v is None:
        return "-"
    if column.endswith("__event_ts"):
        return when(v)
    if column.endswith("__age_s"):
        return age(float(v))
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@features.command("get")
@click.argument("refs", nargs=-1, required=True, metavar="VIEW:FEATURE...")
@click.option(
    "--entity", "entities", multiple=True, required=True, help="One entity row: key=value[,key=value]."
)
@click.option("--with-event-time", is_flag=True, help="Also show each value's event time and age.")
@click.option("--full-feature-names", is_flag=True, help="Name columns view__feature.")
@json_option
@pass_ctx
def features_get(
    ctx: Context,
    refs: tuple[str, ...],
    entities: tuple[str, ...],
    with_event_time: bool,
    full_feature_names: bool,
    as_json: bool,
) -> None:
    """Online values for entity rows (missing or older than the TTL: '-')."""
    rows = [parse_entity(e) for e in entities]
    answer = ctx.services.features.get_online_features(
        rows, list(refs), with_event_time=with_event_time, full_feature_names=full_feature_names
    )
    if as_json:
        echo_json(answer)
        return
    columns = list(answer)
    cells = [[_cell(c, answer[c][i]) for c in columns] for i in range(len(rows))]
    print_table(columns, cells, empty="no entity rows")


def read_frame(path: Path) -> pl.DataFrame:
    """An entity frame from Parquet, CSV or JSON lines, by suffix."""
    import polars as pl

    suffix = path.suffix.lower()
    if not path.exists():
        raise click.BadParameter(f"no such file: {path}", param_hint="ENTITY_FILE")
    try:
        if suffix == ".csv":
            return pl.read_csv(path, try_parse_dates=True)
        if suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(path)
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises many types for unreadable files
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="ENTITY_FILE") from None


@features.command("history")
@click.argument("entity_file", type=click.Path(dir_okay=False, path_type=Path), metavar="ENTITY_FILE")
@click.argument("refs", nargs=-1, required=True, metavar="VIEW:FEATURE...")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the training set (.parquet or .csv).")  # fmt: skip
@click.option("--timestamp-field", default="event_timestamp", show_default=True,
              help="The entity file's time column.")  # fmt: skip
@click.option("--full-feature-names", is_flag=True, help="Name columns view__feature.")
@click.option("--name", help="A name for the training-set record.")
@json_option
@pass_ctx
def features_history(
    ctx: Context,
    entity_file: Path,
    refs: tuple[str, ...],
    output: Path,
    timestamp_field: str,
    full_feature_names: bool,
    name: str | None,
    as_json: bool,
) -> None:
    """Build a point-in-time correct training set from an entity file (Parquet, CSV, JSONL).

    Each row gets, per view, the latest feature row at or before its time and
    within the view's TTL. The record (views, versions, entity hash) is saved.
    """
    if output.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter("must end in .parquet or .csv", param_hint="--output")
    frame = read_frame(entity_file)
    job = ctx.services.features.get_historical_features(
        frame, list(refs), timestamp_field=timestamp_field, full_feature_names=full_feature_names, name=name
    )
    result = job.to_polars()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    if output.suffix.lower() == ".csv":
        result.write_csv(tmp)
    else:
        result.write_parquet(tmp)
    tmp.replace(output)
    record = job.training_set
    if as_json:
        echo_json(record)
        return
    pinned = ", ".join(f"{v.name} v{v.version}" for v in record.views)
    click.echo(f"training set {record.id}: {result.height:,} rows, {result.width} columns -> {output}")
    click.echo(f"  views {pinned}  entity hash {record.entity_hash[:12]}")
