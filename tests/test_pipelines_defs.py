"""Pipelines the pipelines tests run (importable by reference, as the appliance resumes them).

``FAIL`` holds the names of steps that raise, and ``CALLS`` counts each step's bodies, so a
test can make a step fail and see which bodies ran.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pandas as pd

import mlbox
from mlbox.pipelines.values import PredictionsRef, TrainingSetRef

FAIL: set[str] = set()
CALLS: Counter[str] = Counter()


def _enter(name: str) -> None:
    CALLS[name] += 1
    if name in FAIL:
        raise RuntimeError(f"{name} was told to fail")


@mlbox.step
def load(n: int) -> pd.DataFrame:
    _enter("load")
    return pd.DataFrame({"x": list(range(n)), "y": [i % 3 for i in range(n)]})


@mlbox.step
def featurize(frame: pd.DataFrame, scale: float) -> pd.DataFrame:
    _enter("featurize")
    return frame.assign(x2=frame["x"] * scale)


@mlbox.step
def summarize(frame: pd.DataFrame) -> dict:
    _enter("summarize")
    return {"rows": len(frame), "total": float(frame["x2"].sum())}


@mlbox.step
def count(frame: pd.DataFrame) -> int:
    _enter("count")
    return len(frame)


@mlbox.step(cache=False)
def report(summary: dict, rows: int) -> str:
    _enter("report")
    return f"{summary['rows']} rows, {rows} counted"


@mlbox.pipeline
def small(n: int = 10, scale: float = 2.0) -> None:
    frame = load(n)
    feats = featurize(frame, scale)
    report(summarize(feats), count(frame))


@mlbox.step(retries=2, backoff_s=0.01)
def flaky(marker: str) -> int:
    """Fails until a marker file has been seen twice."""
    path = Path(marker)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < 2:
        raise RuntimeError(f"flaky attempt {seen + 1}")
    return seen


@mlbox.pipeline
def retrying(marker: str) -> None:
    flaky(marker)


@mlbox.step
def lies() -> int:
    return "not a number"  # type: ignore[return-value]


@mlbox.pipeline
def liar() -> None:
    lies()


@mlbox.step
def slow_mark(folder: str, name: str, seconds: float) -> str:
    """Appends its name to a file per body, so a test counts how often each ran."""
    with open(os.path.join(folder, f"{name}.count"), "a") as f:
        f.write("x")
    time.sleep(seconds)
    return name


@mlbox.pipeline
def marks(folder: str, seconds: float = 0.5) -> None:
    a = slow_mark(folder, "a", seconds)
    b = slow_mark(folder, "b", seconds)
    slow_mark(folder, "c", seconds)
    both(a, b)


@mlbox.step
def both(a: str, b: str) -> str:
    return a + b


@mlbox.step(job=True)
def in_job(n: int) -> int:
    return n * 7


@mlbox.step
def plus_one(n: int) -> int:
    return n + 1


@mlbox.pipeline
def with_job(n: int = 3) -> None:
    plus_one(in_job(n))


@mlbox.step
def read_file(path: str) -> int:
    return len(Path(path).read_bytes())


@mlbox.pipeline
def on_file(path: str) -> None:
    read_file(path)


@mlbox.step
def day_rows(partition: str) -> str:
    return f"rows of {partition}"


@mlbox.pipeline
def daily(partition: str) -> None:
    day_rows(partition)


@mlbox.step
def describe(model: str) -> str:
    return f"model {model}"


@mlbox.pipeline
def on_alias(model: str) -> None:
    describe(model)


@mlbox.step
def node(tag: str, a: int = 0, b: int = 0, c: int = 0) -> int:
    """A step of a random graph (tests/test_pipelines.py): fails when its tag is in FAIL."""
    _enter(tag)
    return a + b + c + 1


@mlbox.step
def note(value: str) -> str:
    return f"upstream {value}"


@mlbox.pipeline
def on_dataset(dataset: str) -> None:
    note(dataset)


@mlbox.pipeline
def on_training_set(training_set: str) -> None:
    note(training_set)


@mlbox.step
def chatty(tag: str, seconds: float) -> str:
    """Prints, writes to stderr and logs, slowly, so two of them interleave in the pool."""
    import logging
    import sys

    for i in range(3):
        print(f"{tag} line {i}")
        time.sleep(seconds)
    print(f"{tag} warns", file=sys.stderr)
    logging.getLogger("chatty").warning("%s logged", tag)
    if tag in FAIL:
        raise RuntimeError(f"{tag} was told to fail")
    return tag


@mlbox.pipeline
def two_chatty(seconds: float = 0.05) -> None:
    chatty("left", seconds)
    chatty("right", seconds)


@mlbox.step(timeout_s=0.5)
def bounded(seconds: float) -> float:
    print("bounded started")
    time.sleep(seconds)
    _enter("bounded")
    return seconds


@mlbox.pipeline
def with_timeout(seconds: float) -> None:
    bounded(seconds)


@mlbox.step
def build_set(path: str, ts_id: int) -> TrainingSetRef:
    """Stands for a step that read a raw file and built a feature store training set."""
    Path(path).read_bytes()
    return TrainingSetRef(ts_id, "churn")


@mlbox.step
def score(ts: TrainingSetRef, model: str) -> PredictionsRef:
    name, _, version = model.partition("/")
    return PredictionsRef(name, int(version), 100.0, 200.0, rows=ts.id)


@mlbox.pipeline
def made(path: str, ts_id: int, model: str = "tiny/1") -> None:
    score(build_set(path, ts_id), model)
