"""Drift benchmark: mlbox's drift check against Evidently's DataDriftPreset on the same frames.

Data: 20 numeric and 5 categorical columns; half of them shifted by known
amounts (numeric ``n0``–``n9``: mean shifts of 0.05–0.5 standard deviations or
a wider spread; categorical ``c0``, ``c1``: moved frequencies, ``c2`` gains a
category), reference and current of 100,000 and 1,000,000 rows each
(``--rows`` to choose), written once to Parquet under a temporary folder.

Each system runs in a child process (its own interpreter: mlbox's ``.venv``,
Evidently in ``.bench/venvs/evidently`` made by this script with the latest
release and ``pandas<3``), reads the two Parquet files, and times only the
drift computation; peak RSS is the child's ``VmHWM`` (`_rss.peak_rss_mb`).
Both use the same defaults past 1,000 rows (normed Wasserstein at 0.1 for
numbers, Jensen–Shannon at 0.1 for categories), so where both report the same
test the script checks that they flag the same columns (exit 1 otherwise).

Run ``.venv/bin/python scripts/bench/monitoring.py`` (``--rows 100000`` for the
small size only, ``--no-peer`` for mlbox alone). Figures depend on the machine
and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _peers import VENVS, PeerUnavailable, _installed_version, _python_of  # noqa: E402

NUMERIC = 20
CATEGORICAL = 5
CATS = ["a", "b", "c", "d", "e", "f"]
SHIFTED = [f"n{i}" for i in range(10)] + ["c0", "c1", "c2"]


def make_frames(rows: int, seed: int = 0) -> tuple[object, object]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    ref: dict[str, object] = {}
    cur: dict[str, object] = {}
    for i in range(NUMERIC):
        scale = 1.0 + i % 4
        ref[f"n{i}"] = rng.normal(0.0, scale, rows)
        if i < 10:
            if i % 5 == 4:
                cur[f"n{i}"] = rng.normal(0.0, scale * 1.5, rows)  # a wider spread
            else:
                cur[f"n{i}"] = rng.normal(scale * (0.05 + 0.05 * i), scale, rows)
        else:
            cur[f"n{i}"] = rng.normal(0.0, scale, rows)
    base = np.array([0.3, 0.25, 0.2, 0.15, 0.1, 0.0])
    for j in range(CATEGORICAL):
        ref[f"c{j}"] = rng.choice(CATS, rows, p=base)
        if j == 0:
            p = np.array([0.15, 0.25, 0.2, 0.15, 0.25, 0.0])
        elif j == 1:
            p = np.array([0.1, 0.1, 0.2, 0.3, 0.3, 0.0])
        elif j == 2:
            p = np.array([0.25, 0.2, 0.2, 0.1, 0.05, 0.2])  # a new category
        else:
            p = base
        cur[f"c{j}"] = rng.choice(CATS, rows, p=p)
    return pd.DataFrame(ref), pd.DataFrame(cur)


MLBOX_CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[3])
    import pandas as pd
    from _rss import peak_rss_mb
    from mlbox.monitoring.drift import drift
    ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
    t0 = time.perf_counter()
    verdicts = drift(ref, cur)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(),
        "columns": {v.column: {"test": v.test, "score": v.statistic, "drifted": v.drifted} for v in verdicts}}))
    """
)

EVIDENTLY_CHILD = textwrap.dedent(
    """
    import json, re, sys, time, warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, sys.argv[3])
    import pandas as pd
    from _rss import peak_rss_mb
    from evidently import Report
    from evidently.presets import DataDriftPreset
    ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    result = snapshot.dict()
    seconds = time.perf_counter() - t0
    columns = {}
    for m in result.get("metrics", []):
        name = str(m.get("metric_id") or m.get("metric_name") or "")
        found = re.match(r"ValueDrift\\(column=([^,)]+)(.*)\\)", name)
        if not found:
            continue
        params = found.group(2)
        method = re.search(r"method=([^,)]+)", params)
        threshold = re.search(r"threshold=([0-9.eE-]+)", params)
        value = m.get("value")
        if isinstance(value, dict):
            value = value.get("value")
        method_name = method.group(1) if method else ""
        limit = float(threshold.group(1)) if threshold else 0.1
        is_p = "p_value" in method_name or "test" in method_name.lower()
        drifted = (value < limit) if is_p else (value >= limit)
        columns[found.group(1)] = {"test": method_name, "score": value, "drifted": bool(drifted)}
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "columns": columns,
                      "sample": [str(m.get("metric_id") or m.get("metric_name")) for m in result.get("metrics", [])[:4]]}))
    """
)

