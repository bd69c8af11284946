"""Labeling benchmark: active learning against random order, next-task latency, bulk import/export.

1. Labels needed to reach 95% of the full-data accuracy on the digits (scikit-learn's bundled
   1,797 images), a simulated annotator labeling in uncertainty order (margin, entropy, least
   confidence) against random order, 20 labels to start and the model refitted every 10; each
   seed draws its own stratified pool/test split (75/25). Target: uncertainty order needs
   <= 60% of random order's labels (averaged over the seeds).
2. Next-task latency in the TUI: a 100,000-task project, the annotator's screen driven by
   Textual's Pilot; from the key press to the next task drawn (prefetched: it comes from
   memory while the label is saved by a worker), over N presses. Target: p99 < 50 ms. The
   service call itself (``next_tasks``, claim in one transaction) is timed beside it.
3. 1,000,000 text tasks: import from JSONL and from CSV (read, checked, inserted all or nothing),
   then, once labeled in bulk, export to Parquet (hashed, recorded as a dataset) and CSV.
   Target: < 10 s each.

Run: ``.venv/bin/python scripts/bench/labeling.py [--seeds 5] [--tasks 1000000] [--presses 300]
[--json]``. A benchmark, not a test: a missed target prints FAIL and the exit code stays 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def active_learning(seeds: int) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from mlbox.labeling.active import fast_model, labels_to_reach

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    strategies = ("margin", "entropy", "least_confidence", "random")
    needed: dict[str, list[int]] = {s: [] for s in strategies}
    fulls = []
    for seed in range(seeds):
        xp, xt, yp, yt = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
        full = float((fast_model().fit(xp, yp).predict(xt) == yt).mean())
        fulls.append(full)
        for s in strategies:
            n, _ = labels_to_reach(xp, yp, xt, yt, 0.95 * full, strategy=s, seed=seed, start=20, step=10)
            needed[s].append(n)
        print(
            f"  seed {seed}: full-data accuracy {full:.3f}; labels to 95%: "
            + ", ".join(f"{s} {needed[s][-1]}" for s in strategies),
            flush=True,
        )
    mean = {s: statistics.mean(v) for s, v in needed.items()}
    return {
        "seeds": seeds,
        "pool": len(yp),
        "full_accuracy": statistics.mean(fulls),
        "labels": needed,
        "mean_labels": mean,
        "ratio": {s: mean[s] / mean["random"] for s in strategies if s != "random"},
    }


def _project(services: Any, name: str, n: int) -> float:
    lab = services.labeling
    lab.create_project(name, {"choices": ["positive", "negative", "neutral"]})
    t0 = time.perf_counter()
    chunk = 100_000
    for i in range(0, n, chunk):
        lab.add_tasks(
            name, [{"text": f"review number {j}: the product was fine"} for j in range(i, min(n, i + chunk))]
        )
    return time.perf_counter() - t0


def tui_latency(services: Any, presses: int) -> dict[str, Any]:
    from mlbox.cli.labeling import open_annotator
    from mlbox.tui.app import make_app
    from mlbox.tui.screens.labeling import AnnotateScreen

    _project(services, "latency", 100_000)
    lab = services.labeling
    calls = []
    for _ in range(200):
        t0 = time.perf_counter()
        lab.next_tasks("latency", "service-probe", 1)
        calls.append(time.perf_counter() - t0)
        lab.release("latency", "service-probe")
    app = make_app(services, home="~/.mlbox", refresh_s=3600.0)
    times: list[float] = []
    rounds: list[float] = []

    async def drive() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            open_annotator(app, "latency", "bench")
            for _ in range(200):
                await pilot.pause(0.01)
                screen = app.screen
                if isinstance(screen, AnnotateScreen) and screen.current is not None:
                    break
            screen = app.screen
            assert isinstance(screen, AnnotateScreen)
            for _ in range(presses):
                before = screen.shown
                t0 = time.perf_counter()
                await pilot.press("1")
                while screen.shown == before:
                    await pilot.pause(0.001)
                times.append(screen.shown_perf - t0)
                rounds.append(time.perf_counter() - t0)
            while screen.pending:
                await pilot.pause(0.01)
            await app.workers.wait_for_complete()

    asyncio.run(drive())
    saved = len(lab.annotations("latency"))

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]

    return {
        "tasks": 100_000,
        "presses": presses,
        "saved": saved,
        "key_to_next_task_ms": {"p50": pct(times, 0.5), "p99": pct(times, 0.99), "max": pct(times, 1.0)},
        "pilot_round_trip_ms": {"p50": pct(rounds, 0.5), "p99": pct(rounds, 0.99)},
        "service_next_task_ms": {"p50": pct(calls, 0.5), "p99": pct(calls, 0.99)},
    }


def bulk(services: Any, n: int, folder: Path) -> dict[str, Any]:
    lab = services.labeling
    jsonl = folder / "tasks.jsonl"
    csv_path = folder / "tasks.csv"
    with jsonl.open("w") as f:
        for i in range(n):
            f.write(f'{{"text": "review number {i}: the product was fine", "id": {i}}}\n')
    with csv_path.open("w") as f:
        f.write("text,id\n")
        for i in range(n):
            f.write(f"review number {i}: the product was fine,{i}\n")
    out: dict[str, Any] = {"tasks": n}
    for fmt, path in (("jsonl", jsonl), ("csv", csv_path)):
        lab.create_project(f"bulk-{fmt}", {"choices": ["positive", "negative"]})
        t0, c0 = time.perf_counter(), time.process_time()
        res = lab.import_tasks(f"bulk-{fmt}", path)
        out[f"import_{fmt}_s"] = time.perf_counter() - t0
        out[f"import_{fmt}_cpu_s"] = time.process_time() - c0
        assert res.imported == n
        print(
            f"  import {fmt}: {out[f'import_{fmt}_s']:.2f} s (CPU {out[f'import_{fmt}_cpu_s']:.2f} s)",
            flush=True,
        )
    t0 = time.perf_counter()
    first = lab.tasks("bulk-jsonl", limit=1)[0].id
    lab.annotate_many(
        "bulk-jsonl", "bulk", [(first + i, {"label": "positive" if i % 3 else "negative"}) for i in range(n)]
    )
    out["label_in_bulk_s"] = time.perf_counter() - t0
    for fmt in ("parquet", "csv"):
        t0, c0 = time.perf_counter(), time.process_time()
        res = lab.export("bulk-jsonl", folder / f"labels.{fmt}")
        out[f"export_{fmt}_s"] = time.perf_counter() - t0
        out[f"export_{fmt}_cpu_s"] = time.process_time() - c0
        assert res.rows == n
        print(
            f"  export {fmt}: {out[f'export_{fmt}_s']:.2f} s (CPU {out[f'export_{fmt}_cpu_s']:.2f} s)",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--skip", action="append", default=[], choices=["al", "tui", "bulk"])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-labeling-") as tmp:
        os.environ["MLBOX_HOME"] = str(Path(tmp) / "home")
        from mlbox.services import Services
        from mlbox.settings import Settings

        services = Services.open(Settings.from_env())
        figures: dict[str, Any] = {"cpus": os.cpu_count()}
        if "al" not in args.skip:
            print("active learning on the digits…", flush=True)
            figures["active_learning"] = active_learning(args.seeds)
        if "tui" not in args.skip:
            print("next-task latency in the TUI over 100,000 tasks…", flush=True)
            figures["tui"] = tui_latency(services, args.presses)
        if "bulk" not in args.skip:
            print(f"import and export of {args.tasks:,} text tasks…", flush=True)
            figures["bulk"] = bulk(services, args.tasks, Path(tmp))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print()
    if "active_learning" in figures:
        al = figures["active_learning"]
        m = al["mean_labels"]
        print(
            f"labels to reach 95% of full-data accuracy ({al['full_accuracy']:.3f}, pool {al['pool']}),"
            f" mean over {al['seeds']} seeds:"
        )
        for s in ("margin", "entropy", "least_confidence"):
            r = al["ratio"][s]
            print(
                f"  {s:17s} {m[s]:7.1f}  ratio to random {r:.2f}  {'ok' if r <= 0.6 else 'FAIL'} (target <= 0.60)"
            )
        print(f"  {'random':17s} {m['random']:7.1f}")
    if "tui" in figures:
        t = figures["tui"]
        k = t["key_to_next_task_ms"]
        print(
            f"TUI next task over {t['tasks']:,} tasks, {t['presses']} presses ({t['saved']} labels saved):"
            f" p50 {k['p50']:.1f} ms, p99 {k['p99']:.1f} ms {'ok' if k['p99'] < 50 else 'FAIL'} (target < 50 ms);"
            f" Pilot round trip p99 {t['pilot_round_trip_ms']['p99']:.1f} ms;"
            f" service next_tasks p99 {t['service_next_task_ms']['p99']:.2f} ms"
        )
    if "bulk" in figures:
        b = figures["bulk"]
        for key in ("import_jsonl_s", "import_csv_s", "export_parquet_s", "export_csv_s"):
            print(
                f"{key.replace('_s', '').replace('_', ' ')} of {b['tasks']:,} tasks: {b[key]:.2f} s"
                f" (CPU {b[key.replace('_s', '_cpu_s')]:.2f} s, all threads)"
                f" {'ok' if b[key] < 10 else 'FAIL'} (target < 10 s)"
            )
        print(f"(labeling them in bulk: {b['label_in_bulk_s']:.2f} s)")
    print(
        f"machine: {figures['cpus']} CPUs, shared with other work while measured"
        f" (load average {os.getloadavg()[0]:.2f} at the end)"
    )


if __name__ == "__main__":
    main()
