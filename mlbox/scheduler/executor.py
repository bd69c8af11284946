"""The local executor: starts job attempts as processes under the shim, and reaps them.

This is the seam where another executor (Ray, Slurm) would go; the service
only asks it to spawn an attempt and whether its own children ended. Each
attempt leads its own session and process group, so it survives the
appliance, and its stdout and stderr are appended to the job's log file.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlbox.scheduler import launch, processes
from mlbox.scheduler.environment import env_prefix
from mlbox.scheduler.schemas import JobSpec
from mlbox.scheduler.shim import write_exit
from mlbox.store import private

SHIM = str(Path(__file__).with_name("shim.py"))


class LocalExecutor:
    def __init__(self, python: str) -> None:
        self.python = python
        self.children: dict[tuple[int, int], subprocess.Popen[bytes]] = {}

    def reap(self) -> None:
        """Collect ended children (so none lingers as a zombie)."""
        for proc in self.children.values():
            proc.poll()

    def returncode(self, key: tuple[int, int]) -> tuple[bool, int | None]:
        """(is it our child, its return code or None while it runs)."""
        proc = self.children.get(key)
        return (False, None) if proc is None else (True, proc.returncode)

    def forget(self, key: tuple[int, int]) -> None:
        self.children.pop(key, None)

    def spawn(
        self,
        key: tuple[int, int],
        spec: JobSpec,
        *,
        gpus: Sequence[int],
        env: Mapping[str, str],
        folder: Path,
        log_path: Path,
        workdir: Path,
        now: float,
        python: str | None = None,
        shown: str | None = None,
    ) -> tuple[int, float | None] | None:
        """Start the attempt; its (pid, start time), or None when it could not start
        (then ``exit.json`` says 127 and the next pass records a failed attempt).

        ``python`` runs a script or function job (default: the appliance's); the shim itself
        always runs on the appliance's interpreter (standard library only). ``shown`` is the
        interpreter the log's header names."""
        job_id, attempt = key
        private.make_dirs(folder)  # 0700, and the log 0600: the home's files are the owner's alone
        job_python = python or self.python
        argv = [self.python, "-S", SHIM, str(folder), "--", *launch.job_argv(spec, job_python, len(gpus))]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        ran_with = f"python {shown or '-'}" + (f" in {env_prefix(env)}" if env_prefix(env) else "")
        header = (
            f"--- mlbox: job {job_id} attempt {attempt} on GPUs {list(gpus)} at {stamp}; {ran_with} ---\n"
        )
        with os.fdopen(private.create(log_path, exclusive=False, append=True), "ab") as out:
            out.write(header.encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                out.write(f"mlbox: cannot start the job: {exc}\n".encode())
                write_exit(str(folder), 127)
                return None
        self.children[key] = proc
        return proc.pid, processes.create_time(proc.pid)

    def kill_all(self) -> None:
        for proc in self.children.values():
            processes.kill_group(proc.pid, None)
        self.children.clear()
