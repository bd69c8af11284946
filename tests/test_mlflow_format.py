"""``mlbox models export`` / ``import``: MLflow model directories, checked by MLflow itself.

The exported directory is loaded by the real MLflow (its own venv, see
`tests.test_mlflow_client`) and must predict what the registered model
predicts; a directory MLflow wrote is imported and served with the same
predictions; a pickled model is only imported with ``--trust``.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlbox.services import Services
from tests.helpers import ok, run_main
from tests.test_mlflow_client import ensure_venv

X, Y = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def mlflow_python() -> Path:
    return ensure_venv()


ROWS = X[::7]


def _model() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, Y)


def test_export_writes_an_mlflow_directory_mlflow_loads(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path, mlflow_python: Path
) -> None:
    model = _model()
    services.registry.register("iris", model=model, example_input=X[:5])
    services.registry.set_alias("iris", "champion", 1)
    target = tmp_path / "exported"
    out = ok(capsys, "models", "export", "iris@champion", str(target))
    assert "exported iris version 1" in out

    mlmodel = yaml.safe_load((target / "MLmodel").read_text())
    assert set(mlmodel["flavors"]) == {"python_function", "sklearn"}
    assert mlmodel["flavors"]["sklearn"]["pickled_model"] == "model.pkl"
    inputs = json.loads(mlmodel["signature"]["inputs"])
    assert inputs == [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]
    requirements = (target / "requirements.txt").read_text().split()
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert any(r.startswith("numpy==") for r in requirements)
    assert json.loads((target / "input_example.json").read_text()) == {"inputs": [[0.0, 0.0, 0.0, 0.0]]}

    script = textwrap.dedent(
        f"""
        import json, numpy as np, mlflow.pyfunc
        model = mlflow.pyfunc.load_model({str(target)!r})
        print(json.dumps(np.asarray(model.predict(np.asarray({ROWS.tolist()!r}))).tolist()))
        """
    )
    done = subprocess.run(
        [str(mlflow_python), "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == model.predict(ROWS).tolist()

    # a second export never writes into a folder that holds something
    code, _, err = run_main(capsys, "models", "export", "iris@champion", str(target))
    assert code == 2 and "not an empty folder" in err


def test_import_needs_trust_and_round_trips(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = _model()
    services.registry.register("iris", model=model, example_input=X[:5])
    exported = tmp_path / "exported"
    ok(capsys, "models", "export", "iris/1", str(exported))

    code, _, err = run_main(capsys, "models", "import", str(exported), "--name", "back")
    assert code == 2 and "--trust" in err
    with pytest.raises(Exception, match="back"):
        services.registry.get_model("back")  # nothing was registered

    out = ok(capsys, "models", "import", str(exported), "--name", "back", "--trust")
    assert "registered back version 1" in out
    version = services.registry.resolve("back")
    assert version.flavor == "sklearn" and version.signature is not None
    assert services.registry.load(version).predictor.predict(ROWS).tolist() == model.predict(ROWS).tolist()

    code, _, err = run_main(capsys, "models", "import", str(tmp_path), "--name", "x", "--trust")
    assert code == 2 and "MLmodel" in err


def test_a_directory_mlflow_wrote_is_imported(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path, mlflow_python: Path
) -> None:
    target = tmp_path / "from-mlflow"
    script = textwrap.dedent(
        f"""
        import json, mlflow.sklearn
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier
        X, y = load_iris(return_X_y=True)
        model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
        mlflow.sklearn.save_model(model, {str(target)!r}, input_example=X[:3],
                                  serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
        from sklearn.linear_model import LogisticRegression
        linear = LogisticRegression(max_iter=500).fit(X, y)
        # MLflow's default format (pip_requirements only spares the slow inference of requirements)
        mlflow.sklearn.save_model(linear, {str(tmp_path / "skops")!r}, input_example=X[:3],
                                  pip_requirements=["scikit-learn"])
        print(json.dumps([model.predict(X[::7]).tolist(), linear.predict(X[::7]).tolist()]))
        """
    )
    done = subprocess.run(
        [str(mlflow_python), "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected, expected_linear = json.loads(done.stdout.strip().splitlines()[-1])

    ok(capsys, "models", "import", str(target), "--name", "forest", "--trust")
    version = services.registry.resolve("forest")
    assert version.signature is not None and version.signature.inputs.tensors[0].shape[-1] == 4
    predicted = services.registry.load(version).predictor.predict(ROWS)
    np.testing.assert_array_equal(predicted, np.asarray(expected))

    # skops, MLflow's default format, loads no pickle: no --trust needed
    assert (tmp_path / "skops" / "model.skops").exists()
    ok(capsys, "models", "import", str(tmp_path / "skops"), "--name", "forest-skops")
    safe = services.registry.resolve("forest-skops")
    np.testing.assert_array_equal(
        services.registry.load(safe).predictor.predict(ROWS), np.asarray(expected_linear)
    )
