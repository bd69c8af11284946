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
6. a job's checkpoint of CUDA tensors is published with its sha256 in its name, and
   the retried attempt resumes from it, read with ``weights_only=True`` (`mlbox.checkpoint`);
7. a served torch model (``MLBOX_SERVING_GPUS=auto``) leases a GPU from the
   same table, is loaded on ``cuda:N`` and scores there, while a job waits and its
   message names the served model that holds the GPU (issue 12);
8. over real HTTP (issue 12), unauthenticated ``/v2/models/<m>/versions/<n>/ready`` and
   ``.../infer`` of an unaliased torch version neither load it, nor lease a GPU, nor grow
   CUDA memory, while a job waits for the GPU and again while one runs on it; with the token
   the version loads on demand on the CPU, never leasing a GPU a job could use.

``--dry-run`` (or ``GPU_CHECK_DRY=1``) runs it all on simulated GPUs (``MLBOX_GPUS``, default
``0:81559``, one H100) and the CPU: the checks only a real GPU can pass print DRY instead of failing.
Not a test (CI has no GPU): a prepared script for one short run where a GPU is lent.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
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

CKPT_SCRIPT = """
import hashlib, os, sys, torch
from mlbox import checkpoint
dev = "cpu" if os.environ.get("GPU_CHECK_DRY") == "1" else "cuda"
g = torch.Generator().manual_seed(0)
state = {"w": torch.randn(512, 512, generator=g).to(dev), "b": torch.arange(8.0).to(dev), "step": 7}
got = checkpoint.load_latest()
if got is None:  # first attempt: save CUDA tensors, then fail so that the retry resumes
    path = checkpoint.save(state, 7)
    print("SAVED", path.name, "FROM", state["w"].device, flush=True)
    sys.exit(3)
digest = hashlib.sha256(got.path.read_bytes()).hexdigest()
strict = torch.load(got.path, map_location=dev, weights_only=True)  # raises on anything but weights
same = all(torch.equal(x[k].cpu(), state[k].cpu()) for x in (got.obj, strict) for k in ("w", "b"))
print("CKPT attempt", os.environ.get("MLBOX_JOB_ATTEMPT"), "step", got.step, "digest_in_name",
      got.path.name.split(".")[1] == digest, "equal", same, "strict_on", strict["w"].device, flush=True)
"""


class Report:
    def __init__(self, dry: bool) -> None:
        self.dry = dry
        self.checks: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def check(self, name: str, ok: bool, detail: Any, gpu_only: bool = False) -> None:
        """``gpu_only``: only a real GPU can pass it, so a dry run shows it as DRY, not failed."""
        skipped = self.dry and gpu_only and not ok
        self.checks.append({"check": name, "ok": bool(ok) or skipped, "dry": skipped, "detail": detail})
        mark = "DRY " if skipped else "PASS" if ok else "FAIL"
        print(f"{mark}  [{time.monotonic() - self.t0:5.1f} s] {name}: {detail}", flush=True)

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


