"""NVIDIA's own client, ``tritonclient.http`` (its own venv, see `tests.peer_venvs`), against a real
``mlbox up``: what an application written for Triton or KServe's v2 protocol does, unchanged.

It asks whether the server and model are ready, reads the model's metadata, then scores the
same rows with JSON and with binary tensors (``binary_data=True``, the OIP binary extension),
with a gzip-compressed request too; every answer must equal scikit-learn's on those rows.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from mlbox.services import Services
from tests.helpers import MLBOX, mlbox_env, stop, wait_announced
from tests.peer_venvs import ensure

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.http as http

    url, model, rows = sys.argv[1], sys.argv[2], np.asarray(json.loads(sys.argv[3]), dtype=np.float64)
    client = http.InferenceServerClient(url=url)
    meta = client.get_model_metadata(model)
    (inp,), (out,) = meta["inputs"], meta["outputs"]
    answers = {}
    for binary in (False, True):
        for gzip in (None, "gzip"):
            tensor = http.InferInput(inp["name"], list(rows.shape), inp["datatype"])
            tensor.set_data_from_numpy(rows, binary_data=binary)
            wanted = http.InferRequestedOutput(out["name"], binary_data=binary)
            result = client.infer(
                model, [tensor], outputs=[wanted], request_compression_algorithm=gzip,
                response_compression_algorithm=gzip,
            )
            answers[f"binary={binary} gzip={gzip}"] = result.as_numpy(out["name"]).tolist()
    print(json.dumps({
        "live": client.is_server_live(), "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model), "meta": meta, "answers": answers,
    }))
    """
)


def test_tritonclient_scores_json_binary_and_gzip_requests_as_sklearn(
    home: Path, services: Services, tmp_path: Path
) -> None:
    python = ensure("tritonclient", ["tritonclient[http]", "numpy"], "import tritonclient.http")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 4))
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 2] > 0).astype(np.int64))
    services.registry.register("churn", model=model, example_input=x[:3])
    services.registry.set_alias("churn", "champion", 1)
    rows = x[:7]

    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(MLBOX), "up", "--port", "0"], env=mlbox_env(home), cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        url = wait_announced(home, proc, log=log)
        done = subprocess.run(
            [str(python), "-c", SCRIPT, url.removeprefix("http://"), "churn", json.dumps(rows.tolist())],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stop(proc)
    assert done.returncode == 0, f"{done.stderr[-4000:]}\nmlbox up said:\n{log.read_text()[-3000:]}"
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert (said["live"], said["ready"], said["model_ready"]) == (True, True, True)
    assert said["meta"]["inputs"][0]["datatype"] == "FP64"
    expected = model.predict(rows).tolist()
    assert said["answers"] == {k: expected for k in said["answers"]}
    assert len(said["answers"]) == 4
