"""Feature-store benchmark: mlbox's point-in-time join and online reads against Feast's.

The data is generated here from ``--seed``, the same files for both systems
(cached under ``.bench/data/features``): a feature source of ``customer_id``,
``event_timestamp``, ``created`` and five float features ``f0..f4`` (a share
of rows repeat an entity's event time with a later ``created``, so ties are
exercised), and an entity frame of ``row_id``, ``customer_id`` and
``event_timestamp`` (a share of rows sit exactly on a feature row's time, a
few name unknown customers, some fall before any row or past the TTL).

Sizes (``--size``): ``large`` is 10,000,000 source rows over 100,000
customers and 1,000,000 entity rows; ``small`` is 1,000,000 × 100,000.

Offline: each system runs in its own process (mlbox in this interpreter,
Feast 0.6x in ``.bench/venvs/feast``, made on first use by `_peers`): Feast
from a temporary feature repo with its file (dask) and DuckDB offline stores,
mlbox's ``get_historical_features``. Figures: wall time of the join (entity
frame already in memory), entity rows/s, the process's peak RSS. Results are
sorted by ``row_id`` and compared value by value: Feast's and mlbox's on the
rows Feast returned (its file store drops rows; the count is reported), and
mlbox's against a brute-force reference on ``--sample`` entity rows.

Online (on the small source): Feast materializes into SQLite and answers
``get_online_features``; mlbox materializes into its online store and
answers in-process and over HTTP (``POST /api/v1/features/online`` on a real
``mlbox up`` on 127.0.0.1). p50/p99 of one entity and the median of 1,000
entities per call.

Feast never reaches the network: telemetry is switched off in its
environment and its process refuses non-loopback sockets (`_features_feast`).

Run: ``.venv/bin/python scripts/bench/features.py --size both`` (``--skip-feast``
for mlbox alone, ``--json`` for data on stdout). A benchmark, not a test: a
missed target prints FAIL with exit code 0; a wrong result exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _peers
from _features_data import FEATURES, TTL_S, VIEW, Dataset, compare, generate, lookup_keys, reference
from _features_run import (
    HERE,
    feast_env,
    feast_online,
    mlbox_definitions,
    mlbox_online,
    open_store,
    run_child,
)

FEAST_FILE_TARGET = 10.0  # mlbox ≥ 10× Feast's file offline store
FEAST_DUCKDB_TARGET = 2.0  # ≥ 2× its DuckDB offline store
LARGE_TARGET_S = 20.0
ONE_P99_TARGET_MS = 0.2
HTTP_P99_TARGET_MS = 5.0
MANY_TARGET_MS = 10.0
# Feast 0.67 on this machine when issue 5 was written (1M source rows x 100k entity rows).
REFERENCE = {"file_s": 8.5, "file_rows": 94_009, "duckdb_s": 0.93, "one_p50_ms": 0.11, "one_p99_ms": 0.22}


def feast_offline(
    peer: _peers.Peer, ds: Dataset, store: str, work: Path, timeout: float, max_rss_gb: float = 12.0
) -> dict[str, Any]:
    out = work / f"feast-{store}-{ds.size}.parquet"
    answer = run_child(
        [
            str(peer.python),
            str(HERE / "_features_feast.py"),
            "offline",
            str(work / f"feast-repo-{store}-{ds.size}"),
            str(ds.source),
            str(ds.entity),
            str(out),
            "--store",
            store,
            "--ttl",
            str(TTL_S),
        ],
        timeout,
        env=feast_env(),
        max_rss_gb=max_rss_gb,
    )
    if "error" not in answer:
        answer["out"] = str(out)
    return answer


def mlbox_offline_child(home: Path, source: Path, entity: Path, out: Path) -> dict[str, Any]:
    """In the child: apply, then time ``get_historical_features`` over the in-memory entity frame."""
    import polars as pl
    from _rss import peak_rss_mb

    store = open_store(home)
    store.apply(mlbox_definitions(source))
    entity_df = pl.read_parquet(entity)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    job = store.get_historical_features(entity_df, [f"{VIEW}:{f}" for f in FEATURES])
    frame = job.to_polars()
    seconds = time.perf_counter() - t0
    frame.select(["row_id", "customer_id", "event_timestamp", *FEATURES]).write_parquet(out)
    return {
        "seconds": seconds,
        "rows": frame.height,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "memory_limit": store.memory_limit,
    }


def mlbox_offline(ds: Dataset, work: Path, timeout: float) -> dict[str, Any]:
    out = work / f"mlbox-{ds.size}.parquet"
    home = work / f"mlbox-home-{ds.size}"
    answer = run_child(
        [sys.executable, __file__, "--child", "offline", str(home), str(ds.source), str(ds.entity), str(out)],
        timeout,
    )
    if "error" not in answer:
        answer["out"] = str(out)
    return answer


# -- the run ---------------------------------------------------------------------------


def bench_size(size: str, args: argparse.Namespace, peer: _peers.Peer | None, work: Path) -> dict[str, Any]:
    import polars as pl

    ds = generate(size, args.seed)
    out: dict[str, Any] = {
        "source_rows": ds.source_rows,
        "entity_rows": ds.entity_rows,
        "entities": ds.entities,
    }
    print(f"[bench] {size}: {ds.source_rows:,} source rows x {ds.entity_rows:,} entity rows", flush=True)
    runs: list[tuple[str, Any]] = [("mlbox", lambda: mlbox_offline(ds, work, args.timeout))]
    if peer is not None:
        for store in ("duckdb", "file"):
            if store in args.feast_stores.split(",") and not (size == "large" and store in args.skip_large):
                runs.append(
                    (
                        f"feast-{store}",
                        lambda s=store: feast_offline(
                            peer, ds, s, work, args.feast_timeout, args.feast_max_rss_gb
                        ),
                    )
                )
    for name, start in runs:
        answer = start()
        out[name] = answer
        if "error" in answer:
            print(f"  {name:12s} unavailable: {answer['error'].splitlines()[0]}", flush=True)
            continue
        rate = ds.entity_rows / answer["seconds"]
        print(
            f"  {name:12s} {answer['seconds']:8.2f} s  {rate:12,.0f} entity rows/s  rows {answer['rows']:>10,}  "
            f"peak RSS {answer['peak_rss_mb']:7.0f} MB (process {answer['process_wall_s']:.1f} s)",
            flush=True,
        )
    ref, found = reference(ds, args.sample, args.seed)
    out["reference"] = {"sample": ref.height, "with_values": found}
    checks = []
    mine = out["mlbox"]
    if "error" not in mine:
        ours = pl.read_parquet(mine["out"])
        checks.append(compare("mlbox vs brute force", ref, ours))
        ids = ours["row_id"]
        checks.append(
            {"label": "mlbox returns every entity row once, in order", "checked": ours.height,
             "missing": ds.entity_rows - ids.n_unique(),
             "mismatched": int((ids != pl.Series(range(ours.height))).sum())}
        )  # fmt: skip
        for name in ("feast-duckdb", "feast-file"):
            theirs = out.get(name, {})
            if "out" in theirs:
                peer_frame = pl.read_parquet(theirs["out"])
                checks.append(compare(f"{name} vs brute force", ref, peer_frame))
                checks.append(
                    compare(
                        f"mlbox vs {name} (rows it returned)", peer_frame.select(["row_id", *FEATURES]), ours
                    )
                )
    out["checks"] = checks
    for c in checks:
        ok = c["missing"] == 0 and c["mismatched"] == 0
        print(f"  {'ok  ' if ok else 'DIFF'} {c['label']}: {c['checked']:,} rows compared, "
              f"{c['missing']:,} missing, {c['mismatched']:,} differ" + (f"  e.g. {c['example']}" if "example" in c else ""),
              flush=True)  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "large", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=20_000, help="entity rows checked against brute force")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed to mlbox's join process")
    parser.add_argument("--feast-timeout", type=float, default=900, help="seconds allowed to a Feast process")
    parser.add_argument("--feast-stores", default="duckdb,file")
    parser.add_argument("--skip-large", default="file",
                        help="Feast stores not run at the large size (file: it needs far more memory and time)")  # fmt: skip
    parser.add_argument("--skip-feast", action="store_true", help="mlbox alone")
    parser.add_argument("--feast-max-rss-gb", type=float, default=12.0, help="kill a Feast process past this")
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--skip-offline", action="store_true", help="online lookups only")
    parser.add_argument("--lookups", type=int, default=2000, help="one-entity lookups timed")
    parser.add_argument("--batches", type=int, default=30, help="1,000-entity lookups timed")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _, home, source, entity, out = args.child
        print(json.dumps(mlbox_offline_child(Path(home), Path(source), Path(entity), Path(out))))
        return 0

    import mlbox

    print(f"[bench] mlbox {mlbox.__version__}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    peer = None
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
        "args": vars(args),
    }
    if not args.skip_feast:
        try:
            peer = _peers.ensure_peer("feast", "feast[duckdb]", "feast")
            print(f"[bench] feast {peer.version} in {peer.python.parent.parent}", flush=True)
            results["feast_version"] = peer.version
        except _peers.PeerUnavailable as exc:
            print(f"[bench] feast unavailable: {exc}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="mlbox-bench-features-"))
    try:
        sizes = ("small", "large") if args.size == "both" else (args.size,)
        for size in () if args.skip_offline else sizes:
            results[size] = bench_size(size, args, peer, work)
        if not args.skip_online:
            try:
                results["online"] = bench_online(args, peer, work)
            except Exception as exc:  # keep the offline figures when the online part breaks
                print(f"[bench] online part failed: {type(exc).__name__}: {exc}", flush=True)
                results["online"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if args.keep:
            print(f"[bench] work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(results, args)


def bench_online(args: argparse.Namespace, peer: _peers.Peer | None, work: Path) -> dict[str, Any]:
    ds = generate("small", args.seed)
    keys = lookup_keys(ds, 1000, args.seed)
    print(f"[bench] online: {ds.source_rows:,} source rows materialized, {args.lookups:,} one-entity lookups, "
          f"{args.batches} of 1,000 entities", flush=True)  # fmt: skip
    out: dict[str, Any] = {"mlbox": mlbox_online(ds, work, keys, args.lookups, args.batches)}
    if peer is not None:
        out["feast"] = feast_online(peer, ds, work, keys, args)
    for name, r in (
        ("mlbox", out["mlbox"]),
        ("mlbox-http", out["mlbox"].get("http", {})),
        ("feast", out.get("feast")),
    ):
        if not r:
            continue
        if "error" in r:
            print(f"  {name:12s} unavailable: {r['error'].splitlines()[0]}", flush=True)
            continue
        mat = f"  materialize {r['materialize_s']:.2f} s" if "materialize_s" in r else ""
        print(f"  {name:12s} one entity p50 {r['one_p50_ms']:.3f} ms  p99 {r['one_p99_ms']:.3f} ms   "
              f"1,000 entities {r['many_p50_ms']:.2f} ms{mat}", flush=True)  # fmt: skip
        if "fresh_one_p50_ms" in r:
            print(f"  {name + '*':12s} one entity p50 {r['fresh_one_p50_ms']:.3f} ms  p99 "
                  f"{r['fresh_one_p99_ms']:.3f} ms   1,000 entities {r['fresh_many_p50_ms']:.2f} ms"
                  "   (* a new connection per request)", flush=True)  # fmt: skip
    feast = out.get("feast") or {}
    if "sample" in feast:
        mine = out["mlbox"]["sample"]
        same = sum(1 for k, v in feast["sample"].items() if mine.get(k) == v)
        nulled = sum(1 for k in feast["sample"] if mine.get(k) == [None] * len(FEATURES))
        out["sample_agreement"] = {"same": same, "of": len(feast["sample"]), "mlbox_ttl_nulled": nulled}
        print(f"  online values equal to Feast's: {same} of {len(feast['sample'])} sampled entities "
              f"({nulled} nulled by mlbox's TTL check at the window's end)", flush=True)  # fmt: skip
    return out


def _check(label: str, value: float | None, target: float, op: str, unit: str = "") -> bool:
    if value is None:
        print(f"  n/a  {label}: not measured (target {op} {target:g}{unit})")
        return False
    ok = value >= target if op == ">=" else value <= target
    print(f"  {'ok  ' if ok else 'FAIL'} {label}: {value:,.3g}{unit} (target {op} {target:g}{unit})")
    return ok


def report(results: dict[str, Any], args: argparse.Namespace) -> int:
    print("\n[bench] targets (issue 5)")
    wrong = False
    for size in ("small", "large"):
        r = results.get(size)
        if not r:
            continue
        mine = r["mlbox"]
        t = mine.get("seconds")
        for c in r["checks"]:
            if c["label"].startswith("mlbox") and "feast" not in c["label"]:
                wrong = wrong or bool(c["missing"] or c["mismatched"])
        for store, target in (("duckdb", FEAST_DUCKDB_TARGET), ("file", FEAST_FILE_TARGET)):
            theirs = r.get(f"feast-{store}", {}).get("seconds")
            ratio = theirs / t if t and theirs else None
            _check(f"{size}: mlbox / Feast {store} speed-up", ratio, target, ">=", "x")
            if size == "large" and "feast_version" in results and f"feast-{store}" not in r:
                print(f"       (Feast {store} not run at this size: tried here, its process passed 12 GB "
                      "after 219 s and was killed; --skip-large '' runs it, capped at --feast-max-rss-gb)")  # fmt: skip
        if size == "large":
            _check("large: 10M x 1M join", t, LARGE_TARGET_S, "<=", " s")
        if "peak_rss_mb" in mine:
            peers = ", ".join(f"Feast {s} {r[f'feast-{s}']['peak_rss_mb']:.0f} MB" for s in ("duckdb", "file")
                              if "peak_rss_mb" in r.get(f"feast-{s}", {}))  # fmt: skip
            print(
                f"       {size}: peak RSS mlbox {mine['peak_rss_mb']:.0f} MB"
                + (f"; {peers}" if peers else "")
            )
    online = results.get("online", {})
    mine = online.get("mlbox", {})
    http = mine.get("http", {})
    _check("online one entity p99, in-process", mine.get("one_p99_ms"), ONE_P99_TARGET_MS, "<=", " ms")
    _check("online one entity p99, HTTP keep-alive", http.get("one_p99_ms"), HTTP_P99_TARGET_MS, "<=", " ms")
    _check(
        "online one entity p99, HTTP new connection",
        http.get("fresh_one_p99_ms"),
        HTTP_P99_TARGET_MS,
        "<=",
        " ms",
    )
    _check("online 1,000 entities, in-process", mine.get("many_p50_ms"), MANY_TARGET_MS, "<=", " ms")
    print(
        f"  (issue 5 reference, Feast 0.67 on 1M x 100k: file {REFERENCE['file_s']} s returning "
        f"{REFERENCE['file_rows']:,} rows, DuckDB {REFERENCE['duckdb_s']} s, SQLite online p50 "
        f"{REFERENCE['one_p50_ms']} / p99 {REFERENCE['one_p99_ms']} ms)"
    )
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
