"""Feast's side of ``features.py``: run by the interpreter of ``.bench/venvs/feast``, never by mlbox's.

One invocation does one job and prints one JSON line on stdout (the last
line), so the parent can time and kill it and read its memory high-water:

* ``offline REPO SOURCE ENTITY OUT --store file|duckdb``: a temporary feature
  repo (``feature_store.yaml`` + the view), ``get_historical_features`` over
  the entity frame, the result written to OUT as Parquet;
* ``online REPO SOURCE --start ISO --end ISO``: materialize into Feast's
  SQLite online store, then time one-entity and 1,000-entity lookups.

Feast must not reach the network: usage telemetry is switched off through the
environment before feast is imported, and every socket connection that is not
to the loopback interface is refused (and counted in the JSON answer), so an
attempt shows up instead of silently leaving the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from _rss import peak_rss_mb

os.environ.update(
    {
        "FEAST_USAGE": "False",  # feast < 0.40 reported usage unless this is set
        "FEAST_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_ANALYTICS": "false",
        "DASK_DISTRIBUTED__DIAGNOSTICS__ADMIN__PYTHON_VERSIONS": "False",
    }
)

REFUSED: list[str] = []
_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
        REFUSED.append(str(address))
        raise OSError(f"benchmark: network access refused ({address})")
    return _connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign,assignment]

VIEW = "stats"
FEATURES = [f"f{i}" for i in range(5)]


def write_repo(repo: Path, store: str) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n"
        f"  type: {store}\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )


def make_store(repo: Path, source: Path, ttl_s: int, store: str) -> Any:
    from datetime import timedelta

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource
    from feast.types import Float64, Int64

    write_repo(repo, store)
    customer = Entity(name="customer", join_keys=["customer_id"])
    view = FeatureView(
        name=VIEW,
        entities=[customer],
        ttl=timedelta(seconds=ttl_s),
        schema=[Field(name="customer_id", dtype=Int64), *[Field(name=f, dtype=Float64) for f in FEATURES]],
        source=FileSource(
            path=str(source), timestamp_field="event_timestamp", created_timestamp_column="created"
        ),
        online=True,
    )
    fs = FeatureStore(repo_path=str(repo))
    fs.apply([customer, view])
    return fs


def offline(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    fs = make_store(Path(args.repo), Path(args.source), args.ttl, args.store)
    entity_df = pd.read_parquet(args.entity)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    job = fs.get_historical_features(entity_df=entity_df, features=[f"{VIEW}:{f}" for f in FEATURES])
    result = job.to_df()
    seconds = time.perf_counter() - t0
    keep = ["row_id", "customer_id", "event_timestamp", *FEATURES]
    result[keep].to_parquet(args.out, index=False)
    return {"seconds": seconds, "rows": len(result), "rss_before_mb": rss_before}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def online(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import datetime

    fs = make_store(Path(args.repo), Path(args.source), args.ttl, "file")
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    t0 = time.perf_counter()
    fs.materialize(start_date=start, end_date=end, feature_views=[VIEW])
    materialize_s = time.perf_counter() - t0
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    keys = [int(k) for k in args.keys.split(",")]
    for k in keys[:200]:  # warm-up: registry cache, SQLite pages
        fs.get_online_features(features=refs, entity_rows=[{"customer_id": k}]).to_dict()
    one: list[float] = []
    sample: dict[str, Any] = {}
    for i in range(args.lookups):
        k = keys[i % len(keys)]
        t = time.perf_counter()
        answer = fs.get_online_features(features=refs, entity_rows=[{"customer_id": k}]).to_dict()
        one.append((time.perf_counter() - t) * 1000)
        if i < 50:
            sample[str(k)] = [answer[f][0] for f in FEATURES]
    batch = [{"customer_id": k} for k in keys[:1000]]
    many: list[float] = []
    for _ in range(args.batches):
        t = time.perf_counter()
        fs.get_online_features(features=refs, entity_rows=batch).to_dict()
        many.append((time.perf_counter() - t) * 1000)
    return {
        "materialize_s": materialize_s,
        "one_p50_ms": pct(one, 0.5),
        "one_p99_ms": pct(one, 0.99),
        "many_p50_ms": pct(many, 0.5),
        "many_entities": len(batch),
        "sample": sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="job", required=True)
    off = sub.add_parser("offline")
    off.add_argument("repo")
    off.add_argument("source")
    off.add_argument("entity")
    off.add_argument("out")
    off.add_argument("--store", choices=("file", "duckdb"), required=True)
    off.add_argument("--ttl", type=int, required=True)
    on = sub.add_parser("online")
    on.add_argument("repo")
    on.add_argument("source")
    on.add_argument("--ttl", type=int, required=True)
    on.add_argument("--start", required=True)
    on.add_argument("--end", required=True)
    on.add_argument("--keys", required=True, help="comma-separated entity keys to look up")
    on.add_argument("--lookups", type=int, default=2000)
    on.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    import feast

    answer = offline(args) if args.job == "offline" else online(args)
    answer.update(version=feast.__version__, peak_rss_mb=peak_rss_mb(), refused_connections=REFUSED)
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
