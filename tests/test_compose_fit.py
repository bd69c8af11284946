"""A chain whose step's output cannot be the next step's input (by their signatures) is refused
when it is registered, naming the step and both sides, not registered to answer 422 on every
request; unknown dimensions fit any size and a part without a signature fits anything."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mlbox.registry.composition import dtype_fits, schema_misfit
from mlbox.registry.signature import ColumnSpec, Schema, TensorSpec
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from tests.helpers import ok, run_main

TRANSFORM = {"method": "transform"}


def _tensor(dtype: str, *shape: int) -> Schema:
    return Schema("tensor", tensors=[TensorSpec(dtype, list(shape))])


def test_what_fits_follows_the_casts_serving_makes() -> None:
    assert dtype_fits("int64", "float32") and dtype_fits("int32", "int64") and dtype_fits("x", "object")
    assert not dtype_fits("float64", "int64") and not dtype_fits("bool", "float64")
    assert not dtype_fits("string", "float64")
    assert schema_misfit(_tensor("float64", -1, 4), _tensor("float32", -1, -1)) is None
    assert schema_misfit(_tensor("float64", -1, 4), _tensor("float64", -1, 3)) == "the shapes differ"
    assert schema_misfit(_tensor("int64", -1), _tensor("float64", -1, 3)) == "the shapes differ"
    assert schema_misfit(_tensor("float64", -1), _tensor("int64", -1)) is not None
    table = Schema("columns", columns=[ColumnSpec("a", "float64"), ColumnSpec("b", "float64")])
    assert schema_misfit(table, _tensor("float64", -1, 2)) is None
    assert schema_misfit(table, _tensor("float64", -1, 3)) is not None
    assert schema_misfit(_tensor("float64", -1, 2), table) is not None
    assert schema_misfit(Schema("tensors"), table) is None  # named tensors: not judged


@pytest.fixture
def parts(services: Services) -> Services:
    rng = np.random.default_rng(0)
    x4, x3 = rng.normal(size=(40, 4)), rng.normal(size=(40, 3))
    reg = services.registry
    reg.register(
        "scale", model=StandardScaler().fit(x4), example_input=x4[:5], options=TRANSFORM
    )  # float64 [*, 4] -> [*, 4]
    reg.register("digits", model=LogisticRegression().fit(x4, x4[:, 0] > 0), example_input=x4[:5])
    reg.register("digits", model=LogisticRegression().fit(x4, x4[:, 0] > 0), example_input=x4[:5])
    reg.register("churn", model=LogisticRegression().fit(x3, x3[:, 0] > 0), example_input=x3[:5])
    reg.set_alias("churn", "champion", 1)
    reg.register("plain", model=StandardScaler().fit(x3), options=TRANSFORM)  # no signature
    return services


def test_a_chain_that_cannot_fit_is_refused_at_registration(
    capsys: pytest.CaptureFixture[str], parts: Services
) -> None:
    code, out, err = run_main(capsys, "models", "compose", "pipe", "digits/2", "churn@champion")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "parts[1] 'churn@champion' cannot take the output of 'digits/2'" in err
    assert "[*]" in err and "[*, 3]" in err  # both sides' shapes
    with pytest.raises(InvalidInput) as caught:
        parts.registry.register("pipe", model=_chain("scale", "digits/2", "churn@champion"))
    assert caught.value.field == "parts[2]"
    assert [m.name for m in parts.registry.list_models()] == ["churn", "digits", "plain", "scale"]


def test_chains_that_fit_or_are_not_known_register(
    capsys: pytest.CaptureFixture[str], parts: Services
) -> None:
    ok(capsys, "models", "compose", "pre", "scale", "digits/1")  # [*, 4] -> [*, 4]
    ok(capsys, "models", "compose", "loose", "digits/1", "plain")  # no signature: allowed
    ok(capsys, "models", "compose", "both", "churn", "digits", "--ensemble", "vote")  # not a chain


def _chain(*refs: str) -> object:
    from mlbox.registry.composition import Composition

    return Composition.chain(refs)
