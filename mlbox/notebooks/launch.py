"""The process a notebook job runs: prepares Jupyter's environment, then becomes JupyterLab.

``python -m mlbox.notebooks.launch --root-dir DIR`` runs inside the job (its
env carries ``JUPYTER_RUNTIME_DIR``, ``JUPYTER_PATH`` and
``JUPYTER_TOKEN_FILE`` from the notebook service). It ``exec``s the server, so
the job's pid and process start time are the server's own and the scheduler
watches (and signals) the right process.

Kernels must not attach to the job's run: the scheduler gives the job
``MLBOX_RUN_ID`` so a training script's tracking calls land on its run, but a
notebook server is many sessions over hours; each ``mlbox.start_run()`` in a
notebook should make its own run (and ending one must not end the server's).
So the job-only variables are removed here and ``MLBOX_NOTEBOOK_ID`` says
where a kernel runs; ``CUDA_VISIBLE_DEVICES`` stays, so kernels see exactly
the server's GPUs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlbox.notebooks.jupyter import free_port, lab_argv, write_kernelspec

JOB_ONLY_VARS = ("MLBOX_RUN_ID", "MLBOX_JOB_ID", "MLBOX_JOB_ATTEMPT", "MLBOX_CHECKPOINT_DIR")


def kernel_environment(environ: dict[str, str]) -> dict[str, str]:
    """The server's (hence its kernels') environment: the job's, less what ties it to the job's run."""
    return {k: v for k, v in environ.items() if k not in JOB_ONLY_VARS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlbox.notebooks.launch")
    parser.add_argument("--root-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    env = kernel_environment(dict(os.environ))
    jupyter_path = env.get("JUPYTER_PATH", "").split(os.pathsep)[0]
    home = env.get("MLBOX_HOME")
    if not jupyter_path or not home:
        parser.error("JUPYTER_PATH and MLBOX_HOME must be set (the notebook service sets them)")
    write_kernelspec(Path(jupyter_path), Path(home))
    runtime = env.get("JUPYTER_RUNTIME_DIR")
    if runtime:
        # A server file left by an attempt that was killed would name a dead port.
        for stale in Path(runtime).glob("jpserver-*"):
            stale.unlink(missing_ok=True)
    argv_lab = lab_argv(args.port or free_port(), args.root_dir)
    sys.stdout.flush()
    os.execve(argv_lab[0], argv_lab, env)


if __name__ == "__main__":
    main()
