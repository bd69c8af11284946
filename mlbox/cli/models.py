"""``mlbox models``: the model registry from the shell (list, show, register, move aliases).

References are written as everywhere else (`mlbox.registry.refs`): ``NAME``
(the latest version), ``NAME@alias``, ``NAME/3`` or ``NAME:3``. Alias moves
print ``from -> to`` so a promotion or a rollback can be read back from a
terminal log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx, print_table, when
from mlbox.registry.flavor_names import DETECT_ORDER
from mlbox.registry.refs import check_alias, check_name

if TYPE_CHECKING:
    from mlbox.registry.schemas import ModelVersion

MAX_COLUMNS_SHOWN = 8


@click.group()
def models() -> None:
    """Registered models: versions, aliases (champion, challenger…), lineage."""


@models.command("ls")
@json_option
@pass_ctx
def models_ls(ctx: Context, as_json: bool) -> None:
    """List models with their latest version and where their aliases point."""
    found = ctx.services.registry.list_models()
    if as_json:
        echo_json(found)
        return
    rows = [
        [
            m.name,
            "-" if m.latest_version is None else m.latest_version,
            m.version_count,
            when(m.created_at),
            "  ".join(f"{a}={v}" for a, v in m.aliases.items()),
        ]
        for m in found
    ]
    print_table(
        ["NAME", "LATEST", "VERSIONS", "CREATED", "ALIASES"],
        rows,
        empty="no models yet; register one with: mlbox models register NAME --run RUN_ID",
        right={"LATEST", "VERSIONS"},
    )


def _print_versions(versions: list[ModelVersion]) -> None:
    rows = [
        [v.version, v.flavor, "-" if v.run_id is None else v.run_id, when(v.created_at), ", ".join(v.aliases)]
        for v in versions
    ]
    print_table(
        ["VERSION", "FLAVOR", "RUN", "CREATED", "ALIASES"],
        rows,
        empty="no versions",
        right={"VERSION", "RUN"},
    )


def _echo_version(v: ModelVersion) -> None:
    aliases = f"  @{' @'.join(v.aliases)}" if v.aliases else ""
    click.echo(f"version {v.version}  [{v.flavor}]{aliases}  registered {when(v.created_at)}")
    if v.description:
        click.echo(f"  {v.description}")
    lin = v.lineage
    click.echo("lineage:")
    click.echo(f"  source {lin.source}")
    if lin.run_id is not None:
        click.echo(f"  run {lin.run_id}  {lin.run_name or ''}  experiment {lin.experiment or '-'}")
    if lin.git_sha:
        click.echo(f"  git {lin.git_sha[:12]}{' (dirty)' if lin.git_dirty else ''}")
    for d in lin.datasets:
        click.echo(f"  dataset {d.context}/{d.name}  {d.digest[:12]}")
    click.echo("signature:")
    if v.signature is None:
        click.echo("  none (register with an example input to record one)")
    else:
        click.echo(f"  inputs   {v.signature.inputs.line(MAX_COLUMNS_SHOWN)}")
        if v.signature.outputs is not None:
            click.echo(f"  outputs  {v.signature.outputs.line(MAX_COLUMNS_SHOWN)}")
    click.echo("files:")
    for f in v.files:
        click.echo(f"  {f.path}  {f.size} B  sha256 {f.sha256}")


@models.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def models_show(ctx: Context, ref: str, as_json: bool) -> None:
    """Show a model: versions, aliases, then one version in full.

    REF is NAME (the latest version), NAME@ALIAS, NAME/VERSION or NAME:VERSION.
    """
    registry = ctx.services.registry
    chosen = registry.resolve(ref)
    model = registry.get_model(chosen.name)
    versions = registry.list_versions(chosen.name)
    if as_json:
        echo_json({"model": model, "versions": versions, "version": chosen})
        return
    click.echo(f"model {model.name}  {model.version_count} versions  created {when(model.created_at)}")
    if model.description:
        click.echo(f"  {model.description}")
    aliases = "  ".join(f"{a} -> {v}" for a, v in model.aliases.items())
    click.echo(f"aliases: {aliases or 'none'}")
    _print_versions(versions)
    click.echo("")
    _echo_version(chosen)


@models.command("versions")
@click.argument("name")
@json_option
@pass_ctx
def models_versions(ctx: Context, name: str, as_json: bool) -> None:
    """List every version of a model, oldest first."""
    versions = ctx.services.registry.list_versions(name)
    if as_json:
        echo_json(versions)
        return
    _print_versions(versions)


def _option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--option")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw  # a bare string such as form=state_dict


def load_example(path: str) -> Any:
    """An example input from a file: ``.npy``, ``.json`` (rows, or named columns), ``.parquet``, ``.csv``."""
    import numpy as np

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in {".npy", ".json", ".parquet", ".csv"}:
        raise click.BadParameter(
            f"{path!r} must be a .npy, .json, .parquet or .csv file", param_hint="--example"
        )
    if not p.is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint="--example")
    try:
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".json":
            data = json.loads(p.read_text())
            return (
                {str(k): np.asarray(v) for k, v in data.items()}
                if isinstance(data, dict)
                else np.asarray(data)
            )
        import polars as pl

        return pl.read_parquet(p) if suffix == ".parquet" else pl.read_csv(p)
    except Exception as exc:  # any reader's complaint about the file is the user's to fix
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--example") from None


@models.command("register")
@click.argument("name")
@click.option("--run", "run_id", type=int, default=None, help="Register this run's logged model.")
@click.option(
    "--artifact-path",
    default=None,
    help="The run's artifact file or folder holding the model [default: model].",
)
@click.option("--file", "file", default=None, help="A local model file or folder (with --run: its lineage).")
@click.option(
    "--flavor", type=click.Choice(DETECT_ORDER), default=None, help="How to load files saved without mlbox."
)
@click.option(
    "--option", "options", multiple=True, help="Flavor option KEY=VALUE (JSON value), e.g. form=state_dict."
)
@click.option(
    "--example", default=None, help="Example input (.npy, .json, .parquet, .csv) to infer the signature."
)
@click.option("--description", "-d", default="", help="What this version is.")
@json_option
@pass_ctx
def models_register(
    ctx: Context,
    name: str,
    run_id: int | None,
    artifact_path: str | None,
    file: str | None,
    flavor: str | None,
    options: tuple[str, ...],
    example: str | None,
    description: str,
    as_json: bool,
) -> None:
    """Register a new version of NAME from a run's artifact or a local file; prints its number."""
    if run_id is None and file is None:
        raise click.UsageError("give --run RUN_ID (the run's logged model) or --file PATH")
    if artifact_path is not None and file is not None:
        raise click.UsageError("--artifact-path names a run's artifact; it does not go with --file")
    if file is None and artifact_path is None:
        artifact_path = "model"
    mv = ctx.services.registry.register(
        name,
        run_id=run_id,
        artifact_path=artifact_path,
        files_from=file,
        flavor=flavor,
        example_input=None if example is None else load_example(example),
        description=description,
        options=dict(_option(o) for o in options),
    )
    if as_json:
        echo_json(mv)
        return
    click.echo(f"registered {mv.name} version {mv.version}  ({mv.flavor}, {mv.lineage.source})")
    if mv.signature is not None:
        click.echo(f"  inputs   {mv.signature.inputs.line(MAX_COLUMNS_SHOWN)}")


