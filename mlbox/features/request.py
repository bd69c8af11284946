"""Request values: what an on-demand view reads that no source stores (Feast's ``RequestSource``).

They arrive with each lookup, as the entity frame's columns offline and beside
the join keys in each entity row online. This module owns their check: a value
is taken only as its request field's declared dtype can hold it (an integer for
a float, never a string for a number), and a missing or unfitting one is
InvalidInput naming the field, so a lookup never computes from a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlbox.features.definitions import polars_dtype
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import polars as pl


def request_values(entity_rows: Sequence[Mapping[str, Any]], name: str, dtype: str, view: str) -> list[Any]:
    """One request field's value from each entity row, as its dtype's Python type.

    JSON clients send ``3`` for a float and ``3.0`` for an int; those are taken,
    a string for a number or a bool for anything else is not. A missing value is
    InvalidInput naming the field; an explicit null stays null.
    """
    out: list[Any] = []
    for row in entity_rows:
        try:
            v = row[name]
        except KeyError:
            raise InvalidInput(
                f"an entity row lacks request field {name!r} ({dtype}) of on-demand view {view!r}",
                field=name,
            ) from None
        if v is not None:
            if dtype.startswith("float") and type(v) in (int, float):
                v = float(v)
            elif dtype.startswith("int") and (type(v) is int or (type(v) is float and v.is_integer())):
                v = int(v)
            elif dtype == "string" and type(v) in (str, int, float):
                v = str(v)
            elif not (dtype == "bool" and type(v) is bool):
                raise InvalidInput(
                    f"request field {name!r} of on-demand view {view!r} is {dtype}; got {v!r}", field=name
                )
        out.append(v)
    return out


def request_columns(frame: pl.DataFrame, view: str, fields: tuple[tuple[str, str], ...]) -> list[pl.Expr]:
    """The entity frame's request columns cast to their declared dtypes, or InvalidInput
    naming a missing one or one whose type cannot hold the declared dtype (a string
    is not read as a number, nor a float as an integer)."""
    import polars as pl

    out: list[pl.Expr] = []
    for name, dtype in fields:
        if name not in frame.columns:
            raise InvalidInput(
                f"the entity frame has no column {name!r}, a request field of on-demand view {view!r}",
                field="entity_df",
            )
        have = frame.schema[name]
        if dtype.startswith("float"):
            fits = have.is_numeric()
        elif dtype.startswith("int"):
            fits = have.is_integer()
        elif dtype == "string":
            fits = have in (pl.String, pl.Categorical) or isinstance(have, pl.Enum)
        else:
            fits = have == pl.Boolean
        if not fits and have != pl.Null:
            raise InvalidInput(
                f"entity frame column {name!r} is {have}, but request field {name!r} of on-demand view "
                f"{view!r} is {dtype}",
                field="entity_df",
            )
        target = polars_dtype(dtype)
        if have != target:
            try:
                frame.get_column(name).cast(target)
            except pl.exceptions.PolarsError:
                raise InvalidInput(
                    f"entity frame column {name!r} has values that do not fit request field {name!r} "
                    f"({dtype}) of on-demand view {view!r}",
                    field="entity_df",
                ) from None
        out.append(pl.col(name).cast(target))
    return out
