"""Served torch models lease their GPU from the scheduler's one lease table, beside jobs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from mlbox.appliance import Appliance
from mlbox.scheduler.config import SchedulerSettings
from mlbox.scheduler.schemas import JobSpec, Resources
from mlbox.services import Services
from mlbox.serving.tensors import Payload
from mlbox.settings import Settings
from tests.models import MLP, Doubler


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def one_gpu(settings: Settings) -> Iterator[Services]:
    services = Services.open(replace(settings, scheduler=SchedulerSettings(gpus="1", tick_s=0.05)))
    yield services
    services.scheduler.close(kill=True)


def test_a_served_torch_model_holds_a_gpu_until_its_alias_moves_away(one_gpu: Services) -> None:
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    one_gpu.registry.register("net", model=MLP().eval(), example_input=x)
    one_gpu.registry.set_alias("net", "champion", 1)
    appliance = Appliance(one_gpu)
    appliance.serving.start()
    try:
        assert appliance.serving.wait_ready(60)
        leases = one_gpu.scheduler.leases()
        assert [(lease.gpu, lease.job_id, lease.owner) for lease in leases] == [(0, None, "serving:net/1")]
        # a simulated GPU: the model is scored on the CPU while the lease keeps the GPU from jobs
        import asyncio

        scored = asyncio.run(appliance.serving.score("net@champion", Payload("rows", x)))
        assert scored.rows == 4
        job = one_gpu.scheduler.submit(JobSpec(name="train", command=["true"], resources=Resources(gpus=1)))
        one_gpu.scheduler.reconcile_once()
        assert one_gpu.scheduler.get(job.id).state == "queued"
        # the alias moves to a CPU model: the torch version drains and gives its GPU back
        one_gpu.registry.register("net", model=Doubler(), flavor="python", example_input=x)
        one_gpu.registry.set_alias("net", "champion", 2)
        appliance.serving.sync()
        until(lambda: one_gpu.scheduler.leases() == [] or one_gpu.scheduler.leases()[0].job_id == job.id)

        def finished() -> bool:
            one_gpu.scheduler.reconcile_once()
            return one_gpu.scheduler.get(job.id).terminal

        until(finished, timeout=60)
        assert one_gpu.scheduler.get(job.id).state == "succeeded"
    finally:
        appliance.serving.close()


def test_without_a_free_gpu_a_torch_model_is_served_on_the_cpu(one_gpu: Services) -> None:
    job = one_gpu.scheduler.submit(JobSpec(name="hog", command=["sleep", "30"], resources=Resources(gpus=1)))
    one_gpu.scheduler.reconcile_once()
    assert one_gpu.scheduler.get(job.id).state == "running"
    x = np.zeros((2, 8), dtype=np.float32)
    one_gpu.registry.register("net", model=MLP().eval(), example_input=x)
    one_gpu.registry.set_alias("net", "champion", 1)
    appliance = Appliance(one_gpu)
    appliance.serving.start()
    try:
        assert appliance.serving.wait_ready(60)
        assert [lease.job_id for lease in one_gpu.scheduler.leases()] == [job.id]
        assert appliance.serving.failures() == {}
    finally:
        appliance.serving.close()
        one_gpu.scheduler.cancel(job.id)
        one_gpu.scheduler.reconcile_once()


def test_a_holder_lease_of_a_dead_process_is_freed(one_gpu: Services) -> None:
    one_gpu.scheduler.lease_gpus("serving:ghost/1")
    with one_gpu.scheduler.db.atomic() as conn:
        conn.execute("UPDATE gpu_leases SET pid = 999999999 WHERE holder = 'serving:ghost/1'")
    one_gpu.scheduler.reconcile_once()
    assert one_gpu.scheduler.leases() == []