@models.command("compose")
@click.argument("name")
@click.argument("parts", nargs=-1, required=True)
@click.option(
    "--ensemble",
    "combine",
    type=click.Choice(["mean", "vote"]),
    default=None,
    help="Score every part on the same input and combine (mean of outputs, or majority vote).",
)
@click.option("--description", "-d", default="", help="What this version is.")
@json_option
@pass_ctx
def models_compose(
    ctx: Context, name: str, parts: tuple[str, ...], combine: str | None, description: str, as_json: bool
) -> None:
    """Register NAME as a graph of registered models, served like any other.

    Without --ensemble PARTS form a chain: each part's output feeds the next
    (a preprocessor, then a model). Parts are NAME@ALIAS (follows the alias),
    NAME/VERSION or NAME (the latest).
    """
    from mlbox.registry.composition import Composition

    graph = Composition.chain(parts) if combine is None else Composition.ensemble(parts, combine)  # type: ignore[arg-type]
    mv = ctx.services.registry.register(name, model=graph, description=description)
    if as_json:
        echo_json(mv)
        return
    shape = " -> ".join(parts) if combine is None else f"{combine} of " + ", ".join(parts)
    click.echo(f"registered {mv.name} version {mv.version}  (composed: {shape})")


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead of moving it.")
@click.option("--note", default="", help="Why (kept in the alias history).")
@pass_ctx
def models_alias(ctx: Context, name: str, alias: str, version: int | None, delete: bool, note: str) -> None:
    """Point ALIAS of model NAME at VERSION (a promotion, or a rollback); prints from -> to."""
    if delete == (version is not None):
        raise click.UsageError("give VERSION to move the alias, or --delete (not both)")
    registry = ctx.services.registry
    check_name(name)  # a bad name or alias fails before anything is read
    check_alias(alias)
    before = registry.get_model(name).aliases.get(alias)
    was = "-" if before is None else str(before)
    if version is None:
        registry.delete_alias(name, alias, note=note)
        click.echo(f"{name}@{alias}: {was} -> removed")
        return
    registry.set_alias(name, alias, version, note=note)
    click.echo(f"{name}@{alias}: {was} -> {version}" + ("  (unchanged)" if before == version else ""))


