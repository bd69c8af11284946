"""``mlbox monitor`` and ``mlbox feedback``: drift, data quality, performance with late labels, alerts.

``mlbox monitor drift REFERENCE CURRENT`` compares two Parquet or CSV files
directly (as an Evidently user compares two frames), with the same tests and
defaults the monitors use.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlbox.cli.context import Context, echo_json, json_option, pass_ctx, print_table, when
from mlbox.store.errors import MlboxError

if TYPE_CHECKING:
    from mlbox.monitoring.drift import Verdict
    from mlbox.monitoring.schemas import Evaluation

TEST_CHOICES = ("ks", "wasserstein", "psi", "chi2", "jensenshannon")


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        column, sep, value = item.partition("=")
        if not sep or not column or not value:
            raise click.BadParameter(f"{item!r} is not COLUMN=VALUE", param_hint=option)
        out[column] = value
    return out


def fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.4g}"


@click.group("monitor")
def monitor() -> None:
    """Monitors of served models: drift, data quality, performance, alerts."""


@monitor.command("drift")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("current", type=click.Path(dir_okay=False))
@click.option("--columns", "columns", default=None, help="Comma-separated columns to check (default: all).")
@click.option("--test", "tests", multiple=True, help="COLUMN=TEST to override a column's test.")
@click.option("--threshold", "thresholds", multiple=True, help="COLUMN=NUMBER to override its threshold.")
@json_option
def drift_cmd(
    reference: str,
    current: str,
    columns: str | None,
    tests: tuple[str, ...],
    thresholds: tuple[str, ...],
    as_json: bool,
) -> None:
    """Compare two Parquet or CSV files column by column.

    Numeric columns get Kolmogorov-Smirnov (up to 1000 reference rows) or the
    normed Wasserstein distance; categorical ones chi-squared or the
    Jensen-Shannon distance. Exit code 0 either way; the verdicts say what drifted.
    """
    from mlbox.monitoring.drift import by_severity, drift
    from mlbox.monitoring.frames import read_frame

    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    limits: dict[str, float] = {}
    for column, value in _pairs(thresholds, "--threshold").items():
        try:
            limits[column] = float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number", param_hint="--threshold") from None
    ref = read_frame(reference, field="REFERENCE")
    cur = read_frame(current, field="CURRENT")
    verdicts = drift(ref, cur, columns=chosen, tests=_pairs(tests, "--test"), thresholds=limits)
    if as_json:
        echo_json([v.public() for v in verdicts])
        return
    _print_verdicts(by_severity(verdicts), empty="no columns")
    drifted = sum(v.drifted for v in verdicts)
    click.echo(f"{drifted} of {len(verdicts)} columns drifted")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.I)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_window(text: str | None, option: str = "--window") -> float | None:
    """``90s``, ``30m``, ``1h``, ``2d`` (or plain seconds) as seconds; None for None."""
    if text is None:
        return None
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 30m, 1h or 2d", param_hint=option)
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def _since(window: str | None) -> float | None:
    seconds = parse_window(window)
    return None if seconds is None else time.time() - seconds


window_option = click.option(
    "--window",
    default=None,
    help="Only the last DURATION of traffic (90s, 30m, 1h, 2d); default: all logged.",
)


@monitor.command("ls")
@json_option
@pass_ctx
def ls_cmd(ctx: Context, as_json: bool) -> None:
    """Monitors, with their open alerts."""
    monitors = ctx.services.monitoring.list()
    if as_json:
        echo_json(monitors)
        return
    print_table(
        ("id", "model", "window", "every", "checks", "last run", "alerts", "error"),
        (
            (
                m.id,
                f"{m.model}@{m.alias}",
                f"{m.window_s:g}s",
                f"{m.every_s:g}s",
                ",".join(m.checks),
                when(m.last_run),
                m.open_alerts,
                m.last_error or "",
            )
            for m in monitors
        ),
        empty="no monitors",
        right=("id", "alerts"),
    )


@monitor.command("add")
@click.argument("ref", metavar="NAME@ALIAS")
@click.option("--window", default="1h", show_default=True, help="Traffic each run checks (90s, 30m, 1h, 2d).")
@click.option("--every", default=None, help="How often it runs (default MLBOX_MONITOR_EVERY_S).")
@click.option(
    "--check", "checks", multiple=True, help="drift, prediction_drift, quality, outliers, accuracy, ..."
)
@click.option("--threshold", "thresholds", multiple=True, help="CHECK=NUMBER, e.g. drift=0.3 accuracy=0.9.")
@click.option("--command", default=None, help="A local command to run when an alert is raised (no shell).")
@click.option("--segment", default=None, help="A logged column whose groups the bias check compares.")
@click.option(
    "--column-test",
    "column_tests",
    multiple=True,
    help="COLUMN=TEST[:THRESHOLD] or COLUMN=:THRESHOLD, e.g. age=psi:0.2 (its drift test).",
)
@pass_ctx
def add_cmd(
    ctx: Context,
    ref: str,
    window: str,
    every: str | None,
    checks: tuple[str, ...],
    thresholds: tuple[str, ...],
    command: str | None,
    segment: str | None,
    column_tests: tuple[str, ...],
) -> None:
    """Monitor a served model alias; its version needs a reference (mlbox monitor reference)."""
    from mlbox.monitoring.schemas import ColumnTest

    overrides: dict[str, ColumnTest] = {}
    for column, value in _pairs(column_tests, "--column-test").items():
        test, _, limit = value.partition(":")
        try:
            overrides[column] = ColumnTest(test or None, float(limit) if limit else None)
        except ValueError:
            raise click.BadParameter(f"{limit!r} is not a number", param_hint="--column-test") from None
    limits: dict[str, float] = {}
    for check, value in _pairs(thresholds, "--threshold").items():
        try:
            limits[check] = float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number", param_hint="--threshold") from None
    m = ctx.services.monitoring.create_monitor(
        ref,
        window_s=parse_window(window) or 3600.0,
        every_s=parse_window(every, "--every"),
        checks=list(checks) or None,
        thresholds=limits,
        command=command,
        segment=segment,
        column_tests=overrides,
    )
    click.echo(
        f"monitor {m.id}: {m.model}@{m.alias} every {m.every_s:g}s over {m.window_s:g}s ({', '.join(m.checks)})"
    )


@monitor.command("rm")
@click.argument("monitor_id", type=int)
@pass_ctx
def rm_cmd(ctx: Context, monitor_id: int) -> None:
    """Delete a monitor (and its alerts)."""
    ctx.services.monitoring.delete_monitor(monitor_id)
    click.echo(f"deleted monitor {monitor_id}")


@monitor.command("reference")
@click.argument("ref", metavar="NAME@ALIAS")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--from-log", is_flag=True, help="Use the logged traffic (of --window) as the reference.")
@window_option
@pass_ctx
def reference_cmd(ctx: Context, ref: str, path: str | None, from_log: bool, window: str | None) -> None:
    """Store the reference of a model version: a Parquet/CSV file of its training data, its logged
    training dataset (no PATH), or its logged traffic (--from-log)."""
    if path and from_log:
        raise click.BadParameter("give PATH or --from-log, not both", param_hint="--from-log")
    r = ctx.services.monitoring.set_reference(ref, path=path, from_log=from_log, since=_since(window))
    click.echo(
        f"reference of {r.model} version {r.version}: {r.rows} rows, {len(r.columns)} columns ({r.source})"
    )


@monitor.command("run")
@click.argument("target", metavar="NAME@ALIAS|MONITOR_ID")
@window_option
@json_option
@pass_ctx
def run_cmd(ctx: Context, target: str, window: str | None, as_json: bool) -> None:
    """Run a monitor now (alerts raised or cleared), or evaluate NAME@ALIAS's traffic without one."""
    mon = ctx.services.monitoring
    if target.isdigit() or (("@" in target) and window is None and _has_monitor(ctx, target)):
        monitor_id = int(target) if target.isdigit() else mon.find_monitor(target).id
        run = mon.run_monitor(monitor_id)
        if as_json:
            echo_json(run)
            return
        if run.evaluation is None:
            click.echo(f"monitor {monitor_id}: {run.monitor.last_error}")
            return
        _print_evaluation(run.evaluation)
        for r in run.results:
            click.echo(f"{'BREACH' if r.breached else 'ok':6}  {r.check:18} {r.message}")
        for a in run.raised:
            click.echo(f"alert raised: {a.check}: {a.message}")
        for a in run.cleared:
            click.echo(f"alert cleared: {a.check}")
        return
    evaluation = mon.evaluate(target, since=_since(window))
    if as_json:
        echo_json(evaluation)
        return
    _print_evaluation(evaluation)


