"""kill -9 a logging process: every point it flushed is there, and the run ends up crashed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlbox.appliance import Appliance
from mlbox.services import Services

LOGGER = textwrap.dedent(
    """
    import sys
    import mlbox

    run = mlbox.start_run("doomed", log_code=False, log_environment=False)
    print("run", run.id, flush=True)
    step = 0
    while True:
        for _ in range(2_000):
            mlbox.log_metric("loss", step * 0.25, step=step)
            mlbox.log_metric("acc", -step, step=step)
            step += 1
        mlbox.flush()
        print("flushed", step, flush=True)  # every point below `step` is durable now
    """
)


def test_kill_9_keeps_flushed_points_and_the_run_is_crashed(
    services: Services, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "logger.py"
    script.write_text(LOGGER)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    flushed = 0
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[:1] == ["run"], (first, proc.stderr.read() if proc.stderr else "")
        run_id = int(first[1])
        deadline = time.monotonic() + 60
        while flushed < 20_000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the logger stopped early"
            flushed = int(line.split()[1])
        assert flushed >= 20_000
        # It keeps logging after this line: the kill lands mid-batch.
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL

    tracking = services.tracking
    assert tracking.get_run(run_id).status == "running"  # nobody has looked yet
    for key, value in (("loss", lambda s: s * 0.25), ("acc", lambda s: float(-s))):
        series = tracking.metric_series(run_id, key)
        n = len(series)
        assert n >= flushed
        # No gap, no duplicate, no torn point: exactly steps 0..n-1 with their values.
        assert list(series.steps) == list(range(n))
        assert list(series.values) == [value(s) for s in range(n)]
    latest = {m.key: m for m in tracking.metric_keys(run_id)}
    assert latest["loss"].count == len(tracking.metric_series(run_id, "loss"))

    changed = Appliance(services).reconcile_once()
    assert changed["crashed"] == [run_id]
    run = tracking.get_run(run_id)
    assert run.status == "crashed"
    assert run.end_time is not None and run.end_time <= time.time()
    assert Appliance(services).reconcile_once()["crashed"] == []
