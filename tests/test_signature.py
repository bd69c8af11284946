"""Signatures: inference from example inputs and validation errors that name the field (pure)."""

from __future__ import annotations

import datetime as dt

import msgspec
import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlbox.registry.refs import ModelRef, check_alias, parse_ref
from mlbox.registry.signature import (
    ColumnSpec,
    Schema,
    SchemaMismatch,
    Signature,
    TensorSpec,
    infer_schema,
    infer_signature,
    validate,
)
from mlbox.store.errors import InvalidInput


def test_infer_tensor_puts_minus_one_on_the_batch_dimension() -> None:
    schema = infer_schema(np.zeros((5, 3, 2), dtype=np.float32))
    assert schema == Schema("tensor", tensors=[TensorSpec("float32", [-1, 3, 2])])
    assert infer_schema([[1, 2], [3, 4]]).tensors == [TensorSpec("int64", [-1, 2])]
    assert infer_schema(np.array(["a", "b"])).tensors == [TensorSpec("string", [-1])]


def test_infer_named_tensors_from_a_dict() -> None:
    schema = infer_schema({"image": np.zeros((2, 4), np.float32), "ids": np.arange(2)})
    assert schema.kind == "tensors"
    assert schema.tensors == [TensorSpec("float32", [-1, 4], "image"), TensorSpec("int64", [-1], "ids")]
    assert schema.names() == ["image", "ids"]


def _columns(schema: Schema) -> dict[str, str]:
    assert schema.kind == "columns"
    return {c.name: c.dtype for c in schema.columns}


def test_infer_columns_from_polars_and_pandas_alike() -> None:
    data = {
        "age": [31, 45],
        "income": [1.5, 2.5],
        "city": ["Oslo", "Lima"],
        "member": [True, False],
        "seen": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)],
    }
    expected = {"age": "int64", "income": "float64", "city": "string", "member": "bool", "seen": "datetime"}
    assert _columns(infer_schema(pl.DataFrame(data))) == expected
    assert _columns(infer_schema(pd.DataFrame(data))) == expected
    cats = pd.DataFrame({"c": pd.Categorical(["x", "y"]), "n": pd.array([1, None], dtype="Int32")})
    assert _columns(infer_schema(cats)) == {"c": "category", "n": "int32"}


def test_infer_signature_and_json_round_trip() -> None:
    sig = infer_signature(np.ones((2, 3)), np.array([0, 1]))
    assert sig.outputs == Schema("tensor", tensors=[TensorSpec("int64", [-1])])
    assert msgspec.json.decode(msgspec.json.encode(sig), type=Signature) == sig


# -- validation ------------------------------------------------------------------

TENSOR = Schema("tensor", tensors=[TensorSpec("float32", [-1, 4])])


def test_tensor_passes_and_tolerant_mode_casts_int_to_float() -> None:
    x = np.ones((3, 4), np.float32)
    assert validate(TENSOR, x) is x
    cast = validate(TENSOR, [[1, 2, 3, 4]])
    assert cast.dtype == np.float32 and cast.tolist() == [[1, 2, 3, 4]]
    assert validate(TENSOR, np.ones((2, 4))).dtype == np.float32  # float64 from JSON


def test_strict_mode_refuses_any_cast() -> None:
    with pytest.raises(SchemaMismatch) as err:
        validate(TENSOR, np.ones((2, 4), np.int64), tolerant=False)
    assert err.value.field == "input"
    assert "expected dtype float32, got int64" in err.value.message


def test_wrong_shape_names_expected_and_got() -> None:
    with pytest.raises(SchemaMismatch) as err:
        validate(TENSOR, np.ones((2, 3), np.float32))
    assert err.value.message == "input: expected shape [N, 4], got [2, 3]"
    with pytest.raises(SchemaMismatch, match=r"expected shape \[N, 4\], got \[4\]"):
        validate(TENSOR, np.ones(4, np.float32))


def test_float_is_never_cast_to_int_and_ints_must_fit() -> None:
    ints = Schema("tensor", tensors=[TensorSpec("int8", [-1])])
    with pytest.raises(SchemaMismatch, match="a float is not cast to an integer"):
        validate(ints, np.array([1.0, 2.0]))
    assert validate(ints, np.array([1, -3])).dtype == np.int8
    with pytest.raises(SchemaMismatch, match=r"values 1\.\.300 do not fit"):
        validate(ints, np.array([1, 300]))
    strings = Schema("tensor", tensors=[TensorSpec("string", [-1])])
    with pytest.raises(SchemaMismatch, match="expected dtype string, got int64"):
        validate(strings, np.array([1, 2]))


def test_ragged_rows_are_a_clear_error() -> None:
    with pytest.raises(SchemaMismatch) as err:
        validate(TENSOR, np.array([[1, 2, 3, 4], [1, 2]], dtype=object))
    assert err.value.field == "input"