def _has_monitor(ctx: Context, ref: str) -> bool:
    try:
        ctx.services.monitoring.find_monitor(ref)
    except MlboxError:
        return False
    return True


def _print_verdicts(verdicts: Iterable[Verdict], *, empty: str) -> None:
    """One row per column: its test, statistic, p-value (or none), threshold and verdict."""
    print_table(
        ("column", "test", "statistic", "p_value", "threshold", "drifted"),
        (
            (
                v.column,
                v.test,
                f"{v.statistic:.4g}",
                fmt_p(v.p_value),
                f"{v.threshold:g}",
                "DRIFT" if v.drifted else "ok",
            )
            for v in verdicts
        ),
        empty=empty,
        right=("statistic", "p_value", "threshold"),
    )


def _print_evaluation(ev: Evaluation) -> None:
    p = ev.performance
    click.echo(f"{ev.model} version {ev.version}: {ev.rows} rows, {p.labelled} labelled")
    if ev.challenger is not None:
        c = ev.challenger
        click.echo(
            f"challenger version {c.challenger_version}: agreement {c.agreement:.1%} on {c.paired_rows} rows;"
            f" McNemar p {fmt_p(c.p_value)}; better: {c.better or 'no significant difference'}"
        )
    _print_verdicts(ev.drift, empty="no features")
    drifted = [v.column for v in ev.drift if v.drifted]
    click.echo(
        f"drifted: {len(drifted)} of {len(ev.drift)} features"
        + (f" ({', '.join(drifted[:10])})" if drifted else "")
    )
    click.echo(f"outlier rate: {ev.outlier_rate:.1%}")
    for problem in ev.quality.problems[:10]:
        click.echo(f"quality: {problem}")
    est = "-" if p.estimated_accuracy is None else f"{p.estimated_accuracy:.3f}"
    real = "-" if p.accuracy is None else f"{p.accuracy:.3f}"
    click.echo(f"accuracy: realised {real} (labelled {p.labelled}), estimated {est}")


