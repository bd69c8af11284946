"""A job that waits for GPUs held outside jobs names who holds them (issue 12).

Served models lease GPUs from the scheduler's table; placement leaves those out, so a
1-GPU job on a 2-GPU machine whose GPUs both serve models waits. Its message used to
say "cannot fit: it asks for 1 GPUs and this scheduler has 2", which contradicts itself.
"""

from __future__ import annotations

from mlbox.scheduler.schemas import Gpu, JobSpec, Resources
from mlbox.scheduler.validation import why_impossible
from mlbox.services import Services

TWO = [Gpu(index=i, name="sim", memory_mb=None, simulated=True) for i in (0, 1)]


def test_the_message_names_the_holders_when_the_machine_would_fit() -> None:
    why = why_impossible(1, 0, 1.0, TWO, 4.0, {0: "serving:t/1", 1: "serving:t/2"})
    assert why == "waiting for 1 GPU: held outside jobs: GPU 0 by serving t/1, GPU 1 by serving t/2"
    # a job bigger than the machine still cannot fit, whoever holds what
    assert why_impossible(3, 0, 1.0, TWO, 4.0, {0: "serving:t/1"}).startswith(
        "cannot fit: it asks for 3 GPUs"
    )
    assert why_impossible(1, 0, 1.0, TWO, 4.0, {}).startswith("cannot fit")


def test_a_queued_job_says_which_served_models_hold_the_gpus(gpu_services: Services) -> None:
    scheduler = gpu_services.scheduler
    assert scheduler.lease_gpus("serving:t/1", 1) and scheduler.lease_gpus("serving:t/2", 1)
    job = scheduler.submit(JobSpec(name="needs-a-gpu", command=["true"], resources=Resources(gpus=1)))
    scheduler.reconcile_once()
    got = scheduler.get(job.id)
    assert got.state == "queued"
    assert got.message == "waiting for 1 GPU: held outside jobs: GPU 0 by serving t/1, GPU 1 by serving t/2"
    scheduler.release_gpus("serving:t/1")
    scheduler.reconcile_once()
    assert scheduler.get(job.id).state != "queued"
