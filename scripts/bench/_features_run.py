"""Processes for ``features.py``: a child watched for memory, Feast's environment,
mlbox's store, ``mlbox up`` on loopback, and the online lookups timed in each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _peers
from _features_data import FEATURES, TTL_S, VIEW, Dataset, window

HERE = Path(__file__).resolve().parent

# -- running a child and watching its memory -----------------------------------------


def run_child(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None, max_rss_gb: float = 12.0
) -> dict[str, Any]:
    """Run ``cmd``, poll its RSS (psutil) until it exits, parse its last stdout line as JSON.

    Returns ``{"error": ...}`` on failure, on timeout, or when the process tree
    grows past ``max_rss_gb`` (the machine is shared): the child is killed.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0]
    over = [False]

    def watch() -> None:
        try:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                rss = sum(c.memory_info().rss for c in [p, *p.children(recursive=True)])
                peak[0] = max(peak[0], rss)
                if rss > max_rss_gb * 2**30:
                    over[0] = True
                    proc.kill()
                time.sleep(0.05)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"did not finish in {timeout:.0f} s (killed)", "wall_s": time.perf_counter() - t0}
    watcher.join(1)
    wall = time.perf_counter() - t0
    if over[0]:
        return {"error": f"killed: its memory passed {max_rss_gb:g} GB", "wall_s": wall}
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-6:])
        return {"error": f"exit {proc.returncode}: {tail}", "wall_s": wall}
    try:
        answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no JSON answer: {out[-300:]!r} {err[-300:]!r}", "wall_s": wall}
    answer["process_wall_s"] = wall
    answer["polled_peak_rss_mb"] = peak[0] / 2**20
    return answer


def feast_env() -> dict[str, str]:
    """The environment of Feast's process: telemetry off, no proxies to reach anything through."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(FEAST_USAGE="False", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
    return env


# -- mlbox's side (its own process too, so its memory is measured alike) ------------------


def mlbox_definitions(source: Path) -> list[Any]:
    from datetime import timedelta

    from mlbox.features.definitions import Entity, FeatureView, Field, ParquetSource

    customer = Entity("customer", ["customer_id"])
    view = FeatureView(
        VIEW,
        [customer],
        ParquetSource(source),
        "event_timestamp",
        [Field(f, "float64") for f in FEATURES],
        created_timestamp_field="created",
        ttl=timedelta(seconds=TTL_S),
    )
    return [customer, view]


def open_store(home: Path) -> Any:
    from mlbox.services import Services
    from mlbox.settings import Settings

    return Services.open(Settings(home=home)).features


# -- online ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def mlbox_online(ds: Dataset, work: Path, keys: list[int], lookups: int, batches: int) -> dict[str, Any]:
    """Materialize into a fresh home, then time lookups in-process and through ``mlbox up``."""
    from datetime import datetime

    home = work / "mlbox-online-home"
    store = open_store(home)
    store.apply(mlbox_definitions(ds.source))
    start, end = window()
    t0 = time.perf_counter()
    store.materialize(datetime.fromisoformat(start), datetime.fromisoformat(end), [VIEW])
    materialize_s = time.perf_counter() - t0
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    now = datetime.fromisoformat(end).timestamp()  # TTL judged at the window's end, as Feast's is
    for k in keys[:200]:
        store.get_online_features([{"customer_id": k}], refs, now=now)
    one: list[float] = []
    sample: dict[str, Any] = {}
    for i in range(lookups):
        k = keys[i % len(keys)]
        t = time.perf_counter()
        answer = store.get_online_features([{"customer_id": k}], refs, now=now)
        one.append((time.perf_counter() - t) * 1000)
        if i < 50:
            sample[str(k)] = [answer[f][0] for f in FEATURES]
    batch = [{"customer_id": k} for k in keys[:1000]]
    many: list[float] = []
    for _ in range(batches):
        t = time.perf_counter()
        store.get_online_features(batch, refs, now=now)
        many.append((time.perf_counter() - t) * 1000)
    result: dict[str, Any] = {
        "materialize_s": materialize_s,
        "one_p50_ms": pct(one, 0.5),
        "one_p99_ms": pct(one, 0.99),
        "many_p50_ms": pct(many, 0.5),
        "sample": sample,
    }
    result["http"] = mlbox_http(home, keys, refs, lookups, batches)
    return result


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlbox_http(home: Path, keys: list[int], refs: list[str], lookups: int, batches: int) -> dict[str, Any]:
    """A real ``mlbox up`` on 127.0.0.1, sequential requests.

    Timed twice: on one keep-alive connection (what a service calling in a loop
    sees), and with a new connection per request (``fresh_*``), which shows the
    server's own latency when the keep-alive figure is dominated by the TCP
    stack (Nagle's algorithm against delayed ACKs costs ~40 ms per response on
    a socket without TCP_NODELAY).
    """
    import http.client

    port = free_port()
    env = {**os.environ, "MLBOX_HOME": str(home)}
    mlbox_bin = Path(sys.executable).parent / "mlbox"
    proc = subprocess.Popen(
        [str(mlbox_bin), "up", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        token = wait_up(home, port, proc)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def post(body: dict[str, Any], fresh: bool = False) -> float:
            data = json.dumps(body).encode()
            t = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30) if fresh else kept
            conn.request("POST", "/api/v1/features/online", body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if fresh:
                conn.close()
            elapsed = (time.perf_counter() - t) * 1000
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
            return elapsed

        def one(i: int) -> dict[str, Any]:
            return {"features": refs, "entities": {"customer_id": [keys[i % len(keys)]]}}

        many_body = {"features": refs, "entities": {"customer_id": keys[:1000]}}
        for i in range(200):
            post(one(i))
        kept_one = [post(one(i)) for i in range(lookups)]
        kept_many = [post(many_body) for _ in range(batches)]
        kept.close()
        fresh_one = [post(one(i), fresh=True) for i in range(lookups)]
        fresh_many = [post(many_body, fresh=True) for _ in range(batches)]
        return {
            "one_p50_ms": pct(kept_one, 0.5),
            "one_p99_ms": pct(kept_one, 0.99),
            "many_p50_ms": pct(kept_many, 0.5),
            "fresh_one_p50_ms": pct(fresh_one, 0.5),
            "fresh_one_p99_ms": pct(fresh_one, 0.99),
            "fresh_many_p50_ms": pct(fresh_many, 0.5),
        }
    except (RuntimeError, OSError) as exc:
        return {"error": str(exc)}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_up(home: Path, port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-400:] if proc.stderr else ""
            raise RuntimeError(f"mlbox up exited with {proc.returncode}: {err}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                from mlbox.store import Home

                return Home(home).token()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"mlbox up not healthy after {timeout:.0f} s")


def feast_online(
    peer: _peers.Peer, ds: Dataset, work: Path, keys: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    start, end = window()
    return run_child(
        [
            str(peer.python),
            str(HERE / "_features_feast.py"),
            "online",
            str(work / "feast-repo-online"),
            str(ds.source),
            "--ttl",
            str(TTL_S),
            "--start",
            start,
            "--end",
            end,
            "--keys",
            ",".join(map(str, keys)),
            "--lookups",
            str(args.lookups),
            "--batches",
            str(args.batches),
        ],
        args.feast_timeout,
        env=feast_env(),
    )
