"""Cold start: ``mlbox --help`` and the TUI until usable, beside ``mlflow --help`` and ``mlflow ui``.

    .venv/bin/python scripts/bench/startup.py [--repeat 5] [--no-mlflow] [--importtime]

Targets (issue 16): ``mlbox --help`` under 0.3 s; the TUI usable (its first screen painted, its
runs read, keys answered) under 2 s. The embedded appliance starts after that first paint, in the
background: the time until its HTTP API serves is printed beside. Each figure is the median of ``--repeat`` fresh processes,
measured twice: with ``PYTHONDONTWRITEBYTECODE=1`` (as this environment sets it, and where no
``.pyc`` was written before every import compiles its source) and with bytecode caches written
and reused (what an installed package does). ``--importtime`` lists the imports that cost most
on the way to ``mlbox --help`` and to the TUI (``python -X importtime``), so lazy imports can
be placed where they pay.

MLflow runs from its own venv (`_peers`, installed on first use: needs the network or a local
index), or from the interpreter ``MLBOX_BENCH_MLFLOW_PYTHON`` names where it is preinstalled;
without it, mlbox's figures are printed alone with the reason.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import _peers

PY = Path(sys.executable)
MLBOX = PY.parent / "mlbox"
HELP_TARGET_S = 0.3
TUI_TARGET_S = 2.0

TUI_PROBE = r"""
import asyncio
from mlbox.cli.context import Context
from mlbox.appliance import Appliance
from mlbox.tui.app import make_app

ctx = Context()
app = make_app(ctx.services, appliance=Appliance(ctx.services), beside_url=None)

async def probe():
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        while not app._dom_ready or screen.reading or app.screen is not screen:
            await pilot.pause(0.01)
        await pilot.press("question_mark")  # a key answers: the help overlay
        while app.screen is screen:
            await pilot.pause(0.01)
        print("usable", flush=True)
        while app.status_info.appliance != "embedded":
            if app.status_info.appliance == "failed":
                raise SystemExit("appliance failed: " + str(app.status_info.note))
            await pilot.pause(0.01)
        print("serving", flush=True)
        app.exit()

asyncio.run(probe())
"""
"""The TUI as ``mlbox`` starts it (embedded appliance), headless at 160x48: 'usable' once the
first screen is painted with its runs read and a key (?) has answered, 'serving' once the
embedded appliance's HTTP API serves."""


