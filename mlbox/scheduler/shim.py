"""The supervisor of one job attempt: starts the job's command and records how it ended.

Run by path as ``python -S shim.py ATTEMPT_DIR -- ARGV...`` (standard library
only, no site packages: it starts in milliseconds). It leads the attempt's own
session and process group, so the appliance can die and come back without
the job noticing, and a signal to the group reaches the whole tree.

Why it exists: a re-adopted job is no longer the appliance's child, so its
exit status cannot be collected with ``wait``. The shim waits for it instead
and writes ``exit.json`` into the attempt folder atomically (temp file, fsync,
rename). It outlives a SIGTERM to the group (its own handler does nothing; the
job's default disposition is restored at exec), records the status, then
kills whatever the job left behind in its group, itself included.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import sys
import time

EXIT_FILE = "exit.json"
WHY = {
    errno.ENOENT: "no such file (not found on the job's PATH)",
    errno.EACCES: "permission denied (is it executable?)",
    errno.ENOEXEC: "not an executable (a script without #! line?)",
}
"""A start failure in the words the job's message repeats (``mlbox jobs ls``)."""


def _ignore(signum: int, frame: object) -> None:
    """Stay alive to record the status; the job itself receives the signal from the group."""


def write_exit(folder: str, code: int) -> None:
    path = os.path.join(folder, EXIT_FILE)
    # ``.tmp-<pid>-<hex>``: the appliance removes it if this shim dies midway (mlbox.store.tempfiles)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(8)}")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:  # private
        json.dump({"exit_code": code, "finished_at": time.time()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: shim.py ATTEMPT_DIR -- ARGV...", file=sys.stderr)
        return 2
    folder, command = argv[0], argv[2:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    try:
        pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        why = WHY.get(exc.errno or 0, exc.strerror or str(exc))
        print(f"mlbox: cannot start {command[0]!r}: {why}", file=sys.stderr, flush=True)
        code = 127
    else:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    write_exit(folder, code)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.getpgid(0) == os.getpid():  # only when leading the attempt's own group
        os.killpg(0, signal.SIGKILL)  # leftovers of the job (and this shim): the attempt is over
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
