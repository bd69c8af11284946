"""Which columns the runs table shows and how each one sorts. Pure.

Besides the fixed attributes, the table shows the latest value of the metric
keys most runs have and a few of the most common params: with many
experiments in one home, those are the ones worth a column. Every column
names its search-language expression, so sorting is done by the service
(``order_by``) over all matching runs, not only over the rows on screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text

from mlbox.textsafe import visible
from mlbox.tracking.keys import RunKeys
from mlbox.tracking.schemas import Run
from mlbox.tui.views import format as fmt

MARK = "●"


@dataclass(frozen=True)
class Column:
    key: str
    """The DataTable column key: ``id``, ``metric:<key>``, ``param:<key>``…"""
    label: str
    sort: str | None
    """Search-language expression given to ``order_by``; None when not sortable."""
    numeric: bool = False
    descending_first: bool = False
    """Numbers and times sort high→low on the first press, names a→z."""

    def cell(self, run: Run, marked: bool = False) -> Text | str:
        """The cell of ``run``: a ``Text`` where it has a style of its own (the mark, the status),
        else its plain string, made inert (`mlbox.textsafe.visible`). The runs table draws a
        string as it is (never as markup) and justifies it by its column; with a ``Text`` per
        cell, a sort's page of 80 runs x 26 columns took 8.9 ms to build, 5.0 ms without."""
        kind, _, name = self.key.partition(":")
        if kind == "metric":
            return fmt.number(run.metrics[name], digits=4) if name in run.metrics else ""
        if kind == "param":
            return visible(fmt.param(run.params.get(name, "")))
        if kind == "mark":
            return Text(MARK if marked else " ", style="bold yellow")
        if kind == "id":
            return str(run.id)
        if kind == "experiment":
            return visible(run.experiment)
        if kind == "name":
            return visible(run.name)
        if kind == "status":
            return fmt.status(run.status)
        if kind == "started":
            return fmt.when(run.start_time)
        if kind == "duration":
            return fmt.duration(fmt.run_duration(run.start_time, run.end_time, run.heartbeat))
        raise KeyError(self.key)


FIXED: tuple[Column, ...] = (
    Column("mark", " ", None),
    Column("id", "id", "id", numeric=True, descending_first=True),
    Column("experiment", "experiment", "experiment"),
    Column("name", "name", "name"),
    Column("status", "status", "status"),
    Column("started", "started", "start_time", descending_first=True),
    Column("duration", "duration", "duration", numeric=True, descending_first=True),
)


def metric_column(key: str) -> Column:
    return Column(f"metric:{key}", key, fmt.ident("metrics", key), numeric=True, descending_first=True)


def param_column(key: str) -> Column:
    return Column(f"param:{key}", key, fmt.ident("params", key))


def most_common(keys: Iterable[Iterable[str]], n: int) -> list[str]:
    """The ``n`` keys found in most runs, ties in alphabetical order; shown alphabetically."""
    counts = Counter(k for run_keys in keys for k in run_keys)
    top = sorted(counts, key=lambda k: (-counts[k], k))[:n]
    return sorted(top)


def choose_columns(
    runs: Sequence[Run], *, metrics: int = 4, params: int = 3, keep: str | None = None
) -> tuple[Column, ...]:
    """The fixed columns plus the most common metric keys and params of ``runs``.

    ``keep`` is the key of the column the table is sorted by: it stays even
    when its key is no longer among the most common.
    """
    metric_keys = most_common((r.metrics for r in runs), metrics)
    param_keys = most_common((r.params for r in runs), params)
    if keep and keep.startswith("metric:") and keep[7:] not in metric_keys:
        metric_keys.append(keep[7:])
    if keep and keep.startswith("param:") and keep[6:] not in param_keys:
        param_keys.append(keep[6:])
    return (*FIXED, *map(metric_column, metric_keys), *map(param_column, param_keys))


def order_by(column: Column | None, descending: bool) -> list[str] | None:
    """The service's ``order_by`` for a sort on ``column``; None is the default, newest first."""
    if column is None or column.sort is None:
        return None
    return [f"{column.sort} {'DESC' if descending else 'ASC'}"]


def experiment_columns(keys: RunKeys) -> tuple[Column, ...]:
    """Every column of one experiment's table: no experiment column, all its metrics and params."""
    fixed = tuple(c for c in FIXED if c.key != "experiment")
    return (*fixed, *map(metric_column, keys.metrics), *map(param_column, keys.params))


def all_columns(keys: RunKeys) -> tuple[Column, ...]:
    """Every column the table over all experiments can show (the column chooser's list)."""
    return (*FIXED, *map(metric_column, keys.metrics), *map(param_column, keys.params))


def arrange(
    available: Sequence[Column],
    default: Sequence[Column],
    shown: Sequence[str] | None,
    pinned: Sequence[str],
    keep: str | None = None,
) -> tuple[tuple[Column, ...], int]:
    """The columns to show, in order, and how many stay at the left (DataTable's ``fixed_columns``).

    ``shown`` is the user's choice of column keys (None: ``default``); the
    mark column comes first, then the ``pinned`` ones in pin order, then the
    rest in ``available`` order. ``keep`` (the sort column) is shown even when
    the user hid it, so the table never sorts by something out of sight.
    """
    by_key = {c.key: c for c in (*available, *default)}
    keys = [c.key for c in default] if shown is None else [c.key for c in available if c.key in set(shown)]
    if keep is not None and keep not in keys and keep in by_key:
        keys.append(keep)
    pins = [k for k in pinned if k in by_key and k != "mark"]
    rest = [k for k in keys if k not in pins and k != "mark"]
    columns = (by_key["mark"] if "mark" in by_key else FIXED[0], *(by_key[k] for k in (*pins, *rest)))
    return columns, 1 + len(pins)
