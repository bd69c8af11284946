"""Where a batched request's tail latency comes from: loop stalls and GC pauses inside ``mlbox up``.

The serving benchmark's 100-row p99 is several times its mean; this script finds out why. It
runs the real ``mlbox up`` (same home, model and load generator as `serving.py`) in a child
process that carries its tracers:

* **loop lag**: a beat on the event loop every 2 ms, timed (how late each ran), armed once
  the server is warm;
* **GC pauses**: ``gc.callbacks`` time every collection by generation (wall and thread CPU);
* **loop stalls** (opt-in, ``--stall-ms``): each beat re-arms ``faulthandler.dump_traceback_later``;
  when the loop misses its beat that long, faulthandler's own C thread writes every thread's
  stack, and the parent counts, per thread, the innermost frames it was in. faulthandler reads
  frames without the GIL and crashed the server now and then, and it does not say which thread
  held the GIL (one shown in a wait or a sleep did not).

Figures per run: client latency p50/p99/max, errors, server and client CPU µs per request,
the loop-lag percentiles and late beats, GC pauses per generation, the stalls' frames.
``--gc-freeze`` freezes the server's objects once warm, ``--switch-ms`` sets its
``sys.setswitchinterval``, ``--env PYTHONPATH=<another tree>`` serves another checkout (the
same sitting's before and after). What it found for issue 20: `serving.py`'s docstring.

Run: ``.venv/bin/python scripts/bench/serving_tail.py [--rows 100] [--requests 4000] [--log on|off|both]``
(``--env KEY=VALUE`` passes settings to the server, e.g. ``--env MLBOX_SERVING_LOG_PREDICTIONS=0``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from serving import TRAIN, Phase, drive, free_port, oip_body, wait_healthy  # noqa: E402

CHILD = r"""
import faulthandler, gc, json, os, signal, sys, time
out = sys.argv[1]
stall_s = float(sys.argv[2])  # 0: no stall tracer
if float(sys.argv[4]):
    sys.setswitchinterval(float(sys.argv[4]))
pauses = []
started = [0.0, 0.0]

