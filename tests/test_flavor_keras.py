"""The keras flavor: Keras 3 models on the torch backend (no TensorFlow), saved as ``.keras``.

A Keras model on torch is also a ``torch.nn.Module``; it must still be registered as Keras
(its own format, its own loader), load back with the same predictions, keep named inputs, and
load in a process that never chose a backend (the manifest's backend is used).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlbox.registry.flavors import detect_flavor, load_model, save_model
from mlbox.services import Services
from mlbox.store.errors import InvalidInput

os.environ.setdefault("KERAS_BACKEND", "torch")
keras: Any = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip(f"Keras runs on {keras.backend.backend()} in this process", allow_module_level=True)

X = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)


def _dense() -> Any:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)]
    )


def test_a_keras_model_registers_as_keras_and_predicts_the_same(services: Services) -> None:
    model = _dense()
    assert detect_flavor(model).name == "keras"  # not pytorch, though it is a torch module too
    mv = services.registry.register("dense", model=model, example_input=X[:3])
    assert mv.flavor == "keras" and mv.manifest["backend"] == "torch"
    assert mv.manifest["file"] == "model.keras"
    assert mv.signature is not None and mv.signature.outputs is not None
    assert mv.signature.outputs.tensors[0].shape == [-1, 2]
    np.testing.assert_allclose(
        services.registry.load("dense").predict(X), model.predict(X, verbose=0), rtol=1e-6
    )


def test_named_inputs_and_outputs(tmp_path: Path) -> None:
    left, right = keras.Input((3,), name="left"), keras.Input((2,), name="right")
    merged = keras.layers.Concatenate()([left, right])
    model = keras.Model(
        {"left": left, "right": right}, {"score": keras.layers.Dense(1, name="score")(merged)}
    )
    inputs = {"left": X[:4, :3], "right": X[:4, 3:]}
    save_model(model, tmp_path / "m", example_input=inputs)
    got = load_model(tmp_path / "m").predict(inputs)
    assert set(got) == {"score"}
    np.testing.assert_allclose(got["score"], model.predict(inputs, verbose=0)["score"], rtol=1e-6)


def test_loads_in_a_process_that_chose_no_backend(tmp_path: Path) -> None:
    """The manifest's backend is used: without it Keras would pick TensorFlow, which is not installed."""
    model = _dense()
    save_model(model, tmp_path / "m")
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from mlbox.registry.flavors import load_model
        predictor = load_model({str(tmp_path / "m")!r})
        import keras
        print(json.dumps([keras.backend.backend(), predictor.predict(np.asarray({X[:3].tolist()!r})).tolist()]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    backend, predicted = json.loads(done.stdout.strip().splitlines()[-1])
    assert backend == "torch"
    np.testing.assert_allclose(predicted, model.predict(X[:3], verbose=0), rtol=1e-5)


def test_what_is_not_a_keras_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        save_model(object(), tmp_path / "x", flavor="keras")
    assert err.value.field == "model"
