"""Job tokens: what a job on a Ray node may call with its own token, and when it stops working.

No Ray here: the attempt is claimed and its token minted by the Ray half's own calls
(`Reconciler.claim_in`, `job_tokens.mint`), and ended by the pass's `_finish`, so these
run in a second; the same token through a real Ray job is in `test_ray_executor`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.scheduler import job_tokens
from mlbox.scheduler.schemas import JobSpec
from mlbox.services import Services
from tests.helpers import error

ADMIN = "admin-token-7f3e"
BASE = "http://127.0.0.1:5151"


@pytest.fixture
def app(services: Services) -> Litestar:
    return create_app(services, token=ADMIN)


@pytest.fixture
def anon(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app, base_url=BASE) as client:
        yield client


def _running(services: Services, name: str) -> tuple[int, int, str]:
    """A job claimed as a Ray attempt, with the token minted in the claim's transaction."""
    sched = services.scheduler
    job = sched.submit(JobSpec(name=name, command=["true"]))
    with sched.db.atomic() as conn:
        row = sched.reconciler.claim_in(conn, job.id, (), time.time(), submission_prefix="mlbox-test-")
        assert row is not None
        token = job_tokens.mint(conn, job.id, row["attempt"], row["run_id"], time.time())
    return job.id, row["run_id"], token


def test_a_job_token_opens_its_own_run_and_job_only_while_it_runs(
    services: Services, anon: TestClient[Litestar]
) -> None:
    job_id, run_id, token = _running(services, "mine")
    other_job, other_run, _ = _running(services, "theirs")
    auth = {"Authorization": f"Bearer {token}"}
    assert token.startswith("mlbj_")

    assert anon.get(f"/api/v1/runs/{run_id}", headers=auth).json()["run"]["id"] == run_id
    batch = {"params": {"lr": "0.1"}, "tags": {"node": "n1"}, "metrics": [["loss", 0, 1.0, 0.5]]}
    assert anon.post(f"/api/v1/runs/{run_id}/log-batch", json=batch, headers=auth).status_code == 200
    r = anon.put(f"/api/v1/jobs/{job_id}/artifacts/out/a.txt", content=b"hello", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "out/a.txt"
    error(anon.put(f"/api/v1/jobs/{job_id}/artifacts/%00", content=b"x", headers=auth), 400, "path")
    assert services.tracking.get_run(run_id).params == {"lr": "0.1"}
    assert b"".join(services.tracking.read_artifact(run_id, "out/a.txt")) == b"hello"

    data = b"checkpoint bytes"
    name = f"step-{3:012d}.{hashlib.sha256(data).hexdigest()}--state.bin"
    wrong = f"step-{4:012d}.{hashlib.sha256(b'else').hexdigest()}--state.bin"
    error(anon.put(f"/api/v1/jobs/{job_id}/checkpoints/{wrong}", content=data, headers=auth), 400, "name")
    error(anon.put(f"/api/v1/jobs/{job_id}/checkpoints/step-1.pt", content=data, headers=auth), 400, "name")
    r = anon.put(f"/api/v1/jobs/{job_id}/checkpoints/{name}", content=data, headers=auth)
    assert r.status_code == 200, r.text
    assert anon.get(f"/api/v1/jobs/{job_id}/checkpoints", headers=auth).json() == [name]
    assert anon.get(f"/api/v1/jobs/{job_id}/checkpoints/{name}", headers=auth).content == data
    stored = services.scheduler.checkpoint_dir(job_id) / name
    assert stored.read_bytes() == data  # where a local attempt of the job looks too

    # not another run's or job's, and no route but its own
    error(anon.post(f"/api/v1/runs/{other_run}/log-batch", json=batch, headers=auth), 403, "run_id")
    error(anon.get(f"/api/v1/jobs/{other_job}/checkpoints", headers=auth), 403, "job_id")
    error(anon.put(f"/api/v1/jobs/{other_job}/artifacts/a.txt", content=b"x", headers=auth), 403, "job_id")
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
        ("GET", "/api/v1/runs"),
        ("POST", f"/api/v1/runs/{run_id}/end"),
        ("GET", f"/api/v1/runs/{run_id}/artifacts"),
        ("GET", "/api/v1/models"),
    ]:
        error(anon.request(method, path, headers=auth), 403, "authorization")

    # stored as its sha256 only
    digests = [r[0] for r in services.scheduler.db.query("SELECT digest FROM job_tokens")]
    assert job_tokens.digest(token) in digests and token not in digests

    # the attempt ends: the token is deleted, and would grant nothing anyway
    sched = services.scheduler
    row = sched.db.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
    sched.reconciler._finish(row, None, None, time.time(), {}, exit_code=0)
    assert sched.get(job_id).state == "succeeded"
    error(anon.get(f"/api/v1/runs/{run_id}", headers=auth), 401, "authorization")
    error(anon.put(f"/api/v1/jobs/{job_id}/checkpoints/{name}", content=data, headers=auth), 401)
    assert sched.db.query("SELECT 1 FROM job_tokens WHERE job_id = ?", (job_id,)) == []
    # the admin token still reads what the job left
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert anon.get(f"/api/v1/jobs/{job_id}/checkpoints", headers=admin).json() == [name]


def test_a_token_of_an_earlier_attempt_grants_nothing(services: Services) -> None:
    """A retry is a new attempt: a token left from the one before (were it not deleted) is dead."""
    job_id, _, token = _running(services, "retried")
    sched = services.scheduler
    assert sched.job_grant(token) == job_tokens.Grant(job_id, sched.get(job_id).run_id)
    with sched.db.atomic() as conn:  # as if revocation had been missed, and the job went round again
        conn.execute("UPDATE jobs SET attempt = attempt + 1 WHERE id = ?", (job_id,))
    assert sched.job_grant(token) is None
    assert sched.job_grant("mlbj_" + "x" * 43) is None and sched.job_grant(ADMIN) is None