def on_gc(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
        started[1] = time.thread_time()
    else:
        now = time.perf_counter()
        pauses.append((time.time(), info["generation"], now - started[0], time.thread_time() - started[1]))

gc.callbacks.append(on_gc)
lags = []
import uvloop
made = uvloop.new_event_loop

def traced_loop():
    loop = made()
    dumps = open(out + ".stalls", "w")

    def beat(expected):
        now = time.perf_counter()
        lags.append((time.time(), now - expected))
        if stall_s:
            faulthandler.dump_traceback_later(stall_s, file=dumps)
        loop.call_later(0.002, beat, now + 0.002)

    # armed by the parent once warm (SIGUSR1): faulthandler reads the other threads' frames
    # without the GIL, which can crash a process whose threads are busy starting up
    def arm(*_):
        if os.environ.get("MLBOX_BENCH_GC_FREEZE") == "1":
            gc.collect()
            gc.freeze()  # what start-up left: never scanned again
        loop.call_soon_threadsafe(beat, time.perf_counter())

    signal.signal(signal.SIGUSR1, arm)
    return loop

uvloop.new_event_loop = traced_loop

def report():
    if stall_s:
        faulthandler.cancel_dump_traceback_later()
    with open(out, "w") as f:
        json.dump({"pauses": pauses, "lags": lags}, f)

import atexit
atexit.register(report)
from mlbox.cli import main
main(["up", "--port", sys.argv[3]])
"""

_HEADER = re.compile(r"^Timeout \(")
_THREAD = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-f]+)")
_FRAME = re.compile(r'^\s+File "(.+)", line (\d+) in (.+)$')


def parse_stalls(text: str) -> list[dict[str, list[str]]]:
    """faulthandler's dumps, each as {thread id: frames}, innermost first, as ``file:line function``
    with the path shortened after site-packages, mlbox or the standard library."""
    dumps: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] | None = None
    thread: str | None = None
    for line in text.splitlines():
        if _HEADER.match(line):
            current = {}
            dumps.append(current)
            continue
        if current is None:
            continue
        m = _THREAD.match(line)
        if m:
            thread = m.group(1)
            current[thread] = []
            continue
        f = _FRAME.match(line)
        if f and thread is not None:
            path = f.group(1)
            for cut in ("site-packages/", "/mlbox/", "/lib/python3.11/"):
                if cut in path:
                    path = path.split(cut, 1)[1]
                    break
            current[thread].append(f"{path}:{f.group(2)} {f.group(3)}")
    return dumps


def _thread_label(frames: list[str]) -> str:
    """Which of the server's threads a stack is, from its outermost frames."""
    text = " ".join(frames)
    for key, label in (
        ("predlog", "predlog writer"),
        ("batcher", "inference"),
        ("uvicorn", "event loop"),
        ("asyncio", "event loop"),
        ("appliance", "appliance loops"),
    ):
        if key in text:
            return label
    return frames[-1] if frames else "?"


def summarise(data: dict[str, Any], stalls: list[dict[str, Any]]) -> dict[str, Any]:
    lags = sorted(data["lags"])
    per_gen: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    for gen, seconds, cpu in data["pauses"]:
        per_gen[gen].append((seconds, cpu))
    where: collections.Counter[str] = collections.Counter()
    for d in stalls:  # what each thread was doing when the loop was late (faulthandler cannot say
        for frames in d.values():  # which held the GIL: a thread in a wait or sleep did not)
            if frames:
                where[f"{_thread_label(frames)}: {' <- '.join(frames[:2])}"] += 1

    def pct(q: float) -> float:
        return 1000 * lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")

    return {
        "loop_lag_ms": {"p50": round(pct(0.5), 2), "p99": round(pct(0.99), 2), "max": round(pct(1.0), 2)},
        "loop_late_beats": {f">{ms}ms": sum(lag > ms / 1000 for lag in lags) for ms in (5, 10, 20)},
        "gc": {
            gen: {
                "count": len(v),
                "total_ms": round(1000 * sum(w for w, _ in v), 1),
                "max_ms": round(1000 * max(w for w, _ in v), 2),
                "cpu_total_ms": round(1000 * sum(c for _, c in v), 1),
                "cpu_max_ms": round(1000 * max(c for _, c in v), 2),
            }
            for gen, v in sorted(per_gen.items())
        },
        "stalls": len(stalls),
        "stall_threads": dict(where.most_common(12)),
    }


def run(
    rows: int, requests: int, concurrency: int, stall_ms: float, switch_ms: float, env: dict[str, str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-tail-") as work:
        home = Path(work) / "home"
        code = TRAIN + (
            "\nfrom mlbox.services import Services\nfrom mlbox.settings import Settings\nimport sys, pathlib\n"
            "s = Services.open(Settings(home=pathlib.Path(sys.argv[1])))\n"
            "s.registry.register('gbc', model=model, example_input=X[:5])\n"
            "s.registry.set_alias('gbc', 'champion', 1)\n"
        )
        # registered by the same code as serves (a PYTHONPATH in env: another tree, whose
        # database migrations may differ)
        subprocess.run(
            [sys.executable, "-c", code, str(home)], check=True, env={**os.environ, **env}, cwd=work
        )
        port = free_port()
        out = Path(work) / "trace.json"
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(out), str(stall_ms / 1000), str(port), str(switch_ms / 1000)],
            env={**os.environ, "MLBOX_HOME": str(home), **env},
            stderr=(Path(work) / "server.log").open("wb"),
            cwd=work,  # not the checkout: a PYTHONPATH given with --env (another tree) comes first
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(f"{url}/v2/health/ready", proc, 90)
            infer = f"{url}/v2/models/gbc@champion/infer"
            body = oip_body(rows)
            drive(infer, body, Phase("warm", 1000, rows), concurrency, "raw", proc.pid)
            proc.send_signal(signal.SIGUSR1)  # the stall tracer starts
            time.sleep(0.2)
            skip = Path(str(out) + ".stalls").stat().st_size
            t0, since = time.process_time(), time.time()
            phase = drive(infer, body, Phase("run", requests, rows), concurrency, "raw", proc.pid)
            client_cpu, until = time.process_time() - t0, time.time()
            with open(str(out) + ".stalls", errors="replace") as f:
                f.seek(skip)
                stalls_text = f.read()
        except Exception:
            print((Path(work) / "server.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(30)
        data = json.loads(out.read_text())
    data["lags"] = [lag for t, lag in data["lags"] if since <= t <= until]
    data["pauses"] = [p[1:] for p in data["pauses"] if since <= p[0] <= until]
    s = phase.summary()
    figures = {
        "rows": rows,
        "env": env,
        "requests_per_s": s["requests_per_s"],
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "max_ms": round(max(phase.latencies_ms), 2),
        "errors": phase.errors,
        "server_cpu_us_per_request": s["server_cpu_us_per_request"],
        "client_cpu_us_per_request": round(1e6 * client_cpu / requests, 1),
        "load": round(os.getloadavg()[0], 1),
    }
    figures.update(summarise(data, parse_stalls(stalls_text)))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--stall-ms",
        type=float,
        default=0.0,
        help="trace loop stalls this long (0: off; faulthandler reads frames without the GIL and"
        " has crashed the server now and then)",
    )
    parser.add_argument("--switch-ms", type=float, default=0.0, help="sys.setswitchinterval in the server")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.collect() and gc.freeze() in the server once warm"
    )
    parser.add_argument("--log", choices=("on", "off", "both"), default="on")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    if args.gc_freeze:
        env["MLBOX_BENCH_GC_FREEZE"] = "1"
    logs = ("1", "0") if args.log == "both" else ("1" if args.log == "on" else "0",)
    for r in range(args.rounds):
        for log_on in logs:
            figures = run(
                args.rows,
                args.requests,
                args.concurrency,
                args.stall_ms,
                args.switch_ms,
                {**env, "MLBOX_SERVING_LOG_PREDICTIONS": log_on},
            )
            print(f"[tail] round {r + 1} log {'on' if log_on == '1' else 'off'}:", flush=True)
            for key, value in figures.items():
                print(f"  {key}: {json.dumps(value)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
