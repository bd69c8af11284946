"""``mlbox monitor`` and ``mlbox feedback``: drift, data quality, performance with late labels, alerts.

``mlbox monitor drift REFERENCE CURRENT`` compares two Parquet or CSV files
directly (as an Evidently user compares two frames), with the same tests and
defaults the monitors use.
"""

from __future__ import annotations

import click

from mlbox.cli.context import echo_json, json_option

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
    from mlbox.cli.context import print_table

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
            for v in by_severity(verdicts)
        ),
        empty="no columns",
        right=("statistic", "p_value", "threshold"),
    )
    drifted = sum(v.drifted for v in verdicts)
    click.echo(f"{drifted} of {len(verdicts)} columns drifted")
