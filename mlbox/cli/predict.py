"""``mlbox predict``: batch scoring of a Parquet or CSV file with a registered model.

Thin: the command checks its options, loads the model (its files verified
against their sha256), and hands the file to `mlbox.serving.batch.score_file`,
the engine every batch caller shares (chunked, constant memory, output
renamed into place only when whole; feature-view models looked up
point-in-time or online as serving does). What stays here is what a terminal
user sees: the usage errors, the progress bar (`progress_bar`, fed by ``score_file``'s
progress callback) and the summary line, which counts the rows scored with a
missing value (they reach the model as NaN; see `mlbox.serving.batch`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlbox.cli.context import Context, pass_ctx, progress_bar
from mlbox.serving.batch_formats import DEFAULT_TIMESTAMP_COLUMN, FORMATS

if TYPE_CHECKING:
    import rich.progress

    from mlbox.serving.batch import ProgressCallback


def _advance(bar: rich.progress.Progress, description: str) -> ProgressCallback:
    """``score_file``'s progress callback drawing ``bar``: its task appears once the input is open."""
    task: rich.progress.TaskID | None = None

    def update(done: int, total: int | None) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task(description, total=total)
        bar.update(task, completed=done)

    return update


@click.command()
@click.argument("ref")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="The Parquet file to write."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Rows per chunk (memory is bounded by one chunk).",
)
@click.option(
    "--keep-inputs/--no-keep-inputs",
    default=True,
    show_default=True,
    help="Copy the input columns into the output beside the predictions.",
)
@click.option(
    "--columns", default=None, help="Comma-separated feature columns (default: as the signature says)."
)
@click.option(
    "--prediction-column", default="prediction", show_default=True, help="Name of the predictions' column."
)
@click.option(
    "--timestamp-column",
    default=None,
    help="Feature-view models: the entity time column for point-in-time values "
    f"(default {DEFAULT_TIMESTAMP_COLUMN}, when the input has it).",
)
@click.option(
    "--online", is_flag=True, help="Feature-view models: the latest online values, even with a time column."
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Feature-view models: score rows whose entity has no feature values (NaN) instead of refusing.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: split a Parquet input across the Ray cluster of MLBOX_EXECUTOR with Ray Data "
    "(the input and the output's folder must be paths its nodes reach).",
)
@pass_ctx
def predict(
    ctx: Context,
    ref: str,
    input_path: Path,
    output: Path,
    batch_size: int,
    keep_inputs: bool,
    columns: str | None,
    prediction_column: str,
    timestamp_column: str | None,
    online: bool,
    allow_missing: bool,
    executor: str,
) -> None:
    """Score INPUT (.parquet or .csv) with model REF into a Parquet file, chunk by chunk.

    REF is NAME@ALIAS (e.g. digits@champion), NAME/VERSION or NAME (the latest).
    A missing value (empty CSV cell, null, NaN) reaches the model as NaN; the
    summary line counts such rows, and a model that refuses NaN fails naming them.
    A model registered with feature views as inputs takes entity keys: its
    features are looked up point-in-time at the rows' event_timestamp (or
    --timestamp-column) when the input has it, else from the online store.
    """
    if input_path.suffix.lower() not in FORMATS:
        raise click.BadParameter(f"{input_path} must be a .parquet or .csv file", param_hint="INPUT")
    if not input_path.is_file():
        raise click.BadParameter(f"no such file: {input_path}", param_hint="INPUT")
    if output.suffix.lower() != ".parquet":
        raise click.BadParameter(f"{output} must end with .parquet", param_hint="--output")
    if not output.parent.is_dir():
        raise click.BadParameter(f"no such folder: {output.parent}", param_hint="--output")
    if not prediction_column:
        raise click.BadParameter("must not be empty", param_hint="--prediction-column")
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns is not None else None
    if chosen is not None and not chosen:
        raise click.BadParameter("name at least one column", param_hint="--columns")
    if online and timestamp_column is not None:
        raise click.BadParameter("give --timestamp-column or --online, not both", param_hint="--online")

    from mlbox.serving.batch import BatchOptions, score_file  # numpy and the flavors: not for --help

    started = time.monotonic()
    model = ctx.services.registry.load(ref)  # verified against the sha256 recorded at registration
    refs = model.version.manifest.get("features")
    if refs and chosen is not None:
        raise click.BadParameter(
            f"{ref} looks its features up by entity ({', '.join(refs)}); it takes no columns",
            param_hint="--columns",
        )
    options = BatchOptions(
        batch_size=batch_size,
        keep_inputs=keep_inputs,
        columns=tuple(chosen) if chosen is not None else None,
        prediction_column=prediction_column,
        timestamp_column=timestamp_column,
        online=online,
        allow_missing=allow_missing,
    )
    label = f"{model.version.name} v{model.version.version}"
    if executor == "ray":
        cluster = ctx.settings.scheduler.executor
        if not cluster.startswith("ray://"):
            raise click.BadParameter("needs MLBOX_EXECUTOR=ray://HOST:PORT", param_hint="--executor")
        from mlbox.serving.batch_ray import score_on_ray

        result = score_on_ray(cluster, input_path, output, model, options)
    else:
        with progress_bar("rows") as bar:  # on stderr, and only when it is a terminal
            result = score_file(
                input_path,
                output,
                model,
                options,
                feature_store=ctx.services.features,
                progress=_advance(bar, f"scoring with {label}"),
            )
    seconds = time.monotonic() - started
    looked_up = "" if result.features is None else f"features: {result.features}; "
    click.echo(
        f"scored {result.rows:,} rows with {model.version.name} version {model.version.version} "
        f"-> {output}  ({looked_up}{missing_text(result.rows_with_missing)}; "
        f"{seconds:.1f} s, {result.rows / max(seconds, 1e-9):,.0f} rows/s)"
    )


def missing_text(rows: int) -> str:
    """The summary's count of rows scored with a value missing: never silent, even when none was."""
    if rows == 0:
        return "no missing values"
    return f"{rows:,} row{'' if rows == 1 else 's'} with missing values (passed to the model as NaN)"
