"""The Ray executor's pure parts, without a cluster: the address, the submission, exit codes,
the cluster board, and that choosing it is refused with a clear error when it is malformed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlbox.scheduler import ray_spec
from mlbox.scheduler.config import SchedulerSettings
from mlbox.scheduler.ray_executor import cluster_resources, dashboard_url
from mlbox.scheduler.schemas import Job, JobSpec, Resources
from mlbox.store.errors import InvalidInput
from mlbox.tui.views import jobs as view


def test_the_executor_setting_names_a_ray_dashboard_or_is_refused() -> None:
    assert SchedulerSettings.from_env({}).executor == "local"
    assert SchedulerSettings.from_env({"MLBOX_EXECUTOR": "local"}).executor == "local"
    s = SchedulerSettings.from_env({"MLBOX_EXECUTOR": "ray://10.0.0.7:8265"})
    assert s.executor == "ray://10.0.0.7:8265"
    assert dashboard_url(s.executor) == "http://10.0.0.7:8265"
    for bad in ("slurm://x:1", "ray://host", "ray://:8265", "ray://host:99999", "ray://host:http"):
        with pytest.raises(InvalidInput) as e:
            SchedulerSettings.from_env({"MLBOX_EXECUTOR": bad})
        assert e.value.field == "MLBOX_EXECUTOR"


def test_resources_become_the_entrypoints_request_and_host_paths_stay_home(tmp_path: Path) -> None:
    spec = JobSpec(
        name="t",
        script="train.py",
        script_args=["--lr", "0.1"],
        resources=Resources(gpus=2, gpu_memory_mb=24000, cpus=3.0),
        workdir=str(tmp_path),
    )
    env = {"A": "1", "CUDA_VISIBLE_DEVICES": "0,1", "MLBOX_HOME": "/home/x/.mlbox", "MLBOX_JOB_ID": "4"}
    kw = ray_spec.submit_kwargs(spec, env)
    assert kw["entrypoint_num_gpus"] == 2.0 and kw["entrypoint_num_cpus"] == 3.0
    assert kw["entrypoint_resources"] == {"gpu_memory_mb": 48000.0}
    assert kw["runtime_env"] == {"env_vars": {"A": "1", "MLBOX_JOB_ID": "4"}, "working_dir": str(tmp_path)}
    assert ray_spec.entrypoint(spec) == "python train.py --lr 0.1"
    cpu = ray_spec.submit_kwargs(JobSpec(name="c", command=["echo", "a b"]), {})
    assert "entrypoint_num_gpus" not in cpu and "entrypoint_resources" not in cpu
    assert ray_spec.entrypoint(JobSpec(name="c", command=["echo", "a b"])) == "echo 'a b'"


def test_submission_ids_are_per_home_job_and_attempt(tmp_path: Path) -> None:
    a, b = ray_spec.submission_prefix(tmp_path / "a", 7), ray_spec.submission_prefix(tmp_path / "b", 7)
    assert a != b and a.endswith("-7-") and a.startswith("mlbox-")
    assert ray_spec.submission_prefix(tmp_path / "a", 7) == a  # stable: a restarted appliance re-attaches


def test_exit_codes_from_rays_words() -> None:
    assert ray_spec.exit_code("RUNNING", None) is None
    assert ray_spec.exit_code("PENDING", None) is None
    assert ray_spec.exit_code("SUCCEEDED", 0) == 0
    assert ray_spec.exit_code("FAILED", 3) == 3
    assert ray_spec.exit_code("FAILED", None) == 1
    assert ray_spec.exit_code("STOPPED", 0) == -15


def test_cluster_board_rows_and_where_a_job_runs() -> None:
    body = {
        "data": {
            "clusterStatus": {
                "loadMetricsReport": {
                    "usage": {
                        "CPU": [1.0, 4.0],
                        "GPU": [2.0, 2.0],
                        "memory": [0.0, 8 * 2**30],
                        "node:127.0.0.1": [0.0, 1.0],
                    }
                }
            }
        }
    }
    cluster = cluster_resources(body)
    assert cluster["total"] == {"CPU": 4.0, "GPU": 2.0, "memory": 8 * 2**30}
    assert view.cluster_rows(cluster) == [
        ("CPU", "3", "4"),
        ("GPU", "0", "2"),
        ("memory", "8.0 GiB", "8.0 GiB"),
    ]
    assert cluster_resources({"unexpected": 1}) == {}

    base = dict(
        id=1, spec=JobSpec(name="x", command=["true"]), state="running", attempt=1, gpus=[], pid=None,
        run_id=None, exit_code=None, created_at=0.0, started_at=0.0, finished_at=None, message=None,
        log_path="",
    )  # fmt: skip
    assert view.where_cell(Job(**base)) == "local"  # type: ignore[arg-type]
    on_ray = Job(**base, executor_job_id="mlbox-ab-1-1", node="10.0.0.7\x1b[2J")  # type: ignore[arg-type]
    assert view.where_cell(on_ray).startswith("ray 10.0.0.7") and "\x1b" not in view.where_cell(on_ray)
    assert view.gpus_cell(on_ray) == view.where_cell(on_ray)


def test_local_executor_never_imports_ray(home: Path) -> None:
    """A whole appliance's services and a scheduler pass, in a fresh interpreter: no ray."""
    code = (
        "import sys\nfrom mlbox.settings import Settings\nfrom mlbox.services import Services\n"
        "s = Services.open(Settings.from_env()); s.scheduler.reconcile_once(); s.scheduler.cluster()\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_what_live_jobs_hold_bounds_the_room_a_stale_free_figure_shows() -> None:
    """Two placed 2-CPU trials on a 4-CPU head: a cluster status read before they were placed
    still says 4 free, but the total less what they hold leaves room for none."""
    request = ray_spec.submit_kwargs(JobSpec(name="t", command=["true"], resources=Resources(cpus=2.0)), {})
    live = [{"cpus": 2.0, "gpus": 0, "gpu_memory_mb": 0}, {"cpus": 2.0, "gpus": 1, "gpu_memory_mb": 1000}]
    ours = ray_spec.held(live)
    assert ours == {"CPU": 4.0, "GPU": 1.0, ray_spec.GPU_MEMORY_RESOURCE: 1000.0}
    assert ray_spec.fits({"CPU": 4.0}, request) == 2
    assert ray_spec.fits({"CPU": 4.0 - ours["CPU"]}, request) == 0
    assert ray_spec.fits({"CPU": 7.0 - ours["CPU"]}, request) == 1
