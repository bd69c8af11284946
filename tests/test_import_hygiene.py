"""`import mlbox` stays light, and the layer contracts hold (harlequin's test_import_hygiene idea)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "shap", "numba", "duckdb", "polars", "textual", "litestar", "pandas", "uvicorn")

PROBE = f"""
import json, sys, time
started = time.perf_counter()
import mlbox
elapsed = time.perf_counter() - started
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"elapsed": elapsed, "heavy": heavy, "version": mlbox.__version__}}))
"""


def test_import_mlbox_is_light_and_fast(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(proc.stdout)
    assert result["heavy"] == []
    assert result["elapsed"] < 1.0, f"import mlbox took {result['elapsed']:.2f} s"
    assert result["version"]


def test_lint_imports_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and "0 broken" in proc.stdout


CLI_PROBE = """
import json, sys
import mlbox.cli.root
loaded = set(sys.modules) | {m.split('.')[0] for m in sys.modules}
print(json.dumps(sorted(loaded & set(sys.argv[1:]))))
"""


def test_the_cli_starts_without_numpy_or_any_service_library(tmp_path: Path) -> None:
    """`mlbox --help` (and any command's parsing) imports the command modules only: services, numpy
    and the libraries under them load when a command runs (cold start: `mlbox --help` < 0.3 s)."""
    heavy = [*HEAVY, "numpy", "pyarrow", "scipy", "optuna", "httpx", "mlbox.services"]
    proc = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, *heavy],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == []


TUI_PROBE = """
import json, sys
import mlbox.tui.app
from mlbox.tui.navigation import SECTIONS
SECTIONS[0].screen_class()  # the first screen, which the TUI's start shows
loaded = set(sys.modules) | {m.split('.')[0] for m in sys.modules}
print(json.dumps(sorted(loaded & set(sys.argv[1:]))))
"""


def test_the_tui_starts_without_ml_libraries_or_the_other_screens(tmp_path: Path) -> None:
    """The TUI's first screen imports no ML library, no service module and no other screen (cold
    start, issue 16: usable in under 2 s): those load when a screen or command needs them, the
    other screens in the background once the first is painted."""
    heavy = [*HEAVY, "numpy", "scipy", "pyarrow", "optuna", "httpx", "plotext", "mlbox.services"]
    heavy = [h for h in heavy if h != "textual"]
    screens = ["mlbox.tui.screens.models", "mlbox.tui.screens.serving", "mlbox.tui.screens.run_detail"]
    proc = subprocess.run(
        [sys.executable, "-c", TUI_PROBE, *heavy, *screens],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == []
