"""Ending a notebook server's processes from a front end, when no appliance is there to do it.

A server is a scheduler job: its shim leads a process group holding JupyterLab,
and JupyterLab starts each kernel in a session of its own (so the kernel can be
interrupted as a group), outside the job's group. Cancelling the job only writes
a row that an appliance's scheduler pass acts on; with no appliance running,
nothing would act, and the server would keep listening. `halt_group` does what
that pass would: TERM to the group (JupyterLab shuts its kernels down), KILL
after the grace period, then KILL whatever of the server's process tree outlived
it (kernels of a server that was killed before it could end them). The job's row
is left to the scheduler, whose next pass records it as cancelled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

SETTLE_S = 5.0
"""How long processes get to disappear after SIGKILL before they count as not stopped."""


def _identified(pid: int, marker: str) -> psutil.Process | None:
    """The group's leader when it is still the job's shim (its argv names the attempt folder)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and marker in proc.cmdline():
            return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return None


def members(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.Error:
            continue
    return left


def _wait(pgid: int, tree: list[psutil.Process], until: float) -> bool:
    """Wait until group ``pgid`` has no live member (and, when given, the ``tree`` none); True then."""
    while True:
        if not members(pgid) and not _alive(tree):
            return True
        if time.monotonic() >= until:
            return False
        time.sleep(0.1)


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def halt_group(pgid: int, marker: str, grace_s: float) -> list[int]:
    """Stop the job whose shim leads group ``pgid`` (``marker``: its attempt folder) and the
    whole process tree under it; the pids still alive afterwards (empty: all stopped).

    A leader whose pid now belongs to another process means the job's group is gone (Linux
    never reuses a pid still in use as a group id): nothing is signalled then.
    """
    leader = _identified(pgid, marker)
    tree: list[psutil.Process] = []
    if leader is not None:
        try:
            tree = leader.children(recursive=True)
        except psutil.Error:
            tree = []
    elif psutil.pid_exists(pgid) or not members(pgid):
        # the pid is another process's now (and may lead a group of its own), or nothing is left
        return []
    _signal(pgid, signal.SIGTERM)
    if not _wait(pgid, [], time.monotonic() + grace_s):
        _signal(pgid, signal.SIGKILL)
    _wait(pgid, [], time.monotonic() + SETTLE_S)
    outliving = _alive(tree)  # kernels, in sessions of their own
    for proc in outliving:
        try:
            proc.kill()
        except psutil.Error:
            continue
    _wait(pgid, outliving, time.monotonic() + SETTLE_S)
    return sorted({p.pid for p in members(pgid)} | {p.pid for p in _alive(outliving)})