@monitor.command("report")
@click.argument("ref", metavar="NAME@ALIAS")
@click.option(
    "-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help="The HTML file to write."
)
@window_option
@pass_ctx
def report_cmd(ctx: Context, ref: str, output: str, window: str | None) -> None:
    """Write a self-contained HTML report (inline SVG, no external reference) of the traffic."""
    html = ctx.services.monitoring.report(ref, since=_since(window))
    target = Path(output)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    click.echo(f"wrote {target}")


@monitor.command("alerts")
@click.option("--open", "open_only", is_flag=True, help="Only alerts not cleared.")
@json_option
@pass_ctx
def alerts_cmd(ctx: Context, open_only: bool, as_json: bool) -> None:
    """Alerts, newest first."""
    alerts = ctx.services.monitoring.alerts(open_only=open_only)
    if as_json:
        echo_json(alerts)
        return
    print_table(
        ("id", "model", "check", "raised", "cleared", "message"),
        (
            (
                a.id,
                f"{a.model}@{a.alias}",
                a.check,
                when(a.raised_at),
                when(a.cleared_at) if a.cleared_at else "OPEN",
                a.message,
            )
            for a in alerts
        ),
        empty="no alerts",
        right=("id",),
    )


@click.group("feedback")
def feedback() -> None:
    """Late labels for logged predictions, joined by request id."""


@feedback.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@pass_ctx
def feedback_import(ctx: Context, path: str) -> None:
    """Import labels from a Parquet or CSV file with request_id and label columns (and row)."""
    result = ctx.services.monitoring.import_feedback(path)
    click.echo(f"{result.stored} labels stored, {result.updated} replaced")


@feedback.command("add")
@click.argument("request_id")
@click.argument("label")
@click.option("--row", default=0, show_default=True, type=int, help="The row of a many-row request.")
@pass_ctx
def feedback_add(ctx: Context, request_id: str, label: str, row: int) -> None:
    """Store one label (a number when it reads as one)."""
    from mlbox.monitoring.schemas import FeedbackItem

    value: int | float | str = label
    for cast in (int, float):
        try:
            value = cast(label)
            break
        except ValueError:
            continue
    result = ctx.services.monitoring.add_feedback([FeedbackItem(request_id, value, row)])
    click.echo("label replaced" if result.updated else "label stored")
