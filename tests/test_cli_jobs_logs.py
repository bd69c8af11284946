"""``mlbox jobs logs`` on a terminal shows a job's output, never obeys it; ``--raw`` and a pipe keep the bytes.

The command runs as a real process whose stdout is a pseudo-terminal (so
``isatty`` is true as it is for a person reading it) over a real home whose
job log holds a clipboard write, a screen clear and a title change.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import termios
from pathlib import Path

from mlbox.scheduler.schemas import JobSpec
from mlbox.services import Services

LOG = "epoch 1\tok\n\x1b]52;c;aGk=\x07\x1b[2J\x1b]0;pwned\x07épo\x9bch 2\n".encode()


def _job_with_log(services: Services) -> int:
    job = services.scheduler.submit(JobSpec(name="hostile", command=[sys.executable, "-c", "pass"]))
    log = services.scheduler.log_path(job.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(LOG)
    return job.id


def _on_a_terminal(env: dict[str, str], *argv: str) -> bytes:
    """What ``mlbox ARGV`` writes to a pseudo-terminal (output post-processing off: bytes as written)."""
    leader, follower = pty.openpty()
    attrs = termios.tcgetattr(follower)
    attrs[1] &= ~termios.OPOST  # no \n → \r\n, so the bytes read are the bytes written
    termios.tcsetattr(follower, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlbox", *argv], stdout=follower, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the writer closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def test_a_terminal_sees_escapes_not_escape_sequences(
    services: Services, subprocess_env: dict[str, str]
) -> None:
    job_id = _job_with_log(services)
    out = _on_a_terminal(subprocess_env, "jobs", "logs", str(job_id))
    assert b"\x1b" not in out and b"\x07" not in out and "\x9b".encode() not in out
    assert out.decode() == "epoch 1\tok\n\\x1b]52;c;aGk=\\x07\\x1b[2J\\x1b]0;pwned\\x07épo\\x9bch 2\n"


def test_raw_and_a_pipe_keep_the_bytes(
    services: Services, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    job_id = _job_with_log(services)
    assert _on_a_terminal(subprocess_env, "jobs", "logs", "--raw", str(job_id)) == LOG
    piped = subprocess.run(
        [sys.executable, "-m", "mlbox", "jobs", "logs", str(job_id)],
        capture_output=True,
        env=subprocess_env,
        timeout=60,
        check=True,
    )
    assert piped.stdout == LOG
