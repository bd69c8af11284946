"""Overload benchmark: open-loop arrivals against a real ``mlbox up`` at multiples of its capacity.

Arrivals come at a fixed rate whatever the server does (open loop), from a
pool of keep-alive connections (`OpenLoop`, on uvloop), unlike the
closed-loop clients of ``serving.py`` that slow down with the server. Per
phase: the share of 200, 503, errors (resets, other statuses), timeouts (sent,
no answer in 10 s) and unsent (no free connection within 10 s), p99 of the
200s and of the 503s from when each request was due, the p99 of
``/v2/health/ready`` probed beside the load, the server's RSS growth, the
CPU seconds of the server and of the generator, and the generator's own lag
(how late it woke to send: when that is large, the figures are the
generator's, not the server's).

Models: ``costly`` (python flavor, a fixed 3 ms per row, so 10x its rate is
within what one generator core sends) at 1x, 2x, 5x, 10x its measured
sustainable rate; ``fast`` (the 20-feature GradientBoosting of ``serving.py``)
at 2x. Then slow clients: hundreds of connections sending a request header a
byte a second, each in its own phase within the second (``--slow-in-step``: all
at once), and a normal client's p99 with and without them, alternated twice
in halves of the phase and pooled (one of each in turn moved by +/-30 % with
the machine's load: 6.0 -> 8.0 ms one run, within 20 % the run before).

Run: ``.venv/bin/python scripts/bench/overload.py [--duration 20]`` (the issue's
20 s per phase: about 4 min end to end on 2 cores; ``--only costly``
runs one part). The generator keeps at most `MAX_CONNECTIONS` (256)
connections: with 1,000 the fast model's phase got worse here (503 p99 5.3 s,
70 connections lost, the server only 45 % busy), left for a later look.

Read the fast phase with care: its "sustainable" rate is 8 closed-loop
clients' and moved between 2,900 and 5,300 req/s from run to run at load
3-5, and once the server answers less than is offered, requests wait for a
free connection on the generator's side (counted in their times, as they
should be), where the server's lag probe cannot see them.

Why the fast phase misses "admitted p99 within 2x unloaded" (16-20 ms against a 3 ms unloaded
p99, 25-35 % admitted): a refusal is cheap next to an answer but not free (loopback read and
write, uvicorn's parser callbacks: ~55 us of the one core the GIL gives the server), so at 10,000
arrivals/s refusing alone keeps that core ~55 % busy, and each answer admitted adds to it. With
the doorstep's share held fixed (an experiment, 2026-12-06, one run each): 1 % admitted, p99
3.7 ms; 5 %, 4.4 ms (server 0.62 CPU s/s); 10 %, 7.6 ms (0.75); 20 %, 13.1 ms. Meeting the
target here means answering about 500 of the model's 5,000 req/s while overloaded; the
admission keeps the goodput instead (its share settles where the loop starts running late).
A benchmark, not a test: a missed target prints FAIL; the exit code stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from serving import TRAIN, free_port, oip_body, wait_healthy  # noqa: E402

COST_S = 0.003
TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256
T = TypeVar("T")
TICK_S = 0.001
"""The generator wakes at most this often and sends every request due by then: a wake-up per
request (one every 0.2 ms at 5,000/s) cost it as much CPU as the requests themselves."""
REGISTER = (
    TRAIN
    + r"""
