"""Notebooks run headless as jobs: parameters in, executed notebook and offline HTML out as artifacts.

Both notebooks (one that succeeds with a parameter, one whose cell raises)
are submitted together and run by the real scheduler, each in its own job
process with an nbclient kernel.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from mlbox.notebooks.headless import ARTIFACT_DIR
from mlbox.scheduler.schemas import Job
from mlbox.services import Services
from mlbox.store.errors import InvalidInput

DEADLINE_S = 240.0
REMOTE = re.compile(r"""<(?:script|link)\b[^>]*(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def write_notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    nb.metadata["kernelspec"] = {"name": "some-other-kernel", "display_name": "x", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def scheduler_loop(services: Services) -> Iterator[None]:
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            services.scheduler.reconcile_once()
            stop.wait(0.2)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stop.set()
    t.join(timeout=30)
    services.scheduler.close(kill=True)


def read_artifact(services: Services, job: Job, name: str) -> bytes:
    assert job.run_id is not None
    return b"".join(services.tracking.read_artifact(job.run_id, f"{ARTIFACT_DIR}/{name}"))


def test_run_with_parameters_and_a_failing_notebook(
    services: Services, scheduler_loop: None, tmp_path: Path
) -> None:
    good = write_notebook(
        tmp_path / "report.ipynb",
        nbformat.v4.new_code_cell("alpha = 1\nlabel = 'default'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os\nfrom pathlib import Path\n"
            "print(f'alpha={alpha} label={label} squared={alpha ** 2}')\n"
            "print('data:', Path('data.txt').read_text())\n"
            "import mlbox\nmlbox.start_run().info.id == int(os.environ['MLBOX_RUN_ID'])"
        ),
        nbformat.v4.new_markdown_cell("Done: $x^2$"),
    )
    (tmp_path / "data.txt").write_text("next to the notebook")
    bad = write_notebook(
        tmp_path / "broken.ipynb",
        nbformat.v4.new_code_cell("print('before the error')"),
        nbformat.v4.new_code_cell("raise ValueError('no such column: price')"),
        nbformat.v4.new_code_cell("print('never printed')"),
    )
    ok_job = services.notebooks.run(good, {"alpha": 7, "label": "from the CLI"})
    bad_job = services.notebooks.run(bad)
    # The job runs the notebook as it was submitted, whatever happens to the file afterwards.
    good.write_text("{}")

    ok_job = services.scheduler.wait(ok_job.id, timeout_s=DEADLINE_S)
    bad_job = services.scheduler.wait(bad_job.id, timeout_s=DEADLINE_S)
    assert ok_job.state == "succeeded", services.scheduler.read_log(ok_job.id)[0].decode()[-3000:]
    assert bad_job.state == "failed" and bad_job.exit_code == 1

    executed = nbformat.reads(read_artifact(services, ok_job, "report.ipynb").decode(), as_version=4)
    injected = executed.cells[1]
    assert "injected-parameters" in injected.metadata["tags"] and "alpha = 7" in injected.source
    text = "".join(o.get("text", "") for o in executed.cells[2].outputs)
    assert "alpha=7 label=from the CLI squared=49" in text
    assert "data: next to the notebook" in text
    assert executed.cells[2].outputs[-1]["data"]["text/plain"] == "True"  # the kernel logs into the job's run
    html = read_artifact(services, ok_job, "report.html").decode()
    assert "alpha=7 label=from the CLI squared=49" in html
    assert not REMOTE.search(html) and "cdnjs" not in html
    assert ok_job.run_id is not None
    run = services.tracking.get_run(ok_job.run_id)
    assert run.params == {"alpha": "7", "label": "from the CLI"}
    assert run.tags["notebook"] == str(good.resolve())

    failed = nbformat.reads(read_artifact(services, bad_job, "broken.ipynb").decode(), as_version=4)
    assert failed.cells[0].outputs[0]["text"] == "before the error\n"
    assert failed.cells[1].outputs[0]["ename"] == "ValueError"
    assert failed.cells[2].outputs == []
    assert "no such column: price" in read_artifact(services, bad_job, "broken.html").decode()
    assert (
        "notebook failed: ValueError: no such column: price"
        in services.scheduler.read_log(bad_job.id)[0].decode()
    )


def test_run_refuses_what_it_cannot_run(services: Services, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "broken.ipynb").write_text("{not json")
    nb = write_notebook(tmp_path / "ok.ipynb", nbformat.v4.new_code_cell("1"))
    for path, params, field in (
        (tmp_path / "missing.ipynb", {}, "path"),
        (tmp_path / "notes.txt", {}, "path"),
        (tmp_path / "broken.ipynb", {}, "path"),
        (nb, {"not a name": 1}, "params"),
        (nb, {"x": {1, 2}}, "params"),
    ):
        with pytest.raises(InvalidInput) as err:
            services.notebooks.run(path, params)
        assert err.value.field == field, (path, params)
    with pytest.raises(InvalidInput) as gpus:
        services.notebooks.run(nb, gpus=-1)
    assert gpus.value.field == "gpus"
    assert services.scheduler.list_jobs() == []
