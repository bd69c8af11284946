"""Messages a stranger following the README tripped over: "1 GPUs", an alias refusal that does
not say how to delete an alias, a monitor without a reference that does not say how to set one,
and a run id that is not a number answered with a bare 404 (no field)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sklearn.linear_model import LinearRegression

from mlbox.api.app import create_app
from mlbox.scheduler.schemas import Gpu, JobSpec, Resources
from mlbox.scheduler.validation import check_spec, why_impossible
from mlbox.scheduler.wording import counted
from mlbox.services import Services
from mlbox.store.errors import InvalidInput
from tests.helpers import error, ok, run_main

TOKEN = "test-token-messages"
ONE = [Gpu(index=0, name="sim", memory_mb=1000, simulated=True)]


def test_the_scheduler_counts_in_the_singular_for_one() -> None:
    assert (counted(1, "GPU"), counted(2, "GPU"), counted(0.5, "core"), counted(1.0, "core")) == (
        "1 GPU", "2 GPUs", "0.5 cores", "1 core",
    )  # fmt: skip
    with pytest.raises(InvalidInput) as caught:
        check_spec(JobSpec(name="j", command=["true"], resources=Resources(gpus=1)), gpus_available=0)
    assert "the job asks for 1 GPU and this machine has none" in caught.value.message
    assert why_impossible(1, 0, 1.0, [], 4.0) == "cannot fit: it asks for 1 GPU and this scheduler has 0"
    assert why_impossible(1, 2000, 1.0, ONE, 4.0) == (
        "cannot fit: it asks for 1 GPU with 2000 MiB each; the only GPU has 1000 MiB"
    )
    assert why_impossible(0, 0, 1.0, ONE, 0.5) == "cannot fit: it asks for 1 core and this scheduler has 0.5"


@pytest.fixture
def model(services: Services) -> Services:
    x = np.random.default_rng(0).normal(size=(30, 2))
    services.registry.register("m", model=LinearRegression().fit(x, x[:, 0]), example_input=x[:3])
    services.registry.set_alias("m", "champion", 1)
    return services


def test_an_alias_refusal_gives_the_command_that_deletes_it(
    capsys: pytest.CaptureFixture[str], home: Path, model: Services
) -> None:
    code, _, err = run_main(capsys, "models", "delete", "m", "--yes")
    assert code == 2 and "delete them first: mlbox models alias m champion --delete" in err, err
    ok(capsys, "models", "alias", "m", "champion", "--delete")  # the command it names works
    ok(capsys, "models", "delete", "m", "--yes")


def test_a_monitor_without_a_reference_says_how_to_set_one(
    capsys: pytest.CaptureFixture[str], home: Path, model: Services
) -> None:
    code, _, err = run_main(capsys, "monitor", "add", "m@champion")
    assert code == 2 and err.count("\n") == 1, err
    assert "has no reference: set one with 'mlbox monitor reference m@champion TRAIN.parquet'" in err
    assert "--from-log" in err
    code, _, err = run_main(capsys, "monitor", "run", "m@champion")
    assert code == 2 and "'mlbox monitor reference m@champion TRAIN.parquet'" in err, err


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url="http://127.0.0.1:5151") as client:
        client.headers.update({"Authorization": f"Bearer {TOKEN}"})
        yield client


BAD_IDS = [
    ("post", "/api/v1/runs/abc/restore", "run_id"),
    ("get", "/api/v1/runs/abc", "run_id"),
    ("get", "/api/v1/runs/1.5/metrics", "run_id"),
    ("post", "/api/v1/jobs/x/cancel", "job_id"),
]


def test_an_id_that_is_not_a_number_is_a_400_naming_it(client: TestClient[Litestar]) -> None:
    for method, path, field in BAD_IDS:
        body = error(getattr(client, method)(path), 400, field)
        assert body["error"] == f"{field} must be a whole number; got {path.split('/')[4]!r}"
    body = error(client.get("/api/v1/nothing/here"), 404)  # no route at all: still a 404
    assert "field" not in body
    error(client.post("/api/v1/runs/123456/restore"), 404, "run_id")  # a number: looked up
