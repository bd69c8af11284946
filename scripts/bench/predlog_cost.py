"""What the prediction log costs the scoring path: server CPU per request with the log on and off.

Issue 13's target: the typed log layout costs no more than 10 % of single-row serving
throughput. Throughput on this shared 2-core machine moves with whatever else runs, so the
figure here is CPU, which does not: the server's CPU per request with the log on and with it
off (rounds alternate, same load, same model), and the CPU of the log's own writer thread
(``mlbox-predlog``, read per thread from ``/proc``). On a CPU-bound server, throughput is the
inverse of CPU per request, so the relative CPU difference is the throughput cost.

Run: ``.venv/bin/python scripts/bench/predlog_cost.py [--requests 20000] [--rounds 2] [--rows 1,100]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from serving import Phase, drive, oip_body, start_mlbox  # noqa: E402


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` by thread id (Linux: ``/proc/PID/task/*/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def measure(log: bool, rows: int, requests: int, concurrency: int) -> tuple[float, float, float]:
    """(server CPU us/request, its event loop thread's share, requests/s) with the log on or off."""
    os.environ["MLBOX_SERVING_LOG_PREDICTIONS"] = "1" if log else "0"
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-predlog-") as work:
        server = start_mlbox(Path(work))
        try:
            url = f"{server.url}/v2/models/gbc/infer"
            body = oip_body(rows)
            drive(url, body, Phase("warm", 2000, rows), concurrency, "raw", server.proc.pid)
            before = thread_cpu_s(server.proc.pid)
            phase = drive(url, body, Phase("run", requests, rows), concurrency, "raw", server.proc.pid)
            after = thread_cpu_s(server.proc.pid)
            main = after.get(server.proc.pid, 0.0) - before.get(server.proc.pid, 0.0)
        finally:
            server.stop()
    cpu = phase.server_cpu_s or 0.0
    return 1e6 * cpu / requests, 1e6 * main / requests, phase.rps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", default="1,100", help="request sizes, comma-separated (e.g. 100)")
    args = parser.parse_args()
    for rows in (int(r) for r in args.rows.split(",")):
        n = args.requests if rows == 1 else args.requests // 10
        on: list[float] = []
        off: list[float] = []
        for r in range(args.rounds):
            for log in (True, False):
                cpu, main, rps = measure(log, rows, n, args.concurrency)
                (on if log else off).append(cpu)
                load = os.getloadavg()[0]
                print(
                    f"[predlog] {rows:3d}-row round {r + 1} log {'on ' if log else 'off'}: server {cpu:6.1f} us/req"
                    f"  event loop thread {main:5.1f} us/req  {rps:7,.0f} req/s  (load {load:.1f})",
                    flush=True,
                )
        cost = (min(on) - min(off)) / min(off) * 100
        verdict = "ok  " if rows > 1 or cost <= 10 else "FAIL"
        print(
            f"  {verdict}{rows}-row: log on {min(on):.1f} us/req, off {min(off):.1f} us/req (best of rounds):"
            f" the log costs {cost:.1f} % of server CPU per request"
            + (" (target <= 10 %)" if rows == 1 else ""),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
