"""The public client's model functions: `mlbox.log_model`, `register_model`, `load_model`.

They go through the default client's home (the ``home`` fixture points it at
tmp_path), so what a script registers is what ``mlbox models`` and the
appliance see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlbox
from mlbox.services import Services

QUICK = {"log_code": False, "log_environment": False}


class Offset:
    """A plain Python model, importable as ``tests.test_client_models.Offset``."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(inputs, dtype=np.float64) + self.offset


def test_log_model_writes_a_registrable_folder(home: Path, services: Services) -> None:
    with mlbox.start_run("fit", **QUICK) as run:
        logged = mlbox.log_model(Offset(1.0), "models/offset")
        # inside a run, register_model defaults to that run and the ``model`` path: point it here
        mv = mlbox.register_model("offset", artifact_path="models/offset", example_input=np.zeros((2, 3)))
    assert sorted(a.path for a in logged) == ["models/offset/mlbox-model.json", "models/offset/model.pkl"]
    assert (mv.name, mv.version, mv.flavor, mv.run_id) == ("offset", 1, "python", run.id)
    assert mv.lineage.source == f"run:{run.id}/models/offset"
    assert {f.sha256 for f in mv.files} == {a.sha256 for a in logged}  # registered without copying
    assert mv.signature is not None and mv.signature.inputs.tensors[0].shape == [-1, 3]
    # the CLI's services see the same version
    assert services.registry.get_version("offset", 1).files == mv.files


def test_register_by_run_id_and_from_memory_then_load(home: Path) -> None:
    with mlbox.start_run("fit", **QUICK) as run:
        mlbox.log_model(Offset(10.0))
    first = mlbox.register_model("offset", run_id=run.id, example_input=np.zeros((1, 2)))
    second = mlbox.register_model("offset", model=Offset(20.0), example_input=np.zeros((1, 2)))
    assert (first.version, second.version) == (1, 2)
    assert second.lineage.source == "object" and second.run_id is None
    assert mlbox.load_model("offset/1").predict(np.ones((2, 2))).tolist() == [[11.0, 11.0]] * 2
    latest = mlbox.load_model("offset")
    assert latest.version.version == 2
    assert latest.predict(np.ones((1, 2))).tolist() == [[21.0, 21.0]]
    with pytest.raises(mlbox.SchemaMismatch) as exc:
        latest.predict(np.ones((1, 5)))
    assert exc.value.http_status == 422


def test_model_functions_refuse_what_they_cannot_do(home: Path) -> None:
    with pytest.raises(mlbox.Conflict, match="no active run"):
        mlbox.log_model(Offset(1.0))
    with pytest.raises(mlbox.InvalidInput, match="nothing to register") as exc:
        mlbox.register_model("offset")
    assert exc.value.field == "run_id"
    with pytest.raises(mlbox.NotFound, match="no model named 'nope'"):
        mlbox.load_model("nope@champion")
    with pytest.raises(AttributeError):
        _ = mlbox.NoSuchThing  # type: ignore[attr-defined]


def test_the_signature_inferred_at_log_model_travels_to_the_registered_version(
    home: Path, services: Services
) -> None:
    """The README's way: log with an example, register by run id with none. The version must still
    have the signature (before, it had none, so serving took any input names and listed no inputs)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(np.int64))
    with mlbox.start_run("fit", **QUICK) as run:
        logged = mlbox.log_model(model, "model", example_input=x[:5])
    mv = mlbox.register_model("lr", run_id=run.id)
    assert "model/mlbox-signature.json" in {a.path for a in logged}
    assert mv.signature is not None
    assert (mv.signature.inputs.kind, mv.signature.inputs.tensors[0].shape) == ("tensor", [-1, 4])
    assert mv.signature.inputs.tensors[0].dtype == "float64"
    assert mv.signature.outputs is not None and mv.signature.outputs.tensors[0].dtype == "int64"
    assert services.registry.get_version("lr", 1).signature == mv.signature
    with pytest.raises(mlbox.SchemaMismatch):
        mlbox.load_model("lr").predict(np.ones((1, 5)))
    # an example given at registration still wins (and is checked against the model)
    again = mlbox.register_model("lr", run_id=run.id, example_input=x[:2].astype(np.float32))
    assert again.signature is not None and again.signature.inputs.tensors[0].dtype == "float32"