NAMED = Schema("tensors", tensors=[TensorSpec("float32", [-1, 2], "a"), TensorSpec("int64", [-1], "b")])


def test_named_tensors_name_the_missing_extra_or_wrong_input() -> None:
    ok = validate(NAMED, {"b": [1, 2], "a": [[1, 2], [3, 4]]})
    assert list(ok) == ["a", "b"] and ok["a"].dtype == np.float32
    with pytest.raises(SchemaMismatch) as err:
        validate(NAMED, {"a": [[1, 2]]})
    assert err.value.field == "b" and "missing input" in err.value.message
    with pytest.raises(SchemaMismatch) as err:
        validate(NAMED, {"a": [[1, 2]], "b": [1], "c": [0]})
    assert err.value.field == "c" and "unexpected input" in err.value.message
    with pytest.raises(SchemaMismatch) as err:
        validate(NAMED, {"a": [[1, 2]], "b": [1.5]})
    assert err.value.field == "b" and "expected dtype int64, got float64" in err.value.message
    with pytest.raises(SchemaMismatch) as err:
        validate(NAMED, np.ones((2, 2)))
    assert err.value.field == "inputs"


COLUMNS = Schema("columns", columns=[ColumnSpec("age", "float64"), ColumnSpec("city", "string")])


@pytest.mark.parametrize("make", [pl.DataFrame, pd.DataFrame, dict], ids=["polars", "pandas", "dict"])
def test_columns_reordered_and_cast(make: type) -> None:
    frame = make({"city": ["Oslo", "Lima"], "age": [30, 40]})
    out = validate(COLUMNS, frame)
    if make is dict:
        assert list(out) == ["age", "city"] and out["age"].dtype == np.float64
    else:
        assert list(out.columns) == ["age", "city"]
        assert _columns(infer_schema(out)) == {"age": "float64", "city": "string"}


@pytest.mark.parametrize("make", [pl.DataFrame, pd.DataFrame, dict], ids=["polars", "pandas", "dict"])
def test_wrong_column_name_and_dtype_name_the_column(make: type) -> None:
    with pytest.raises(SchemaMismatch) as err:
        validate(COLUMNS, make({"age": [1.0], "town": ["Oslo"]}))
    assert err.value.field == "city"
    assert "missing column" in err.value.message and "'town'" in err.value.message
    with pytest.raises(SchemaMismatch) as err:
        validate(COLUMNS, make({"age": ["old"], "city": ["Oslo"]}))
    assert err.value.field == "age" and "expected dtype float64, got string" in err.value.message
    with pytest.raises(SchemaMismatch) as err:
        validate(COLUMNS, make({"age": [1.0], "city": ["Oslo"], "zip": [1]}))
    assert err.value.field == "zip"


def test_dict_of_columns_needs_equal_lengths_and_one_dimension() -> None:
    with pytest.raises(SchemaMismatch) as err:
        validate(COLUMNS, {"age": [1.0, 2.0], "city": ["Oslo"]})
    assert err.value.field == "city"
    with pytest.raises(SchemaMismatch) as err:
        validate(COLUMNS, {"age": [[1.0]], "city": ["Oslo"]})
    assert err.value.field == "age"
    with pytest.raises(SchemaMismatch) as err:
        validate(COLUMNS, np.ones((2, 2)))
    assert err.value.field == "inputs"


def test_schema_mismatch_is_an_invalid_input_answered_with_422() -> None:
    err = SchemaMismatch("x: bad", field="x")
    assert isinstance(err, InvalidInput)
    assert err.http_status == 422
    assert err.to_dict() == {"error": "x: bad", "type": "SchemaMismatch", "field": "x"}


# -- references ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("digits", ModelRef("digits")),
        ("digits@latest", ModelRef("digits")),
        ("digits@champion", ModelRef("digits", alias="champion")),
        ("digits/3", ModelRef("digits", version=3)),
        ("digits:12", ModelRef("digits", version=12)),
        ("models:/digits/3", ModelRef("digits", version=3)),
        ("models:/my-model.v2@shadow_1", ModelRef("my-model.v2", alias="shadow_1")),
    ],
)
def test_parse_ref(text: str, ref: ModelRef) -> None:
    assert parse_ref(text) == ref
    assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    ["", "   ", "digits/0", "digits/x", "digits/", "digits@", "digits@Champion", "a b", "@x", "/3", "d/3/4"],
)
def test_bad_refs_name_the_field(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_ref(text)
    assert err.value.field == "model"


@pytest.mark.parametrize("alias", ["Champion", "1st", "has space", "latest", "", "a" * 65])
def test_bad_alias(alias: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_alias(alias)
    assert err.value.field == "alias"
