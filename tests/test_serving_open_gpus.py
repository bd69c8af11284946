"""With two (simulated) GPUs, open routes asking about or scoring versions no alias serves load
nothing and lease nothing, so a job can still start; the token loads a version on the CPU."""

from __future__ import annotations

import numpy as np
import torch
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.scheduler.schemas import JobSpec, Resources
from mlbox.services import Services
from tests.models import MLP

TOKEN = "open-gpus-token"


def test_open_routes_take_no_gpu_and_the_token_loads_on_the_cpu(gpu_services: Services) -> None:
    torch.manual_seed(0)
    x = np.zeros((2, 8), dtype=np.float32)
    for _ in range(3):
        gpu_services.registry.register("t", model=MLP().eval(), example_input=x)
    serving = gpu_services.serving
    serving.start()
    body = {"inputs": [{"name": "input", "shape": [2, 8], "datatype": "FP32", "data": x.ravel().tolist()}]}
    try:
        assert serving.wait_ready(60)
        with TestClient(create_app(gpu_services, token=TOKEN), base_url="http://127.0.0.1:5151") as anon:
            for v in (1, 2, 3):
                assert anon.get(f"/v2/models/t/versions/{v}/ready").status_code == 503
                assert anon.post(f"/v2/models/t/versions/{v}/infer", json=body).status_code == 404
                assert anon.get(f"/v2/models/t/versions/{v}").status_code == 200
            assert anon.post("/v2/models/t/infer", json=body).status_code == 404
            serving.sync()
            assert gpu_services.scheduler.leases() == [] and serving.served() == {}
            job = gpu_services.scheduler.submit(
                JobSpec(name="train", command=["sleep", "30"], resources=Resources(gpus=1))
            )
            gpu_services.scheduler.reconcile_once()
            assert gpu_services.scheduler.get(job.id).state == "running"
            # with the token the version loads on demand, on the CPU: the other GPU stays free
            auth = {"Authorization": f"Bearer {TOKEN}"}
            r = anon.post("/v2/models/t/versions/2/infer", json=body, headers=auth)
            assert r.status_code == 200, r.text
            assert [lease.job_id for lease in gpu_services.scheduler.leases()] == [job.id]
            second = gpu_services.scheduler.submit(
                JobSpec(name="train2", command=["sleep", "30"], resources=Resources(gpus=1))
            )
            gpu_services.scheduler.reconcile_once()
            assert gpu_services.scheduler.get(second.id).state == "running"
    finally:
        serving.close()