def job_line(sched: Any, job_id: int, prefix: str) -> str:
    """The first line of the job's log starting with ``prefix``, else the log's tail."""
    path = sched.log_path(job_id)
    log = path.read_text() if path.exists() else ""
    return next((ln for ln in log.splitlines() if ln.startswith(prefix)), log[-400:])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--dry-run", action="store_true", help="simulated GPUs (MLBOX_GPUS) and the CPU: checks the script"
    )
    args = parser.parse_args()
    dry = args.dry_run or os.environ.get("GPU_CHECK_DRY") == "1"

    if dry:
        os.environ["GPU_CHECK_DRY"] = "1"  # jobs inherit it and use the CPU
        os.environ.setdefault("MLBOX_GPUS", "0:81559")
    else:
        os.environ.pop("MLBOX_GPUS", None)  # the real inventory, from NVML
    home = Path(tempfile.mkdtemp(prefix="mlbox-gpu-check-"))
    os.environ["MLBOX_HOME"] = str(home)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

    from mlbox.appliance import Appliance
    from mlbox.scheduler.schemas import JobSpec, Resources
    from mlbox.services import Services
    from mlbox.settings import Settings

    report = Report(dry)
    settings = Settings.from_env()
    settings = replace(settings, port=0, serving=replace(settings.serving, gpus="auto"))
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
            gpu_only=True,
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
            line = job_line(sched, job.id, "VISIBLE")
            parts = line.split()
            ok = (
                len(parts) >= 6 and parts[3] == "1" and parts[1].isdigit() and inv[int(parts[1])].name in line
            )
            report.check(f"job {job.id} sees exactly its leased GPU", ok, line, gpu_only=True)
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
        line = job_line(sched, tr.id, "NCCL")
        report.check(
            "torchrun all-reduce over NCCL",
            tr_job.state == "succeeded" and "nccl" in line,
            line,
            gpu_only=tr_job.state == "succeeded",
        )

        checkpoint_check(services, report, py, home)
        serve_check(services, appliance, report, py, script)
    except BaseException as exc:
        # a crash, or the SIGINT of `timeout -s INT`: a failed check, and the report is still written
        report.check("the check ran to its end", False, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stop.set()
        sched.close(kill=True)
        seconds = time.monotonic() - report.t0
        if args.out:
            body = {"ok": report.ok, "dry": dry, "seconds": seconds, "checks": report.checks}
            args.out.write_text(json.dumps(body, indent=2, default=str))
        print(f"{'ALL PASS' if report.ok else 'SOME FAILED'} in {seconds:.1f} s", flush=True)
    return 0 if report.ok else 1


def checkpoint_check(services: Any, report: Report, py: str, home: Path) -> None:
    """A 1-GPU job saves CUDA tensors and fails; its retry resumes from the verified checkpoint."""
    import torch

    from mlbox.scheduler.schemas import JobSpec, Resources

    sched = services.scheduler
    ckpt = home / "ckpt.py"
    ckpt.write_text(CKPT_SCRIPT)
    job = sched.submit(
        JobSpec(name="checkpoint", command=[py, str(ckpt)], resources=Resources(gpus=1), max_retries=1)
    )
    until(lambda: sched.get(job.id).terminal, 120)
    done = sched.get(job.id)
    saved, line = job_line(sched, job.id, "SAVED"), job_line(sched, job.id, "CKPT")
    report.check(
        "a job's checkpoint of CUDA tensors resumes its retry (sha256 checked, weights_only=True)",
        done.state == "succeeded"
        and done.attempt == 2
        and "digest_in_name True" in line
        and "equal True" in line,
        {"state": done.state, "attempt": done.attempt, "saved": saved, "resumed": line},
    )
    report.check("the checkpoint was saved from CUDA tensors", "FROM cuda" in saved, saved, gpu_only=True)
    folder = Path(done.checkpoint_dir)
    files = sorted(folder.glob("step-*"))
    name = files[-1].name if files else ""
    digest = hashlib.sha256(files[-1].read_bytes()).hexdigest() if files else ""
    try:
        loaded = torch.load(files[-1], map_location="cpu", weights_only=True) if files else {}
        detail = {"file": name, "keys": sorted(loaded), "w": list(loaded["w"].shape)}
    except Exception as exc:  # reported as a failed check
        loaded, detail = {}, {"file": name, "error": repr(exc)}
    report.check(
        "the stored checkpoint's name holds its sha256 and it reads with weights_only=True",
        bool(files) and name.split(".")[1:2] == [digest] and "w" in loaded,
        detail,
    )


def http(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One loopback request (no proxy), its status and JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with opener.open(request, timeout=120) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw[:200].decode("latin-1")


def serve_check(services: Any, appliance: Any, report: Report, py: str, script: Path) -> None:
    import numpy as np
    import torch

    from mlbox.scheduler.schemas import JobSpec, Resources
    from mlbox.serving.tensors import Payload

    sched = services.scheduler
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).eval()
    net2 = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).eval()
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    services.registry.register("net", model=net, example_input=x)
    net3 = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).eval()
    services.registry.register("net", model=net2, example_input=x)  # versions 2 and 3: no alias
    services.registry.register("net", model=net3, example_input=x)
    services.registry.set_alias("net", "champion", 1)
    url = appliance.start_http()
    token = appliance.token
    serving = appliance.serving
    serving.start()
    try:
        ready = serving.wait_ready(120)
        leases = [(le.gpu, le.owner) for le in sched.leases()]
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
        devices = {str(p.device) for p in _served_modules(net)}
        report.check(
            "served model lives on CUDA",
            any(d.startswith("cuda") for d in devices),
            sorted(devices),
            gpu_only=True,
        )
        # every GPU: the served model's one and the rest, so that the job must wait for it
        waiting = sched.submit(
            JobSpec(
                name="after-serving",
                command=[py, str(script)],
                resources=Resources(gpus=len(sched.inventory())),
                env={"HOLD_S": "8"},
            )
        )
        named = until(lambda: "serving net/1" in (sched.get(waiting.id).message or ""), 10)
        job = sched.get(waiting.id)
        report.check(
            "a job waits for the served model's GPU and its message names the holder",
            named and job.state == "queued",
            {"state": job.state, "message": job.message},
        )
        open_routes_check(services, url, report, x, 2, "while a job waits for the GPU")
        on_demand_check(services, url, token, report, x, net2, 2, "while a job waits")

        # the alias goes away: its GPU lease is given back and the waiting job starts on it
        services.registry.delete_alias("net", "champion")
        serving.notify()
        started = until(lambda: sched.get(waiting.id).state == "running", 30)
        report.check(
            "the job starts once the served model gives its GPU back",
            started,
            {"state": sched.get(waiting.id).state, "leases": [(le.gpu, le.owner) for le in sched.leases()]},
        )
        open_routes_check(services, url, report, x, 3, "while a job runs on the GPU")
        beside = on_demand_check(services, url, token, report, x, net3, 3, "while a job runs")
        job = sched.get(waiting.id)
        report.check(
            "the on-demand loads ran beside the job (it was still running)",
            job.state == "running" and beside,
            {"state": job.state},
        )
        until(lambda: sched.get(waiting.id).terminal, 60)
        report.check(
            "the job that waited for the served model's GPU succeeded",
            sched.get(waiting.id).state == "succeeded",
            sched.get(waiting.id).state,
        )
    finally:
        serving.close()


