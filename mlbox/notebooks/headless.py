"""A notebook executed headless inside a job: parameters in, executed notebook and HTML out.

``python -m mlbox.notebooks.headless NB.ipynb --params JSON`` is the command
of the job that `NotebookService.run` submits. It injects the parameters
(`mlbox.notebooks.params`), runs every cell with nbclient on a kernel of this
very interpreter, and stores the executed notebook and an offline HTML export
as artifacts of the job's run (``MLBOX_RUN_ID``), under ``notebook/``. A cell
that raises still leaves both files, with the traceback in the failing cell's
output, and the process exits 1 so the job is marked failed.

Unlike a notebook server's kernels, this kernel keeps ``MLBOX_RUN_ID``: the
notebook *is* the job, so what it logs belongs to the job's run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.notebooks.export import to_html
from mlbox.notebooks.jupyter import KERNEL_NAME, write_kernelspec
from mlbox.notebooks.params import inject_parameters

if TYPE_CHECKING:
    from mlbox.tracking.service import TrackingService

ARTIFACT_DIR = "notebook"
KERNEL_STARTUP_S = 180
"""A kernel starting on a machine busy with training jobs can take far longer than nbclient's 60 s."""


@dataclass(frozen=True)
class Outcome:
    notebook: Any
    html: str
    error: str | None
    """The failing cell's error (name and value) when a cell raised; None when every cell ran."""


def execute(
    nb: Any, params: dict[str, Any], *, cwd: Path, mlbox_home: Path, timeout_s: int | None = None
) -> Outcome:
    """Run the notebook (mutated in place) on this interpreter's kernel; never raises for a cell error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    inject_parameters(nb, params)
    with tempfile.TemporaryDirectory(prefix="mlbox-kernel-") as jupyter_path:
        write_kernelspec(Path(jupyter_path), mlbox_home)
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (jupyter_path, previous) if p)
        client = NotebookClient(
            nb,
            kernel_name=KERNEL_NAME,
            timeout=timeout_s,
            startup_timeout=KERNEL_STARTUP_S,
            resources={"metadata": {"path": str(cwd)}},
        )
        error = None
        try:
            client.execute()
        except CellExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}"
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous
    return Outcome(nb, to_html(nb), error)


def save(outcome: Outcome, stem: str, run_id: int | None, out_dir: Path | None) -> list[str]:
    """Store the executed notebook and its HTML: as artifacts of ``run_id``, and/or into ``out_dir``."""
    import nbformat

    files = {
        f"{stem}.ipynb": nbformat.writes(outcome.notebook).encode(),
        f"{stem}.html": outcome.html.encode(),
    }
    stored: list[str] = []
    if run_id is not None:
        tracking = _tracking()
        for name, data in files.items():
            stored.append(tracking.log_artifact_bytes(run_id, f"{ARTIFACT_DIR}/{name}", data).path)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = out_dir / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, out_dir / name)
            stored.append(str(out_dir / name))
    return stored


def _tracking() -> TrackingService:
    from mlbox.settings import Settings
    from mlbox.store import ArtifactStore, Database, Home
    from mlbox.tracking.service import TrackingService

    home = Home(Settings.from_env().home)
    return TrackingService(Database(home.db_path), ArtifactStore(home.artifacts))


def _started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(prog="python -m mlbox.notebooks.headless")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--params", default="{}", help="a JSON object of parameter values")
    parser.add_argument("--source", default=None, help="the notebook's original path (recorded as a tag)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results into this folder")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    run_env = os.environ.get("MLBOX_RUN_ID")
    run_id = int(run_env) if run_env else None
    home = Path(os.environ.get("MLBOX_HOME") or Path.home() / ".mlbox")
    if run_id is not None:
        tracking = _tracking()
        if params:
            tracking.log_params(run_id, params)
        tracking.set_tags(run_id, {"notebook": args.source or str(args.notebook)})
    nb = nbformat.read(str(args.notebook), as_version=4)
    owner = None if run_id is None else _tracking().get_run(run_id)
    outcome = execute(nb, params, cwd=Path.cwd(), mlbox_home=home)
    if run_id is not None and owner is not None:
        # A notebook that called mlbox.start_run() attached the kernel to the job's run and
        # ended it when the kernel shut down; hand the run back to the job's process, so its
        # final status is the job's (failed when a cell raised).
        tracking = _tracking()
        if tracking.get_run(run_id).status != "running":
            tracking.attach_run(run_id, host=owner.host, pid=owner.pid, pid_started=_started(owner.pid))
    stem = Path(args.source or args.notebook).stem
    for path in save(outcome, stem, run_id, args.out):
        print(f"saved {path}")
    if outcome.error is not None:
        print(f"notebook failed: {outcome.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