import sys, pathlib
from _costly import PerRowCost
from mlbox.services import Services
from mlbox.settings import Settings
s = Services.open(Settings(home=pathlib.Path(sys.argv[1])))
s.registry.register('fast', model=model, example_input=X[:5])
s.registry.set_alias('fast', 'champion', 1)
s.registry.register('costly', model=PerRowCost(float(sys.argv[2])), flavor='python', example_input=X[:2])
s.registry.set_alias('costly', 'champion', 1)
"""
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Result:
    sent: int = 0
    ok_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    health_ms: list[float] = field(default_factory=list)
    first_error: str = ""
    unsent: int = 0
    """Due but never sent within the timeout: every connection of the pool awaited an answer."""
    lag_ms: list[float] = field(default_factory=list)
    """How late the generator woke to send each request (its own delay, not the server's: the
    answer times count from the due time, so a request waiting for a free connection counts)."""
    generator_cpu_s: float = 0.0
    timeline: list[tuple[float, float, int, bool]] = field(default_factory=list)
    """With ``--timeline``: per answer, when it was due, its ms, its status, and whether it was the
    first request on its connection."""

    def share(self, n: int) -> float:
        return 100.0 * n / self.sent if self.sent else 0.0

    def line(self) -> str:
        return (
            f"sent {self.sent:6d}  200 {self.share(len(self.ok_ms)):5.1f}%  503 {self.share(len(self.shed_ms)):5.1f}%"
            f"  err {self.errors}  timeout {self.timeouts}  unsent {self.unsent}"
            f"  p99 200 {pct(self.ok_ms, 0.99):7.1f} ms"
            f"  p99 503 {pct(self.shed_ms, 0.99):6.1f} ms  health p99 {pct(self.health_ms, 0.99):6.1f} ms"
            f"  generator lag p99 {pct(self.lag_ms, 0.99):.1f} ms"
        )


async def _read(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


KEEP_IDLE_S = 4.0
"""A pooled connection idle this long is closed, not reused: uvicorn closes idle keep-alive
connections after 5 s, and a request written into one it is closing reads 0 bytes back. Real
client pools do the same (drop or re-check stale connections), so this measures the server."""


class Conn(asyncio.Protocol):
    """One keep-alive connection of the generator: writes a pre-encoded request, parses answers
    as bytes arrive (status and Content-Length only) and hands itself back to the generator."""

    def __init__(self, gen: OpenLoop) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.sent_at = 0.0
        self.busy = False
        self.idle_since = 0.0
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            at = head.find(b"content-length:")
            length = (
                int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else end])
                if at > 0
                else 0
            )
            total = end + 4 + length
            if len(buf) < total:
                break
            status = int(buf[9:12])
            buf = buf[total:]
            self.gen.answered(self, status)
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self, exc)


class OpenLoop:
    """Requests at fixed times over a pool of `Conn`s opened on demand up to ``cap``.

    Cheap per request (one write, one parse, no task or future: 0.03 ms of CPU a request against
    0.12 ms for the task-per-request client it replaces), so that the generator is not the
    limit. Answer times count from when a request was due, so one that waited for a free
    connection counts that wait (open loop, no coordinated omission); one that never found a
    connection within the timeout is counted apart (``unsent``) from what the server never
    answered (``timeouts``). ``lag_ms`` is how late the generator itself woke to send
    (large values mean the figures measure the generator, not the server)."""

    def __init__(
        self, port: int, request: bytes, cap: int, result: Result, *, timeline: bool = False
    ) -> None:
        self.port, self.request, self.cap, self.result = port, request, cap, result
        self.timeline = timeline
        self.loop = asyncio.get_running_loop()
        self.idle: list[Conn] = []
        self.conns: set[Conn] = set()
        self.opening = 0
        self.backlog: deque[float] = deque()

    async def warm(self) -> None:
        """Open the whole pool before the clock starts: a client whose connections were open
        before the surge (``--warm-pool``)."""
        for _ in range(self.cap):
            _, conn = await self.loop.create_connection(lambda: Conn(self), "127.0.0.1", self.port)
            conn.idle_since = time.perf_counter()
            self.conns.add(conn)
            self.idle.append(conn)

    def send(self, conn: Conn, due: float) -> None:
        conn.sent_at, conn.busy = due, True
        conn.requests += 1
        assert conn.transport is not None
        conn.transport.write(self.request)

    def dispatch(self, due: float, now: float) -> None:
        self.result.lag_ms.append((now - due) * 1000)
        while self.idle:
            conn = self.idle.pop()
            if (
                now - conn.idle_since < KEEP_IDLE_S
                and conn.transport is not None
                and not conn.transport.is_closing()
            ):
                self.send(conn, due)
                return
            self.conns.discard(conn)
            if conn.transport is not None:
                conn.transport.close()
        self.backlog.append(due)
        if len(self.conns) + self.opening < self.cap:
            self.opening += 1
            self.loop.create_task(self._open())

    async def _open(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: Conn(self), "127.0.0.1", self.port)
        except OSError as exc:
            self.result.errors += 1
            self.result.first_error = self.result.first_error or repr(exc)
            return
        finally:
            self.opening -= 1
        self.conns.add(conn)
        self._next(conn)

    def _next(self, conn: Conn) -> None:
        if self.backlog:
            self.send(conn, self.backlog.popleft())
        else:
            conn.busy, conn.idle_since = False, time.perf_counter()
            self.idle.append(conn)

    def answered(self, conn: Conn, status: int) -> None:
        if not conn.busy:
            return
        ms = (time.perf_counter() - conn.sent_at) * 1000
        if self.timeline:
            self.result.timeline.append((conn.sent_at, ms, status, conn.requests == 1))
        if status == 200:
            self.result.ok_ms.append(ms)
        elif status == 503:
            self.result.shed_ms.append(ms)
        else:
            self.result.errors += 1
            self.result.first_error = self.result.first_error or f"status {status}"
        self._next(conn)

    def lost(self, conn: Conn, exc: Exception | None) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.busy:  # closed under a request it had sent
            conn.busy = False
            self.result.errors += 1
            self.result.first_error = self.result.first_error or f"connection lost: {exc!r}"

    def expire(self) -> None:
        """Count what waited too long since it was due: sent and unanswered (timeouts, the
        connection is closed) and never sent (every connection awaited an answer: the backlog)."""
        now = time.perf_counter()
        for conn in list(self.conns):
            if conn.busy and now - conn.sent_at > TIMEOUT_S:
                conn.busy = False
                self.result.timeouts += 1
                self.conns.discard(conn)
                if conn.transport is not None:
                    conn.transport.close()
        while self.backlog and now - self.backlog[0] > TIMEOUT_S:
            self.backlog.popleft()
            self.result.unsent += 1

    def busy(self) -> bool:
        return bool(self.backlog) or any(c.busy for c in self.conns)

    def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()


async def _health(port: int, until: float, result: Result) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        writer.write(request)
        await _read(reader)
        result.health_ms.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.05)
    writer.close()


def _request(port: int, model: str) -> bytes:
    body = oip_body(1)
    return (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_loop(
    port: int,
    model: str,
    rate: float,
    seconds: float,
    *,
    connections: int = MAX_CONNECTIONS,
    warm: bool = False,
    timeline: bool = False,
) -> Result:
    """``rate`` requests/s at fixed intervals for ``seconds``, whatever the answers."""
    result = Result()
    gen = OpenLoop(port, _request(port, model), connections, result, timeline=timeline)
    if warm:
        await gen.warm()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    health = asyncio.create_task(_health(port, t0 + seconds, result))
    interval = 1.0 / rate
    n = 0
    next_expiry = t0 + 0.25
    while (due := t0 + n * interval) < t0 + seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(max(delay, TICK_S))
        now = time.perf_counter()
        while n * interval <= now - t0 and n * interval < seconds:  # catch up, open loop
            gen.dispatch(t0 + n * interval, now)
            n += 1
        if now >= next_expiry:
            gen.expire()
            next_expiry = now + 0.25
    result.sent = n
    end = time.perf_counter() + TIMEOUT_S + 0.5
    while gen.busy() and time.perf_counter() < end:
        await asyncio.sleep(0.05)
        gen.expire()
    await health
    gen.close()
    result.generator_cpu_s = time.process_time() - cpu0
    return result


async def closed_loop(port: int, model: str, seconds: float, clients: int = 8) -> float:
    """200s/s of ``clients`` closed-loop connections: the sustainable rate."""
    request, done = _request(port, model), 0
    until = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < until:
            writer.write(request)
            if await _read(reader) == 200:  # a 503 is not capacity
                done += 1
        writer.close()

    await asyncio.gather(*[client() for _ in range(clients)])
    return done / seconds


async def with_slow_clients(
    port: int, model: str, rate: float, seconds: float, n: int, *, in_step: bool = False
) -> Result:
    """``open_loop`` beside ``n`` connections that each send a request header a byte a second.

    Each connection keeps its own phase within the second, as independent slow clients would;
    ``in_step`` makes all ``n`` write at the same instant instead, a burst of ``n`` reads once a
    second that a normal request meeting it waits behind (about 1 % of them at 300 connections)."""
    header = f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(n)]
    ticks = 1 if in_step else 100

    async def dribble() -> None:
        for i in range(int(seconds) + 2):
            byte = header[i % len(header) : i % len(header) + 1]
            for tick in range(ticks):
                for w in writers[tick::ticks]:
                    w.write(byte)
                await asyncio.sleep(1.0 / ticks)

    drip = asyncio.create_task(dribble())
    result = await open_loop(port, model, rate, seconds)
    drip.cancel()
    for w in writers:
        w.close()
    return result


def print_timeline(result: Result) -> None:
    """Quarter-second buckets of due times (the first second by 50 ms): how an overload's onset
    and steady state differ, and how many slow answers were a new connection's first request."""
    if not result.timeline:
        return
    t0 = min(due for due, *_ in result.timeline)
    edges = [i * 0.05 for i in range(20)] + [
        1 + i * 0.25 for i in range(int(max(0, max(due for due, *_ in result.timeline) - t0 - 1) * 4) + 2)
    ]
    for start, end in itertools.pairwise(edges):
        rows = [(ms, status) for due, ms, status, _ in result.timeline if start <= due - t0 < end]
        if rows:
            ok = [ms for ms, status in rows if status == 200]
            print(f"      {start:6.2f} s  answers {len(rows):5d}  200 {100 * len(ok) / len(rows):5.1f}%"
                  f"  p99 {pct([ms for ms, _ in rows], 0.99):7.1f} ms  p99 200 {pct(ok, 0.99):7.1f} ms")  # fmt: skip
    slow = [first for _, ms, _, first in result.timeline if ms > 300]
    firsts = sum(first for *_, first in result.timeline)
    print(f"      answers over 300 ms: {len(slow)}, of which a new connection's first request: {sum(slow)}"
          f" (first requests in all: {firsts})")  # fmt: skip


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop (as ``mlbox up`` serves): the generator's loop costs less."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (the issue: 20)")
    parser.add_argument("--slow-clients", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=["costly", "fast", "slow"], help="run one part only")
    parser.add_argument(
        "--rate",
        type=float,
        help="take this as the sustainable rate instead of measuring it (A/B at one load)",
    )
    parser.add_argument("--connections", type=int, default=MAX_CONNECTIONS, help="the generator's pool")
    parser.add_argument("--warm-pool", action="store_true", help="open the pool before each phase's clock")
    parser.add_argument("--timeline", action="store_true", help="print each phase by quarter seconds")
    parser.add_argument(
        "--slow-in-step", action="store_true", help="slow clients all write at the same instant"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlbox-bench-overload-"))
    home = work / "home"
    env = {
        **os.environ,
        "MLBOX_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run([sys.executable, "-c", REGISTER, str(home), str(COST_S)], check=True, env=env)
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlbox"), "up", "--port", str(port)], env=env,
                            stderr=(work / "up.log").open("wb"))  # fmt: skip
    figures: dict[str, dict[str, float]] = {}
    checks: list[tuple[str, bool, str]] = []
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v2/health/ready", proc, 60)
        d = args.duration
        for model, multiples in (("costly", (1, 2, 5, 10)), ("fast", (2,))):
            if args.only not in (None, model):
                continue
            run(closed_loop(port, model, 1.0))  # warm
            # 1,000 answers at d=20 (50/s): from the 100 of 5 s at 20/s, the p99 was their worst,
            # and one pause of the machine set it (17 ms once against 3 ms the runs around it)
            unloaded = run(open_loop(port, model, 50, d))
            base_p99 = pct(unloaded.ok_ms, 0.99)
            rate = args.rate or run(closed_loop(port, model, max(2.0, d / 2)))
            print(
                f"[overload] {model}: sustainable {rate:,.0f} req/s, unloaded p99 {base_p99:.1f} ms",
                flush=True,
            )
            for m in multiples:
                before, server_cpu = rss_mb(proc.pid), cpu_s(proc.pid)
                r = run(open_loop(port, model, rate * m, d, connections=args.connections, warm=args.warm_pool,
                                  timeline=args.timeline))  # fmt: skip
                growth, server_cpu = rss_mb(proc.pid) - before, cpu_s(proc.pid) - server_cpu
                print(f"  {model} {m:2d}x {rate * m:8,.0f}/s  {r.line()}  rss +{growth:.0f} MB", flush=True)
                print(f"      CPU: server {server_cpu:.1f} s, generator {r.generator_cpu_s:.1f} s"
                      f" of {d:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
                print_timeline(r)
                if r.first_error:
                    print(f"      first error: {r.first_error}", flush=True)
                name = f"{model} {m}x"
                figures[name] = {"rate": rate * m, "sent": r.sent, "ok_pct": r.share(len(r.ok_ms)),
                                 "shed_pct": r.share(len(r.shed_ms)), "errors": r.errors, "timeouts": r.timeouts,
                                 "p99_200_ms": pct(r.ok_ms, 0.99), "p99_503_ms": pct(r.shed_ms, 0.99),
                                 "health_p99_ms": pct(r.health_ms, 0.99), "rss_growth_mb": growth,
                                 "unloaded_p99_ms": base_p99, "unsent": r.unsent,
                                 "send_lag_p99_ms": pct(r.lag_ms, 0.99), "server_cpu_s": server_cpu,
                                 "generator_cpu_s": r.generator_cpu_s}  # fmt: skip
                checks += [
                    (f"{name}: no errors, no timeouts", r.errors == 0 and r.timeouts == 0, f"{r.errors}/{r.timeouts}"),
                    (f"{name}: (generator) sent all on time", r.unsent == 0 and pct(r.lag_ms, 0.99) < 10,
                     f"unsent {r.unsent}, generator lag p99 {pct(r.lag_ms, 0.99):.1f} ms"),
                    (f"{name}: admitted p99 <= 2x unloaded", pct(r.ok_ms, 0.99) <= 2 * base_p99,
                     f"{pct(r.ok_ms, 0.99):.1f} vs {base_p99:.1f} ms"),
                    (f"{name}: 503 p99 < 20 ms", not r.shed_ms or pct(r.shed_ms, 0.99) < 20,
                     f"{pct(r.shed_ms, 0.99):.1f} ms"),
                    (f"{name}: health p99 < 100 ms", pct(r.health_ms, 0.99) < 100, f"{pct(r.health_ms, 0.99):.1f} ms"),
                    (f"{name}: RSS growth < 200 MB", growth < 200, f"{growth:.0f} MB"),
                ]  # fmt: skip
        if args.only not in (None, "slow"):
            return 0
        run(closed_loop(port, "costly", 1.0))  # warm, when the phases above did not run
        # alone, beside, alone, beside, halves of the phase each: the machine's drift over the
        # minute falls on both sides, and each p99 pools two runs
        plain, slowed = Result(), Result()
        for _ in range(2):
            alone = run(open_loop(port, "costly", 50, d / 2))
            beside = run(
                with_slow_clients(port, "costly", 50, d / 2, args.slow_clients, in_step=args.slow_in_step)
            )
            plain.ok_ms += alone.ok_ms
            slowed.ok_ms += beside.ok_ms
            slowed.errors += beside.errors + alone.errors
            slowed.timeouts += beside.timeouts + alone.timeouts
        a, b = pct(plain.ok_ms, 0.99), pct(slowed.ok_ms, 0.99)
        print(f"  slow clients: p99 {a:.1f} ms alone, {b:.1f} ms beside {args.slow_clients} slow connections"
              f" (errors {slowed.errors}, timeouts {slowed.timeouts})")  # fmt: skip
        figures["slow clients"] = {"p99_alone_ms": a, "p99_beside_ms": b, "errors": slowed.errors}
        checks.append(
            (
                "slow clients: normal p99 within +20%",
                b <= 1.2 * a and not slowed.errors,
                f"{a:.1f} -> {b:.1f} ms",
            )
        )
    except RuntimeError:
        print((work / "up.log").read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    finally:
        proc.terminate()
        proc.wait(30)
    print("\n[overload] targets (issue 12)")
    for label, ok, value in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {label}: {value}")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
