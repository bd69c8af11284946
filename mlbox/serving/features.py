"""Models whose inputs are feature views: a request sends entity keys, serving looks the features up.

A version registered with ``features=["view:feature", ...]`` was trained on
those features, in that order. Its request carries the views' join keys, and
the request values of any on-demand feature that reads them (``amount`` for
``amount / avg_amount_7d``), as named columns: ``dataframe_records``,
``dataframe_split``, OIP named inputs. Each row goes to the lookup whole;
serving reads the row's latest values from the online store (TTL honoured: a
stale value is missing, NaN to the model), computes on-demand features from
them and the request values, and hands the model the matrix its signature
describes. A missing join key or request value is the request's fault (422
naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlbox.registry.signature import Schema, SchemaMismatch, validate
from mlbox.serving.tensors import Payload, as_array, batch_rows
from mlbox.store.errors import InvalidInput

FeatureLookup = Callable[[Sequence[Mapping[str, Any]], Sequence[str]], dict[str, list[Any]]]
"""``(entity rows, feature refs) -> {join key or feature: values}``: `FeatureStore.get_online_features`
with full feature names, join keys first, then the features in the order asked."""


def entity_inputs(payload: Payload) -> tuple[dict[str, np.ndarray], int]:
    """The request's named columns (join keys and request values, one value per row
    each) and its row count."""
    if payload.kind == "rows" or not payload.value:
        raise SchemaMismatch(
            "this model looks its features up by entity: send the join keys (and any request"
            ' values) as named columns (e.g. {"dataframe_records": [{"driver_id": 1001}]})',
            field="inputs",
        )
    columns = {str(k): as_array(v, str(k)).reshape(-1) for k, v in payload.value.items()}
    return columns, batch_rows(columns)


def entity_rows(columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    keys = list(columns)
    rows = len(columns[keys[0]])
    return [{k: columns[k][i].item() for k in keys} for i in range(rows)]


def with_features(
    refs: Sequence[str], lookup: FeatureLookup, schema: Schema | None, predict: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """``predict`` behind an online lookup of ``refs`` (validated against the model's ``schema``)."""
    wanted = list(refs)

    def run(inputs: Any) -> Any:
        rows = entity_rows(inputs)
        try:
            found = lookup(rows, wanted)
        except InvalidInput as exc:  # a missing join key or request value: the request's fault, as 422
            raise SchemaMismatch(exc.message, field=exc.field) from None
        names = [k for k in found if k not in rows[0]][-len(wanted) :]
        matrix = np.array(
            [[np.nan if v is None else v for v in found[name]] for name in names], dtype=np.float64
        ).T.reshape(len(rows), len(wanted))
        return predict(matrix if schema is None else validate(schema, matrix))

    return run