SAME_TEST = {"wasserstein": "Wasserstein", "jensenshannon": "Jensen", "ks": "K-S", "chi2": "chi"}


def ensure_evidently() -> tuple[Path, str]:
    venv = VENVS / "evidently"
    python = _python_of(venv)
    version = _installed_version(python, "evidently")
    if version is not None:
        return python, version
    print(f"[bench] installing evidently (latest) with pandas<3 into {venv} …", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "evidently",
         "pandas<3"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    version = _installed_version(python, "evidently")
    if pip.returncode != 0 or version is None:
        raise PeerUnavailable(f"installing evidently failed:\n{(pip.stderr or pip.stdout)[-800:]}")
    return python, version


def run_child(python: Path | str, code: str, ref: Path, cur: Path) -> dict[str, object]:
    proc = subprocess.run(
        [str(python), "-c", code, str(ref), str(cur), str(HERE)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def agree(mine: dict[str, dict[str, object]], theirs: dict[str, dict[str, object]]) -> tuple[int, list[str]]:
    """(columns where both ran the same test, those of them flagged differently)."""
    compared = 0
    differ = []
    for column, m in mine.items():
        t = theirs.get(column)
        if t is None:
            continue
        key = SAME_TEST.get(str(m["test"]), "?")
        if key.lower() not in str(t["test"]).lower():
            continue
        compared += 1
        if bool(m["drifted"]) != bool(t["drifted"]):
            differ.append(column)
    return compared, differ


def bench_predlog(requests: int = 300) -> None:
    """CPU the prediction log's writer spends per request (append + flush), in this process.

    Requests of 1, 100 and 1,000 rows x 20 float32 features, answered with a label and two
    class probabilities, as the scoring path appends them; the writer's work is timed with
    ``time.process_time`` from the first append to the end of `flush` (the writer thread
    prepares part of the buffer before the flush; both count), append alone with
    ``perf_counter`` (it runs on the scoring path)."""
    import time

    from mlbox.serving.predlog import PredictionLog

    rng = np.random.default_rng(0)
    print(f"{'rows/request':>12}  {'append us':>9}  {'flush CPU us/request':>20}  {'us/row':>7}")
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-predlog-") as tmp:
        for rows in (1, 100, 1000):
            n = max(20, requests if rows < 1000 else requests // 3)
            pool = []  # distinct requests: a repeated one would compress unrealistically well
            for _ in range(16):
                proba = rng.random((rows, 2))
                x = rng.normal(size=(rows, 20)).astype(np.float32)
                pool.append((x, {"label": proba.argmax(axis=1), "proba": proba}))
            best_append, best_flush = float("inf"), float("inf")
            for attempt in range(3):
                log = PredictionLog(Path(tmp) / f"p{rows}-{attempt}", flush_s=3600)
                now = time.time()
                c0 = time.process_time()
                t0 = time.perf_counter()
                for i in range(n):
                    x, outputs = pool[i % len(pool)]
                    log.append((f"r{i}", "m", 1, now, 1.0, False, x, outputs))
                appended = time.perf_counter() - t0
                log.flush()
                flushed = time.process_time() - c0
                log.close()
                best_append = min(best_append, appended / n)
                best_flush = min(best_flush, flushed / n)
            print(
                f"{rows:>12,}  {best_append * 1e6:>9.2f}  {best_flush * 1e6:>20.1f}"
                f"  {best_flush * 1e6 / rows:>7.2f}"
            )


def bench_large(rows: int, chunk: int = 1_000_000) -> bool:
    """A window of ``rows`` logged predictions x 25 columns (typed log files of ``chunk`` rows, as
    the prediction log writes them) against a stored 100,000-row reference: drift from
    histograms (`mlbox.monitoring.binned`), timed after the files are written; the flagged
    columns must be the shifted ones. Drift alone: ``scripts/bench/monitoring_log.py`` times the
    whole evaluation (`MonitoringService.evaluate`) of a window the prediction log wrote."""
    import time

    import pandas as pd
    import pyarrow as pa

    from mlbox.monitoring.binned import drift_of_files
    from mlbox.monitoring.drift import column_kind
    from mlbox.serving.predlog import write_rows

    reference, _ = make_frames(100_000, seed=1)
    assert isinstance(reference, pd.DataFrame)
    kinds = {str(c): column_kind(reference[c]) for c in reference.columns}
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-large-") as tmp:
        files = []
        for k, start in enumerate(range(0, rows, chunk)):
            n = min(chunk, rows - start)
            _, cur = make_frames(n, seed=100 + k)
            table = pa.Table.from_pandas(cur, preserve_index=False)
            files.append(Path(tmp) / f"rows-{k + 1:06d}.parquet")
            write_rows(table, files[-1])
        drift_of_files(reference, files[:1], columns=list(kinds), kinds=kinds)  # compiles the counting loop
        t0 = time.perf_counter()
        seen, verdicts = drift_of_files(reference, files, columns=list(kinds), kinds=kinds)
        seconds = time.perf_counter() - t0
    flagged = sorted(v.column for v in verdicts if v.drifted)
    expected = sorted(set(SHIFTED) - {"n0"})  # n0's 0.05-sd shift is under Wasserstein's 0.1 by design
    ok = flagged == expected
    print(
        f"[bench] {seen:,} logged rows x {len(kinds)} columns against a 100,000-row reference:"
        f" {seconds:.2f} s; flagged {','.join(flagged)}" + ("" if ok else f" (expected {','.join(expected)})")
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--no-peer", action="store_true", help="mlbox alone")
    parser.add_argument("--predlog", action="store_true", help="the prediction log's writer cost alone")
    parser.add_argument("--large", type=int, metavar="ROWS", help="drift of a ROWS-row logged window alone")
    args = parser.parse_args()
    if args.predlog:
        bench_predlog()
        return 0
    if args.large:
        return 0 if bench_large(args.large) else 1
    peer: tuple[Path, str] | None = None
    if not args.no_peer:
        try:
            peer = ensure_evidently()
        except PeerUnavailable as exc:
            print(f"[bench] Evidently unavailable, mlbox alone: {exc}")
    failed = False
    print(f"{'rows':>10}  {'system':<18} {'seconds':>8}  {'peak MB':>8}  {'drifted':>8}  flagged")
    with tempfile.TemporaryDirectory(prefix="mlbox-bench-monitoring-") as tmp:
        for rows in args.rows:
            ref_frame, cur_frame = make_frames(rows)
            ref, cur = Path(tmp) / f"ref-{rows}.parquet", Path(tmp) / f"cur-{rows}.parquet"
            ref_frame.to_parquet(ref)  # type: ignore[attr-defined]
            cur_frame.to_parquet(cur)  # type: ignore[attr-defined]
            del ref_frame, cur_frame
            mine = run_child(sys.executable, MLBOX_CHILD, ref, cur)
            cols = mine["columns"]
            assert isinstance(cols, dict)
            flagged = sorted(c for c, v in cols.items() if v["drifted"])
            missed = sorted(set(SHIFTED) - set(flagged))
            print(
                f"{rows:>10,}  {'mlbox':<18} {mine['seconds']:>8.2f}  {mine['rss_mb']:>8.0f}  {len(flagged):>8}"
                f"  {','.join(flagged)}" + (f"  (missed {','.join(missed)})" if missed else "")
            )
            if peer is not None:
                python, version = peer
                theirs = run_child(python, EVIDENTLY_CHILD, ref, cur)
                tcols = theirs["columns"]
                assert isinstance(tcols, dict)
                if not tcols:
                    print(
                        f"[bench] could not read Evidently's per-column results; first metrics: {theirs['sample']}"
                    )
                    failed = True
                    continue
                tflagged = sorted(c for c, v in tcols.items() if v["drifted"])
                print(
                    f"{rows:>10,}  {'evidently ' + version:<18} {theirs['seconds']:>8.2f}  {theirs['rss_mb']:>8.0f}"
                    f"  {len(tflagged):>8}  {','.join(tflagged)}"
                )
                compared, differ = agree(cols, tcols)
                speedup = float(theirs["seconds"]) / max(float(mine["seconds"]), 1e-9)  # type: ignore[arg-type]
                print(
                    f"{'':>10}  speed-up {speedup:.1f}x; same test on {compared} of {len(cols)} columns,"
                    f" verdicts differ on {len(differ)}" + (f": {','.join(differ)}" if differ else "")
                )
                failed = failed or bool(differ)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