def _cuda_bytes() -> int:
    import torch

    return int(torch.cuda.memory_allocated()) if torch.cuda.is_available() else 0


def _serving_leases(services: Any) -> list[tuple[int, str | None]]:
    return [(le.gpu, le.owner) for le in services.scheduler.leases() if le.job_id is None]


def open_routes_check(services: Any, url: str, report: Report, x: Any, version: int, when: str) -> None:
    """Unauthenticated ready and infer of an unloaded version: refused, and nothing loaded."""
    serving = services.serving
    meta_status, meta = http(f"{url}/v2/models/net/versions/{version}")
    name = meta["inputs"][0]["name"] if meta_status == 200 else "input"
    body = {
        "inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    before_leases, before_cuda = _serving_leases(services), _cuda_bytes()
    answers = []
    for _ in range(3):
        answers.append(http(f"{url}/v2/models/net/versions/{version}/ready")[0])
        answers.append(http(f"{url}/v2/models/net/versions/{version}/infer", "POST", body)[0])
    time.sleep(0.3)  # a load set off by them would have begun
    after_leases, after_cuda = _serving_leases(services), _cuda_bytes()
    loaded = [k for k in serving.served() if k == f"net/{version}"]
    report.check(
        f"open ready/infer of unaliased net/{version} load nothing and lease no GPU ({when})",
        all(s in (404, 503) for s in answers)
        and not loaded
        and after_leases == before_leases
        and not any(o and f"net/{version}" in o for _, o in after_leases)
        and after_cuda <= before_cuda,
        {
            "statuses": answers,
            "serving_leases": after_leases,
            "cuda_bytes": [before_cuda, after_cuda],
            "metadata": meta_status,
        },
    )


def on_demand_check(
    services: Any, url: str, token: str, report: Report, x: Any, net: Any, version: int, when: str
) -> bool:
    """With the token, an unaliased version loads on demand: it scores, on the CPU, with no lease."""
    import numpy as np
    import torch

    _, meta = http(f"{url}/v2/models/net/versions/{version}")
    name = meta["inputs"][0]["name"]
    body = {
        "inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    leases_before = _serving_leases(services)
    status, answer = http(f"{url}/v2/models/net/versions/{version}/infer", "POST", body, token=token)
    expected = net(torch.from_numpy(x)).detach().numpy()
    got = (
        np.asarray(answer["outputs"][0]["data"], dtype=np.float32).reshape(expected.shape)
        if status == 200
        else None
    )
    devices = sorted({str(p.device) for p in _served_modules(net)})
    leases = _serving_leases(services)
    ok = (
        status == 200
        and got is not None
        and np.allclose(got, expected, atol=1e-4)
        and devices == ["cpu"]
        and not any(o and f"net/{version}" in o for _, o in leases)
        and len(leases) <= len(leases_before)
    )
    report.check(
        f"with the token net/{version} loads on demand on the CPU and leases no GPU ({when})",
        ok,
        {"status": status, "devices": devices, "serving_leases": leases},
    )
    return ok


def _served_modules(like: Any) -> list[Any]:
    """The parameters of every torch model this process loaded for serving whose weights equal
    ``like``'s (found through the garbage collector: the batcher holds its predictor in a closure)."""
    import gc
    import warnings

    import torch

    from mlbox.registry.flavors.pytorch import TorchPredictor

    with warnings.catch_warnings():  # torch's deprecated aliases warn when touched
        warnings.simplefilter("ignore")
        predictors = [o for o in gc.get_objects() if isinstance(o, TorchPredictor)]
    first = next(like.parameters()).detach().cpu()
    same = [p for p in predictors if torch.equal(next(p.module.parameters()).detach().cpu(), first)]
    return [param for p in same for param in p.module.parameters()]


if __name__ == "__main__":
    raise SystemExit(main())