def env_for(home: Path, bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBOX_")}
    env["MLBOX_HOME"] = str(home)
    env["MLBOX_PORT"] = "0"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        # no .pyc read or written: DONTWRITEBYTECODE alone still reads the caches already on disk
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(home.parent / "no-pycache")
    return env


CPU: list[float] = []
"""CPU seconds (user + system) of each measured child, beside its wall time: on a machine shared
with other work the wall time is mostly waiting for a core, the CPU time much less so."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str]) -> float:
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - t0
    CPU.append(_children_cpu() - c0)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")
    return took


LATER: dict[str, list[float]] = {}
"""Seconds until each line `until_line` was told to note besides the one it times."""


def until_line(cmd: list[str], env: dict[str, str], line: str, *, note: tuple[str, ...] = ()) -> float:
    """Seconds from spawning ``cmd`` until it prints ``line``; the lines in ``note`` (printed
    later) are timed too, into `LATER`."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    took = None
    for out in proc.stdout:
        if out.strip() == line:
            took = time.perf_counter() - t0
        elif out.strip() in note:
            LATER.setdefault(out.strip(), []).append(time.perf_counter() - t0)
    proc.wait(timeout=60)
    if took is None or proc.returncode != 0:
        raise RuntimeError(f"never printed {line!r}: {proc.stderr.read()[-800:] if proc.stderr else ''}")
    CPU.append(_children_cpu() - c0)  # its whole life, the appliance's start and its exit included
    return took


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until_http(cmd: list[str], env: dict[str, str], url: str, deadline_s: float = 300) -> float:
    """Seconds from spawning a server until ``url`` answers 200; the server is stopped after."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - t0 < deadline_s:
            if proc.poll() is not None:
                said = proc.stderr.read()[-800:] if proc.stderr else b""
                raise RuntimeError(f"exited {proc.returncode}: {said!r}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{url} did not answer within {deadline_s} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        CPU.append(_children_cpu() - c0)  # its whole (short) life, workers it waited for included


def median(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    """Median wall seconds of ``repeat`` runs after a warm-up, and the median CPU seconds."""
    fn()  # warm the page cache (and, with bytecode, write the .pyc files)
    CPU.clear()
    runs = [fn() for _ in range(repeat)]
    return statistics.median(runs), statistics.median(CPU) if CPU else float("nan")


class Rows(list[tuple[str, str, float, float, str]]):
    """The figures, each printed as soon as it is measured (a run cut short keeps what it had)."""

    def append(self, row: tuple[str, str, float, float, str]) -> None:
        super().append(row)
        name, label, wall, cpu, ok = row
        print(f"  {name:<32} {label:<7} {wall:6.3f} s  [{cpu:6.3f}]  {ok}", flush=True)


def verdict(value: float, target: float) -> str:
    return "ok" if value < target else "FAIL"


def importtime(code: str, env: dict[str, str], top: int = 15) -> list[tuple[float, str]]:
    """The costliest imports (cumulative seconds): every third-party top-level package (wherever
    it is first imported) and mlbox's own modules, so the one to make lazy stands out."""
    proc = subprocess.run([str(PY), "-X", "importtime", "-c", code], env=env, capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if (
            m
            and ("." not in m.group(3) or m.group(3).startswith("mlbox."))
            and not m.group(3).startswith("_")
        ):
            rows.append((int(m.group(2)) / 1e6, m.group(3)))
    return sorted(rows, reverse=True)[:top]


def bench_mlflow(tmp: str, home: Path, repeat: int, rows: list[tuple[str, str, float, float, str]]) -> None:
    peer = _peers.ensure_peer("mlflow", "mlflow", "mlflow")
    mlflow = peer.script("mlflow")  # the venv's console script, or MLBOX_BENCH_MLFLOW_PYTHON running it
    for bytecode in (False, True):
        env = peer.environ(env_for(home, bytecode))
        label = "pyc" if bytecode else "no-pyc"
        wall, cpu = median(functools.partial(timed, [*mlflow, "--help"], env), repeat)
        rows.append((f"mlflow {peer.version} --help", label, wall, cpu, ""))

        def ui(env: dict[str, str] = env) -> float:
            port = free_port()
            cmd = [*mlflow, "ui", "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--backend-store-uri", f"sqlite:///{tmp}/mlflow-{port}.db"]
            return until_http(cmd, env, f"http://127.0.0.1:{port}/health")

        wall, cpu = median(ui, max(1, repeat // 3))  # a server start is slow: fewer of them
        rows.append((f"mlflow {peer.version} ui serving", label, wall, cpu, ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    rows = Rows()
    notes = []
    print(
        f"cold start, median of {args.repeat} processes: wall seconds [CPU seconds, user+system];"
        f" targets (wall): --help < {HELP_TARGET_S} s, TUI < {TUI_TARGET_S} s; load average"
        f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mlbox-startup-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run([str(MLBOX), "runs", "ls"], env=env_for(home, True), capture_output=True, check=True)
        for bytecode in (False, True):
            env = env_for(home, bytecode)
            label = "pyc" if bytecode else "no-pyc"
            wall, cpu = median(functools.partial(timed, [str(MLBOX), "--help"], env), args.repeat)
            rows.append(("mlbox --help", label, wall, cpu, verdict(wall, HELP_TARGET_S)))
            probe = [str(PY), "-c", TUI_PROBE]
            LATER.clear()
            wall, cpu = median(
                functools.partial(until_line, probe, env, "usable", note=("serving",)), args.repeat
            )
            rows.append(("mlbox TUI usable", label, wall, cpu, verdict(wall, TUI_TARGET_S)))
            serving = statistics.median(LATER.get("serving", [float("nan")])[1:] or [float("nan")])
            rows.append(("  its appliance serving HTTP", label, serving, cpu, ""))
        if not args.no_mlflow:
            try:
                bench_mlflow(tmp, home, args.repeat, rows)
            except (_peers.PeerUnavailable, RuntimeError) as exc:
                notes.append(f"MLflow not measured: {exc}")
        for note in notes:
            print(f"  note: {note}")
        if args.importtime:
            env = env_for(home, True)
            for what, code in (
                ("mlbox --help", "import mlbox.cli.root"),
                ("the TUI", "import mlbox.cli.root, mlbox.appliance, mlbox.tui.app"),
            ):
                print(f"\nimports on the way to {what} (cumulative seconds, with .pyc):")
                for secs, mod in importtime(code, env):
                    print(f"  {secs:7.3f} s  {mod}")


if __name__ == "__main__":
    main()
