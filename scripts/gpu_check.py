"""Real-GPU check of the paths the test suite can only simulate (`MLBOX_GPUS`).

Run on a machine with at least one NVIDIA GPU and a CUDA build of torch:
``python scripts/gpu_check.py [--out report.json]``. It makes a throw-away
``MLBOX_HOME`` and checks, printing one line per check and exiting 1 if any fails:

1. the inventory comes from NVML (not simulated) with each GPU's memory;
2. a ``--gpus 1`` job sees exactly its leased GPU (``CUDA_VISIBLE_DEVICES``,
   one CUDA device, NVML's name) and runs a matmul on it, logging to its run;
3. a second such job waits while every GPU is leased, and starts after;
4. a job asking more GPU memory than any GPU has never starts, and says why;
5. a ``torchrun`` job all-reduces over NCCL on its leased GPU;
6. a served torch model (``MLBOX_SERVING_GPUS=auto``) leases a GPU from the
   same table, is loaded on ``cuda:N`` and scores there, while a job waits.

Not a test (CI has no GPU): a prepared script for one short run where a GPU is lent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOB_SCRIPT = """
import os, time, torch, mlbox
dry = os.environ.get("GPU_CHECK_DRY") == "1"
assert dry or torch.cuda.is_available(), "no CUDA in the job"
dev = "cpu" if dry else "cuda"
x = torch.randn(1024 if dry else 4096, 1024 if dry else 4096, device=dev)
sync = (lambda: None) if dry else torch.cuda.synchronize
sync(); t0 = time.perf_counter()
for _ in range(10): y = x @ x
sync(); ms = (time.perf_counter() - t0) * 100
mlbox.log_metric("matmul_ms", ms)
print("VISIBLE", os.environ.get("CUDA_VISIBLE_DEVICES"), "COUNT", 0 if dry else torch.cuda.device_count(),
      "NAME", "cpu" if dry else torch.cuda.get_device_name(0), "MS", round(ms, 3), flush=True)
