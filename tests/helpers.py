"""Helpers shared by the test modules: running the CLI in process and reading HTTP errors.

Plain functions, imported as ``from tests.helpers import ...``; fixtures live in
``conftest.py``.
"""

from __future__ import annotations

import sys
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
