"""Helpers shared by the test modules: running the CLI in process, reading HTTP errors, and
running a real ``mlbox up`` subprocess (its environment, its announcement, its stop).

Plain functions, imported as ``from tests.helpers import ...``; fixtures live in
``conftest.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlbox.cli import main

MLBOX = Path(sys.executable).parent / "mlbox"
"""The installed ``mlbox`` script, for tests that run the CLI as a subprocess."""


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``mlbox ARGV`` in process: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str, quiet: bool = False) -> str:
    """The stdout of ``mlbox ARGV``, which must succeed; with ``quiet``, saying nothing on stderr
    (no prompt, warning or hint) as well."""
    code, out, err = run_main(capsys, *argv)
    assert code == 0, err
    assert not (quiet and err), err
    return out


def error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The JSON error body of an HTTP response with ``status``, naming ``field`` when one is given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in response.text
    if field is not None:
        assert body.get("field") == field, body
    return body


# -- a real `mlbox up` subprocess ------------------------------------------------------------


def mlbox_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a child ``mlbox`` on ``home``: no ``MLBOX_*`` variable of the caller's
    (a developer's own settings, or a run id, would change what the child does), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOX_")}
    env["MLBOX_HOME"] = str(home)
    env.update(extra)
    return env


def stop(proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> int:
    """Stop ``proc`` the way a user would (SIGTERM), killing it if it is still there after
    ``timeout_s``, so no test leaves an appliance behind. Its exit status (``-9`` if killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _said(proc: subprocess.Popen[Any], log: Path | None) -> str:
    """What an ended ``proc`` wrote: its ``log`` file, or its piped output."""
    if log is not None:
        return log.read_text(errors="replace")
    if proc.stdout is None and proc.stderr is None:
        return ""
    out, err = proc.communicate()
    return "".join(x.decode(errors="replace") if isinstance(x, bytes) else x for x in (out, err) if x)


def wait_announced(
    home: Path, proc: subprocess.Popen[Any], *, deadline_s: float = 90.0, log: Path | None = None
) -> str:
    """The URL of ``mlbox up`` running as ``proc``, once ``$MLBOX_HOME/appliance.json`` names it.

    The announcement is written when the appliance serves, so a test may call it at once. Fails
    the test with what the process wrote (``log``, or its pipes) when it exits first; past the
    deadline it is killed first, so it leaves nothing behind.
    """
    announcement = home / "appliance.json"
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            data = json.loads(announcement.read_text())
            if data["pid"] == proc.pid:
                return str(data["url"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"mlbox up exited with {proc.returncode}: {_said(proc, log)}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"mlbox up did not announce itself within {deadline_s:g} s: {_said(proc, log)}")
        time.sleep(0.05)