time.sleep(float(os.environ.get("HOLD_S", "0")))
"""

NCCL_SCRIPT = """
import os, torch, torch.distributed as dist
dry = os.environ.get("GPU_CHECK_DRY") == "1"
dist.init_process_group("gloo" if dry else "nccl")
if not dry:
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
t = torch.ones(4, device="cpu" if dry else "cuda") * (dist.get_rank() + 1)
dist.all_reduce(t)
print("NCCL", dist.get_backend(), "WORLD", dist.get_world_size(), "SUM", t.tolist(), flush=True)
dist.destroy_process_group()
"""


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, ok: bool, detail: Any) -> None:
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


def until(condition: Callable[[], bool], timeout: float, tick: Callable[[], Any] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if condition():
            return True
        time.sleep(0.1)
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--dry-run", action="store_true", help="keep MLBOX_GPUS (simulated): checks the script"
    )
    args = parser.parse_args()

    if args.dry_run:
        os.environ["GPU_CHECK_DRY"] = "1"  # jobs inherit it and use the CPU
    else:
        os.environ.pop("MLBOX_GPUS", None)  # the real inventory, from NVML
    home = Path(tempfile.mkdtemp(prefix="mlbox-gpu-check-"))
    os.environ["MLBOX_HOME"] = str(home)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

    from mlbox.appliance import Appliance
    from mlbox.scheduler.schemas import JobSpec, Resources
    from mlbox.services import Services
    from mlbox.settings import Settings

    report = Report()
    settings = Settings.from_env()
    settings = replace(settings, serving=replace(settings.serving, gpus="auto"))
    services = Services.open(settings)
    sched = services.scheduler
    appliance = Appliance(services)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            appliance.schedule_once()
            stop.wait(0.1)

    threading.Thread(target=loop, daemon=True).start()
    try:
        inv = sched.inventory()
        report.check(
            "inventory from NVML",
            bool(inv) and not any(g.simulated for g in inv),
            [f"{g.index}: {g.name} {g.memory_mb} MiB" for g in inv],
        )
        script = home / "job.py"
        script.write_text(JOB_SCRIPT)
        py = sys.executable
        hold = {"HOLD_S": "3"}
        per_gpu = [
            sched.submit(
                JobSpec(name=f"pinned-{i}", command=[py, str(script)], resources=Resources(gpus=1), env=hold)
            )
            for i in range(len(inv) + 1)
        ]
        too_big = sched.submit(
            JobSpec(
                name="too-big",
                command=[py, "-c", "print('should not run')"],
                resources=Resources(gpus=1, gpu_memory_mb=max(g.memory_mb or 1000 for g in inv) * 4),
            )
        )
        done = until(lambda: all(sched.get(j.id).terminal for j in per_gpu), 240)
        jobs = [sched.get(j.id) for j in per_gpu]
        report.check(
            "pinned jobs finished",
            done and all(j.state == "succeeded" for j in jobs),
            [(j.id, j.state) for j in jobs],
        )
        for job in jobs:
            log = sched.log_path(job.id).read_text() if sched.log_path(job.id).exists() else ""
            line = next((ln for ln in log.splitlines() if ln.startswith("VISIBLE")), log[-300:])
            parts = line.split()
            ok = (
                len(parts) >= 6 and parts[3] == "1" and parts[1].isdigit() and inv[int(parts[1])].name in line
            )
            report.check(f"job {job.id} sees exactly its leased GPU", ok, line)
            try:
                points = len(services.tracking.metric_history(job.run_id or 0, "matmul_ms"))
                detail = f"run {job.run_id}: {points} points"
            except Exception as exc:  # reported as a failed check
                points, detail = 0, f"run {job.run_id}: {exc}"
            report.check(f"job {job.id} logged to its run", points > 0, detail)
        last, before = jobs[-1], jobs[: len(inv)]
        freed = [b.finished_at for b in before if b.finished_at is not None]
        first_free = min(freed) if len(freed) == len(before) else None
        waited = last.started_at is not None and first_free is not None and last.started_at >= first_free
        report.check(
            "a job waits while every GPU is leased",
            waited,
            {"started": last.started_at, "first_free": first_free},
        )
        big = sched.get(too_big.id)
        report.check(
            "a job asking too much GPU memory never starts, and says why",
            big.state == "queued" and big.attempt == 0 and bool(big.message),
            {"state": big.state, "message": big.message},
        )
        sched.cancel(too_big.id)

        nccl = home / "nccl.py"
        nccl.write_text(NCCL_SCRIPT)
        tr = sched.submit(
            JobSpec(name="torchrun", script=str(nccl), resources=Resources(gpus=1), launcher="torchrun")
        )
        until(lambda: sched.get(tr.id).terminal, 180)
        tr_job = sched.get(tr.id)
        log = sched.log_path(tr.id).read_text() if sched.log_path(tr.id).exists() else ""
        line = next((ln for ln in log.splitlines() if ln.startswith("NCCL")), log[-400:])
        report.check("torchrun all-reduce over NCCL", tr_job.state == "succeeded" and "nccl" in line, line)

        serve_check(services, appliance, report, py, script)
    finally:
        stop.set()
        sched.close(kill=True)
    if args.out:
        args.out.write_text(json.dumps({"ok": report.ok, "checks": report.checks}, indent=2, default=str))
    print("ALL PASS" if report.ok else "SOME FAILED", flush=True)
    return 0 if report.ok else 1


def serve_check(services: Any, appliance: Any, report: Report, py: str, script: Path) -> None:
    import numpy as np
    import torch

    from mlbox.scheduler.schemas import JobSpec, Resources
    from mlbox.serving.tensors import Payload

    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).eval()
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    services.registry.register("net", model=net, example_input=x)
    services.registry.set_alias("net", "champion", 1)
    serving = appliance.serving
    serving.start()
    try:
        ready = serving.wait_ready(120)
        leases = [(le.gpu, le.owner) for le in services.scheduler.leases()]
        report.check(
            "served model leases a GPU", ready and any(o == "serving:net/1" for _, o in leases), leases
        )
        scored = asyncio.run(serving.score("net@champion", Payload("rows", x)))
        expected = net(torch.from_numpy(x)).detach().numpy()
        got = np.asarray(next(iter(scored.outputs.values())))
        report.check(
            "served model scores like the CPU model",
            np.allclose(got, expected, atol=1e-4),
            {"rows": scored.rows},
        )
        devices = {str(p.device) for p in _served_modules(serving)}
        report.check(
            "served model lives on CUDA", any(d.startswith("cuda") for d in devices), sorted(devices)
        )
        waiting = services.scheduler.submit(
            JobSpec(name="after-serving", command=[py, str(script)], resources=Resources(gpus=1))
        )
        time.sleep(1.0)
        report.check(
            "a job waits for the served model's GPU",
            services.scheduler.get(waiting.id).state == "queued",
            services.scheduler.get(waiting.id).state,
        )
        services.scheduler.cancel(waiting.id)
    finally:
        serving.close()


def _served_modules(serving: Any) -> list[Any]:
    """The parameters of every torch model this process has loaded for serving (found through
    the garbage collector: the batcher holds its predictor in a closure)."""
    import gc
    import warnings

    from mlbox.registry.flavors.pytorch import TorchPredictor

    with warnings.catch_warnings():  # torch's deprecated aliases warn when touched
        warnings.simplefilter("ignore")
        predictors = [o for o in gc.get_objects() if isinstance(o, TorchPredictor)]
    return [p for pred in predictors for p in pred.module.parameters()]


if __name__ == "__main__":
    raise SystemExit(main())