@models.command("history")
@click.argument("name")
@click.option("--alias", "-a", default=None, help="Only this alias's moves.")
@json_option
@pass_ctx
def models_history(ctx: Context, name: str, alias: str | None, as_json: bool) -> None:
    """Every alias move of a model, oldest first."""
    moves = ctx.services.registry.alias_history(name, alias)
    if as_json:
        echo_json(moves)
        return
    rows = [
        [
            when(m.moved_at),
            m.alias,
            "-" if m.from_version is None else m.from_version,
            "removed" if m.to_version is None else m.to_version,
            m.note,
        ]
        for m in moves
    ]
    print_table(
        ["WHEN", "ALIAS", "FROM", "TO", "NOTE"],
        rows,
        empty="no alias moves yet" if alias is None else f"no moves of {alias!r}",
        right={"FROM", "TO"},
    )


@models.command("delete")
@click.argument("name")
@click.argument("version", required=False, type=int)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def models_delete(ctx: Context, name: str, version: int | None, yes: bool) -> None:
    """Delete VERSION of model NAME, or the whole model with no VERSION (for good).

    Refused (exit 2) while an alias points to it (move or delete the alias first), or a
    composed model or a pinned served version needs it. Its files are freed by mlbox gc.
    """
    from mlbox.cli.confirm import confirm

    registry = ctx.services.registry
    if version is None:
        model = registry.get_model(check_name(name))
        confirm(f"delete model {name!r} and its {model.version_count} versions?", yes)
        registry.delete_model(name)
        click.echo(f"deleted model {name!r} ({model.version_count} versions)")
    else:
        registry.get_version(check_name(name), version)
        confirm(f"delete model {name!r} version {version}?", yes)
        registry.delete_version(name, version)
        click.echo(f"deleted model {name!r} version {version}")


@models.command("export")
@click.argument("ref")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def models_export(ctx: Context, ref: str, directory: Path) -> None:
    """Write version REF (NAME@ALIAS, NAME/3) as an MLflow model directory at DIRECTORY.

    The directory (MLmodel with the framework's flavor — sklearn, pytorch,
    onnx, lightgbm, xgboost, keras, or python_function for python objects —
    the model files, signature, input example, pinned requirements) loads in
    MLflow (``mlflow.pyfunc.load_model``, ``mlflow models serve``) and in
    MLServer's MLflow runtime.
    """
    from mlbox.registry import mlflow_format

    mv, notes = mlflow_format.export(ctx.services.registry, ref, directory)
    click.echo(f"exported {mv.name} version {mv.version} ({mv.flavor}) to {directory}")
    for note in notes:
        click.echo(f"note: {note}")


@models.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="The registered model the directory becomes a version of.")
@click.option(
    "--trust",
    is_flag=True,
    help="Allow a pickled model (sklearn, a PyTorch model.pth, python_function): loading it runs code"
    " from the files. Give it only for a directory you trust.",
)
@click.option("--description", "-d", default="", help="What this version is.")
@json_option
@pass_ctx
def models_import(
    ctx: Context, directory: Path, name: str, trust: bool, description: str, as_json: bool
) -> None:
    """Register an MLflow model directory (sklearn, pytorch, onnx, lightgbm, xgboost, keras or
    python_function flavor) as a new version of --name, keeping its signature."""
    from mlbox.registry import mlflow_format

    mv = mlflow_format.import_dir(
        ctx.services.registry, directory, name, trust=trust, description=description
    )
    if as_json:
        echo_json(mv)
        return
    click.echo(f"registered {mv.name} version {mv.version}  ({mv.flavor}, from MLflow directory {directory})")
