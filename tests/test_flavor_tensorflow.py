"""TensorFlow SavedModels come into mlbox through ONNX: ``tf2onnx`` converts the SavedModel where
TensorFlow is installed, mlbox registers the ``.onnx`` file and scores what TensorFlow scored.

Opt-in: set ``MLBOX_TEST_TENSORFLOW=1``. TensorFlow is not in the test extra (``tensorflow-cpu``
is a 274 MB wheel, about 1 GB installed): it lives with ``tf2onnx`` in its own venv,
a venv of `tests.peer_venvs` (never mlbox's ``.venv``), made on the first run.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlbox.services import Services
from tests.helpers import ok
from tests.peer_venvs import ensure

if os.environ.get("MLBOX_TEST_TENSORFLOW") != "1":
    pytest.skip("set MLBOX_TEST_TENSORFLOW=1 to install TensorFlow and tf2onnx", allow_module_level=True)

pytestmark = pytest.mark.timeout(1800)  # the first run installs the venv
REQUIREMENTS = ("tensorflow-cpu", "tf2onnx")

SAVE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.normal(size=(8, 3)).astype("float32"))
            self.b = tf.Variable(np.arange(3, dtype="float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
        def __call__(self, x):
            return {"scores": tf.nn.softmax(tf.nn.relu(tf.matmul(x, self.w)) + self.b)}

    scorer = Scorer()
    tf.saved_model.save(scorer, sys.argv[1], signatures=scorer.__call__)
    rows = tf.constant(np.asarray(json.loads(sys.argv[2]), dtype="float32"))
    served = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    print(json.dumps(served(x=rows)["scores"].numpy().tolist()))
    """
)


def test_a_savedmodel_converted_by_tf2onnx_scores_as_tensorflow_did(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    python = ensure("tensorflow", REQUIREMENTS, "import tensorflow, tf2onnx")
    rows = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    saved, onnx_file = tmp_path / "saved", tmp_path / "model.onnx"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [str(python), "-c", SAVE, str(saved), json.dumps(rows.tolist())],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    convert = [str(python), "-m", "tf2onnx.convert", "--saved-model", str(saved), "--output", str(onnx_file)]
    done = subprocess.run(convert, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    np.save(tmp_path / "example.npy", rows[:2])
    ok(capsys, "models", "register", "tf-scorer", "--file", str(onnx_file), "--flavor", "onnx",
       "--example", str(tmp_path / "example.npy"))  # fmt: skip
    version = services.registry.resolve("tf-scorer")
    assert version.signature is not None and version.signature.inputs.tensors[0].shape == [-1, 8]
    predicted = services.registry.load("tf-scorer").predict(rows)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
