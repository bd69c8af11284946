"""``mlbox label``: labeling projects from the shell.

``mlbox label new NAME --choices cat,dog`` makes a project, ``import`` adds
tasks from a file or folder (all or nothing), ``export`` writes the labels
(never over a file), ``ls`` and ``stats`` report, and ``mlbox label NAME``
opens the labeling screen on that project.
"""

from __future__ import annotations

import getpass
from typing import Any

import click

from mlbox.cli.context import Context, echo_json, fmt, json_option, pass_ctx, print_table
from mlbox.labeling.schema import parse_schema

SUBCOMMANDS = ("new", "import", "export", "ls", "stats", "prelabel")


def _split(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


class _LabelGroup(click.Group):
    """``mlbox label PROJECT`` (a name that is no subcommand) opens the labeling screen."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "open", self.commands["open"], args
        return super().resolve_command(ctx, args)


@click.group("label", cls=_LabelGroup)
def label() -> None:
    """Labeling projects: import tasks, label them (mlbox label PROJECT), export the dataset."""


@label.command("new")
@click.argument("name")
@click.option("--choices", help="Comma-separated class labels (number keys pick them).")
@click.option("--multi", is_flag=True, help="Several choices per task (multi-label).")
@click.option("--spans", help="Comma-separated span (entity) labels.")
@click.option("--boxes", help="Comma-separated bounding-box labels.")
@click.option("--rating", help="A numeric rating LOW-HIGH, e.g. 1-5.")
@click.option("--note", is_flag=True, help="A free-text note per task.")
@click.option("--instructions", default="", help="Shown to the annotator.")
@click.option(
    "--overlap", type=click.IntRange(1, 100), default=1, show_default=True, help="Annotators per task."
)
@json_option
@pass_ctx
def label_new(
    ctx: Context,
    name: str,
    choices: str | None,
    multi: bool,
    spans: str | None,
    boxes: str | None,
    rating: str | None,
    note: bool,
    instructions: str,
    overlap: int,
    as_json: bool,
) -> None:
    """Make a project with its label schema."""
    raw: dict[str, Any] = {
        "choices": _split(choices),
        "multi": multi,
        "spans": _split(spans),
        "boxes": _split(boxes),
        "note": note,
    }
    if rating:
        try:
            low, high = (int(x) for x in rating.split("-", 1))
        except ValueError:
            raise click.BadParameter(f"{rating!r} is not LOW-HIGH like 1-5", param_hint="--rating") from None
        raw["rating"] = [low, high]
    schema = parse_schema(raw)
    p = ctx.services.labeling.create_project(name, schema, instructions=instructions, overlap=overlap)
    if as_json:
        echo_json(p)
    else:
        click.echo(f"project {p.name}: {schema.brief()}")


@label.command("import")
@click.argument("project")
@click.argument("path", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "jsonl", "folder", "labelstudio"]),
    help="Default: from the name (.parquet .csv .jsonl .json, a folder).",
)
@json_option
@pass_ctx
def label_import(ctx: Context, project: str, path: str, fmt: str | None, as_json: bool) -> None:
    """Add tasks from a file or folder: all of them, or none when one is bad."""
    res = ctx.services.labeling.import_tasks(project, path, fmt)
    if as_json:
        echo_json(res)
    else:
        click.echo(f"imported {res.imported} tasks ({res.prelabels} pre-labels) into {project}")


@label.command("export")
@click.argument("project")
@click.argument("path", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "json", "json_min"]),
    help="Default: from the name.",
)
@json_option
@pass_ctx
def label_export(ctx: Context, project: str, path: str, fmt: str | None, as_json: bool) -> None:
    """Write the labels (Parquet is recorded as a dataset with its sha256); never over a file."""
    res = ctx.services.labeling.export(project, path, fmt)
    if as_json:
        echo_json(res)
        return
    click.echo(f"exported {res.rows} rows to {res.path} ({res.format}, sha256 {res.digest[:12]})")
    if res.run_id is not None:
        click.echo(f"recorded as a dataset of run {res.run_id}")


@label.command("ls")
@json_option
@pass_ctx
def label_ls(ctx: Context, as_json: bool) -> None:
    """Projects with their progress."""
    projects = ctx.services.labeling.projects()
    if as_json:
        echo_json(projects)
        return
    print_table(
        ("NAME", "TASKS", "DONE", "LABELS", "REVIEWS", "OVERLAP", "SCHEMA"),
        (
            (p.name, p.tasks, p.done, p.labels, p.open_reviews, p.overlap, p.label_schema.brief())
            for p in projects
        ),
        empty="no labeling projects: mlbox label new NAME --choices a,b",
        right=("TASKS", "DONE", "LABELS", "REVIEWS", "OVERLAP"),
    )


@label.command("stats")
@click.argument("project")
@json_option
@pass_ctx
def label_stats(ctx: Context, project: str, as_json: bool) -> None:
    """Progress, agreement (Cohen, Fleiss, Krippendorff) per label and per annotator, and the model
    in the loop's accuracy at each retraining."""
    lab = ctx.services.labeling
    p = lab.project(project)
    rep = lab.agreement(project)
    history = lab.accuracy_history(project)
    if as_json:
        import dataclasses

        echo_json({"project": p, "agreement": dataclasses.asdict(rep), "accuracy": history})
        return
    click.echo(f"{p.name}: {p.done}/{p.tasks} tasks done, {p.labels} labels, {p.open_reviews} open reviews")
    click.echo(
        f"agreement over {rep.tasks} tasks: Cohen {fmt(rep.cohen)}  Fleiss {fmt(rep.fleiss)}"
        f"  Krippendorff alpha {fmt(rep.alpha)}"
    )
    print_table(
        ("LABEL", "FLEISS", "ALPHA"),
        ((c, fmt(v["fleiss"]), fmt(v["alpha"])) for c, v in rep.per_label.items()),
        empty="no label has two ratings yet",
        right=("FLEISS", "ALPHA"),
    )
    print_table(
        ("ANNOTATOR", "TASKS", "COHEN", "WITH MAJORITY"),
        (
            (a, int(v["tasks"] or 0), fmt(v["cohen"]), fmt(v["with_majority"]))
            for a, v in rep.per_annotator.items()
        ),
        empty="no annotator shares a task with another yet",
        right=("TASKS", "COHEN", "WITH MAJORITY"),
    )
    print_table(
        ("LABELS", "ACCURACY", "MEASURED BY", "MODEL"),
        (
            (h.labels, fmt(h.accuracy), h.method, h.model + ("" if h.version is None else f"/{h.version}"))
            for h in history
        ),
        empty="no retraining yet (mlbox label prelabel PROJECT MODEL --retrain-every N starts the loop)",
        right=("LABELS", "ACCURACY"),
    )


@label.command("prelabel")
@click.argument("project")
@click.argument("model")
@click.option(
    "--strategy",
    type=click.Choice(["entropy", "margin", "least_confidence", "random"]),
    default="margin",
    show_default=True,
    help="How the queue is ordered by the model's uncertainty.",
)
@click.option(
    "--retrain-every",
    type=click.IntRange(1),
    default=None,
    help="Retrain through the scheduler every N labels.",
)
@click.option(
    "--as",
    "model_name",
    default=None,
    help="Registry name of the retrained versions (default: PROJECT-model).",
)
@pass_ctx
def label_prelabel(
    ctx: Context, project: str, model: str, strategy: str, retrain_every: int | None, model_name: str | None
) -> None:
    """Pre-label the open tasks with a registered MODEL (NAME@ALIAS) and order the queue by its uncertainty."""
    lab = ctx.services.labeling
    n = lab.prelabel(project, model, strategy=strategy)
    click.echo(f"pre-labeled {n} tasks of {project} with {model}; queue ordered by {strategy}")
    if retrain_every is not None:
        name = model_name or f"{project}-model"
        lab.set_loop(project, name, retrain_every)
        click.echo(f"every {retrain_every} labels a job retrains {name} and re-scores the queue")


@label.command("weak")
@click.argument("project")
@click.argument("functions", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model",
    "label_model",
    type=click.Choice(["dawid_skene", "majority"]),
    default="dawid_skene",
    show_default=True,
    help="How the votes become labels.",
)
@pass_ctx
def label_weak(ctx: Context, project: str, functions: str, label_model: str) -> None:
    """Apply the @labeling_function's of a Python FILE; print their table; store the label model's labels as pre-labels."""
    import runpy

    from mlbox.labeling.weak import LabelingFunction

    found = [v for v in runpy.run_path(functions).values() if isinstance(v, LabelingFunction)]
    if not found:
        raise click.BadParameter(f"{functions} defines no @labeling_function", param_hint="FUNCTIONS")
    table = ctx.services.labeling.apply_functions(project, found, label_model=label_model)
    print_table(
        ("FUNCTION", "POLARITY", "COVERAGE", "OVERLAP", "CONFLICT", "ACCURACY"),
        (
            (
                s.name,
                ",".join(map(str, s.polarity)),
                fmt(s.coverage),
                fmt(s.overlap),
                fmt(s.conflict),
                fmt(s.accuracy),
            )
            for s in table
        ),
        empty="no functions",
        right=("COVERAGE", "OVERLAP", "CONFLICT", "ACCURACY"),
    )


@label.command("mislabels")
@click.argument("project")
@pass_ctx
def label_mislabels(ctx: Context, project: str) -> None:
    """Rank suspected mislabels by confident learning and queue them for review."""
    ids = ctx.services.labeling.find_mislabels(project)
    click.echo(
        f"{len(ids)} suspected mislabels queued for review"
        + (f": tasks {', '.join(map(str, ids[:20]))}" if ids else "")
    )


@label.command("open", hidden=True)
@click.argument("project")
@click.option("--annotator", default=None, help="Your name on your labels (default: your login).")
@pass_ctx
def label_open(ctx: Context, project: str, annotator: str | None) -> None:
    """Open the labeling screen on PROJECT."""
    ctx.services.labeling.project(project)  # a one-line error before the screen opens
    from mlbox.appliance import Appliance
    from mlbox.tui.app import make_app
    from mlbox.tui.widgets.label_graphics import detect

    detect(ctx.settings.labeling.images)  # asks the terminal for a graphics protocol before Textual owns it
    beside = ctx.services.home.running_appliance()
    appliance = None if beside is not None else Appliance(ctx.services)
    app = make_app(ctx.services, appliance=appliance, beside_url=beside.url if beside else None)
    who = annotator or ctx.settings.labeling.annotator or getpass.getuser()
    app.call_later(open_annotator, app, project, who)
    try:
        app.run()
    finally:
        app.stop_appliance()


def open_annotator(app: Any, project: str, annotator: str) -> None:
    """Switch the app to the labeling section and open the annotator's screen on ``project``."""
    from mlbox.tui.screens.labeling import AnnotateScreen

    app.switch_mode("labeling")
    app.push_screen(AnnotateScreen(project, annotator))
