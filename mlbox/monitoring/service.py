"""The monitoring service: references, late labels, window evaluations, monitors and alerts.

* A **reference** per model version is stored once (rows, up to `SAMPLE_ROWS`, as
  Parquet beside a profile of all of them) from a user's Parquet/CSV file, a
  logged training dataset whose source is such a file, or a window of the
  prediction log. Files first, the row last: a crash leaves no half reference.
* **Feedback** joins to the prediction log by request id (and row): labels may
  arrive late, in any order, twice (the last wins); a batch with one unknown
  id or wrong label stores nothing.
* An **evaluation** reads a window of the log as typed columns
  (`mlbox.monitoring.logframe`) and runs drift, data quality, outliers and
  performance (realised where labels are in, CBPE-estimated otherwise). A
  window past `STREAM_PAST` rows is not made a frame: one pass over its
  Arrow record batches (`mlbox.monitoring.windowscan`) gives the same figures.
* **Monitors** (per model alias) run from `reconcile_once` on the housekeeping
  loop when due; a breached check raises one alert row (and optionally runs a
  local command), cleared when the check passes again.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from mlbox.monitoring import binned
from mlbox.monitoring import drift as drift_mod
from mlbox.monitoring import performance as perf
from mlbox.monitoring.checks import check_results
from mlbox.monitoring.compare import Comparison
from mlbox.monitoring.compare import bias as bias_of
from mlbox.monitoring.compare import compare as compare_models
from mlbox.monitoring.config import MonitoringSettings
from mlbox.monitoring.logframe import META, PREDICTION, PROBA, feature_names, read_outputs, read_window
from mlbox.monitoring.migrations import migrations
from mlbox.monitoring.profile import Profile, outlier_rate, profile
from mlbox.monitoring.quality import quality
from mlbox.monitoring.schemas import (
    CHECKS,
    DEFAULT_CHECKS,
    Alert,
    Bucket,
    CheckResult,
    ColumnTest,
    Evaluation,
    FeedbackItem,
    FeedbackResult,
    Monitor,
    MonitorRun,
    Reference,
)
from mlbox.registry.schemas import ModelVersion
from mlbox.registry.service import RegistryService
from mlbox.store import Database, Home
from mlbox.store.errors import Conflict, InvalidInput, MlboxError, NotFound

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mlbox.monitoring")

CHALLENGER = "challenger"
SAMPLE_ROWS = 100_000
"""Rows of a reference kept for exact two-sample tests (and explanations' backgrounds)."""
STREAM_PAST = binned.LARGE_WINDOW
"""Rows past which a window of the typed log is read in Arrow batches (`_evaluate_large`)
instead of as a pandas frame; never fewer than `binned.LARGE_WINDOW`, as smaller windows get
the exact tests, which need the rows."""
COMMAND_TIMEOUT_S = 30.0
BUCKETS = 8


def no_reference(name: str, version: int, ref: str) -> str:
    """The refusal of a check without a reference, saying how to set one (the one wording)."""
    return (
        f"{name} version {version} has no reference: set one with "
        f"'mlbox monitor reference {ref} TRAIN.parquet' (its training data; CSV too), "
        f"or 'mlbox monitor reference {ref} --from-log' (its logged traffic)"
    )


class MonitoringService:
    def __init__(
        self,
        db: Database,
        home: Home,
        settings: MonitoringSettings | None = None,
        *,
        registry: RegistryService | None = None,
        flush_log: Callable[[], object] | None = None,
        join_keys: Callable[[Sequence[str]], Sequence[str]] | None = None,
        online_features: Callable[[list[dict[str, Any]], list[str]], dict[str, list[Any]]] | None = None,
    ) -> None:
        self.db = db
        self.home = home
        self.settings = settings or MonitoringSettings()
        self.registry = registry
        self._flush_log = flush_log
        self._join_keys = join_keys
        self._online_features = online_features
        self._explanations: Any = None
        migrations.apply(db)

    # -- where things live -----------------------------------------------------------

    @property
    def log_root(self) -> Path:
        return self.home.tables / "predictions"

    @property
    def references_root(self) -> Path:
        return self.home.root / "monitoring" / "references"

    @property
    def explanations(self) -> Any:
        """The explanations part (`mlbox.monitoring.explain.Explanations`), built on first use;
        None where that module is not installed."""
        if self._explanations is None:
            try:
                from mlbox.monitoring.explain import Explanations  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                return None
            self._explanations = Explanations(self._registry(), self.reference_sample)
        return self._explanations

    def _registry(self) -> RegistryService:
        if self.registry is None:
            raise MlboxError("the monitoring service was built without a registry")
        return self.registry

    def resolve(self, ref: str) -> ModelVersion:
        return self._registry().resolve(ref)

    # -- references ------------------------------------------------------------------

    def set_reference(
        self,
        ref: str,
        *,
        path: str | Path | None = None,
        frame: pd.DataFrame | None = None,
        from_log: bool = False,
        since: float | None = None,
        until: float | None = None,
        source: str | None = None,
    ) -> Reference:
        """Store the reference of ``ref``'s version (replacing an earlier one)."""
        mv = self.resolve(ref)
        if sum(x is not None and x is not False for x in (path, frame, from_log or None)) > 1:
            raise InvalidInput("give one of a file, a frame or the log as the reference", field="source")
        if path is not None:
            from mlbox.monitoring.frames import read_frame

            frame = read_frame(path, field="path")
            source = source or f"file {Path(path).name}"
        elif from_log:
            frame = read_window(
                self.log_root, mv.name, mv.signature, since=since, until=until, version=mv.version
            )
            if len(frame) == 0:
                raise InvalidInput(
                    f"the prediction log has no rows of {mv.name} version {mv.version} in that window",
                    field="window",
                )
            frame = frame.drop(columns=["request_id", "row", "version", "ts", "latency_ms", "shadow"])
            source = source or "prediction log"
        elif frame is None:
            frame, source = self._training_frame(mv)
        if len(frame) == 0:
            raise InvalidInput("the reference has no rows", field="path")
        frame = self._check_columns(mv, frame)
        return self._store_reference(mv, frame, source or "frame")

    def _training_frame(self, mv: ModelVersion) -> tuple[pd.DataFrame, str]:
        """The version's logged training dataset, when its source is a Parquet or CSV file."""
        from mlbox.monitoring.frames import SUFFIXES, read_frame

        for ds in mv.lineage.datasets:
            if ds.context != "training":
                continue
            candidate = Path(ds.name)
            if candidate.suffix.lower() in SUFFIXES and candidate.is_file():
                return read_frame(candidate, field="path"), f"dataset {ds.name}"
        raise InvalidInput(
            f"{mv.name} version {mv.version} has no training dataset stored as a file: give a Parquet or CSV"
            " file, or build it from the prediction log",
            field="path",
        )

    def _check_columns(self, mv: ModelVersion, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.rename(columns=str)
        allowed = feature_names(mv.signature)
        if allowed is not None:
            extra = [
                c for c in frame.columns if c not in allowed and c != PREDICTION and not c.startswith(PROBA)
            ]
            if extra:
                shown = ", ".join(repr(c) for c in extra[:5]) + (" …" if len(extra) > 5 else "")
                raise InvalidInput(
                    f"the reference has columns {mv.name} version {mv.version} does not take: {shown}"
                    f" (it takes {', '.join(allowed[:5])}{' …' if len(allowed) > 5 else ''})",
                    field="columns",
                )
        return frame

    def _store_reference(self, mv: ModelVersion, frame: pd.DataFrame, source: str) -> Reference:
        from mlbox.store import private, tables

        sample = frame if len(frame) <= SAMPLE_ROWS else frame.sample(SAMPLE_ROWS, random_state=0)
        if PREDICTION not in sample.columns:
            sample = self._with_predictions(mv, sample)
            if PREDICTION in sample.columns and len(sample) == len(frame):
                frame = sample
        prof = profile(frame)
        folder = uuid.uuid4().hex
        target = self.references_root / folder
        private.make_dirs(target)
        import pyarrow as pa

        tables.write_parquet(
            pa.Table.from_pandas(sample.reset_index(drop=True), preserve_index=False),
            target / "sample.parquet",
        )
        import msgspec

        private.write_bytes(target / "profile.json", msgspec.json.encode(prof))
        now = time.time()
        columns = [str(c) for c in frame.columns if c != PREDICTION and not str(c).startswith(PROBA)]
        old = self.db.query_one(
            "SELECT folder FROM monitoring_references WHERE model = ? AND version = ?", (mv.name, mv.version)
        )
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO monitoring_references (model, version, source, folder, rows, columns, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, version) DO UPDATE SET source = excluded.source,"
                " folder = excluded.folder, rows = excluded.rows, columns = excluded.columns,"
                " created_at = excluded.created_at",
                (mv.name, mv.version, source, folder, len(frame), json.dumps(columns), now),
            )
        if old is not None:
            shutil.rmtree(self.references_root / str(old["folder"]), ignore_errors=True)
        ref = self.reference(mv.name, mv.version)
        assert ref is not None
        return ref

    def _with_predictions(self, mv: ModelVersion, sample: pd.DataFrame) -> pd.DataFrame:
        """The sample with the version's own predictions (and probabilities), so a window's
        predictions can drift against them; as it was when the model cannot score it here."""
        import pandas as pd

        from mlbox.serving.predlog import _arrays

        features = feature_names(mv.signature)
        if not features or any(c not in sample.columns for c in features) or self.registry is None:
            return sample
        try:
            loaded = self.registry.load(mv)
            if mv.signature is not None and mv.signature.inputs.kind == "columns":
                inputs: Any = sample[features]
            else:
                dtype = (
                    mv.signature.inputs.tensors[0].dtype
                    if mv.signature and mv.signature.inputs.tensors
                    else "float64"
                )
                inputs = sample[features].to_numpy(dtype=np.dtype(dtype))
            outputs = _arrays(loaded.predict(inputs), "output")
        except Exception as exc:  # a model that cannot score its reference here: no prediction drift
            log.info("scoring the reference of %s version %s failed: %s", mv.name, mv.version, exc)
            return sample
        if not outputs:
            return sample
        columns: dict[str, builtins.list[Any]] = {}
        for name, a in outputs.items():
            if a.ndim == 1:
                columns[name] = a.tolist()
            else:
                for j in range(a.shape[1]):
                    columns[f"{name}_{j}"] = a[:, j].tolist()
        prediction, proba = read_outputs(columns)
        if prediction is None or len(prediction) != len(sample):
            return sample
        values = pd.Series(prediction, index=sample.index)
        if proba is None and pd.api.types.is_float_dtype(values.infer_objects()):
            values = values.astype(np.float64)  # a regressor's numbers: profiled as numbers, not labels
        extra = pd.DataFrame({PREDICTION: values}, index=sample.index)
        if proba is not None:
            extra = extra.join(
                pd.DataFrame(
                    proba, index=sample.index, columns=[f"{PROBA}{k}" for k in range(proba.shape[1])]
                )
            )
        return sample.join(extra)

    def reference(self, name: str, version: int) -> Reference | None:
        row = self.db.query_one(
            "SELECT * FROM monitoring_references WHERE model = ? AND version = ?", (name, version)
        )
        if row is None:
            return None
        return Reference(
            row["id"],
            row["model"],
            row["version"],
            row["source"],
            row["rows"],
            json.loads(row["columns"]),
            row["created_at"],
        )

    def references(self) -> builtins.list[Reference]:
        rows = self.db.query("SELECT model, version FROM monitoring_references ORDER BY model, version")
        return [r for row in rows if (r := self.reference(row["model"], row["version"])) is not None]

    def _folder(self, name: str, version: int) -> Path | None:
        row = self.db.query_one(
            "SELECT folder FROM monitoring_references WHERE model = ? AND version = ?", (name, version)
        )
        return None if row is None else self.references_root / str(row["folder"])

    def reference_sample(self, name: str, version: int, n: int | None = None) -> pd.DataFrame | None:
        """Up to ``n`` rows of the stored reference's features (all kept rows when None); None
        without one."""
        frame = self._sample(name, version, n)
        if frame is None:
            return None
        return frame[[c for c in frame.columns if c != PREDICTION and not str(c).startswith(PROBA)]]

    def _sample(self, name: str, version: int, n: int | None = None) -> pd.DataFrame | None:
        """The stored rows with the version's predictions on them (where it could score them)."""
        folder = self._folder(name, version)
        if folder is None:
            return None
        import pandas as pd

        frame = pd.read_parquet(folder / "sample.parquet")
        if n is not None and n < len(frame):
            frame = frame.sample(n, random_state=0).reset_index(drop=True)
        return frame

    def reference_profile(self, name: str, version: int) -> Profile | None:
        folder = self._folder(name, version)
        if folder is None:
            return None
        import msgspec

        return msgspec.json.decode((folder / "profile.json").read_bytes(), type=Profile)

    # -- feedback --------------------------------------------------------------------

    def add_feedback(self, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store labels for logged predictions; all or nothing."""
        if not items:
            raise InvalidInput("no labels given", field="labels")
        for i, item in enumerate(items):
            label = item.label
            if isinstance(label, bool) or not isinstance(label, (int, float, str)):
                raise InvalidInput(
                    f"labels[{i}].label must be a number or a string", field=f"labels[{i}].label"
                )
            if isinstance(label, float) and not math.isfinite(label):
                raise InvalidInput(f"labels[{i}].label must be finite", field=f"labels[{i}].label")
            if not item.request_id:
                raise InvalidInput(f"labels[{i}].request_id is empty", field=f"labels[{i}].request_id")
            if item.row < 0:
                raise InvalidInput(f"labels[{i}].row must be >= 0", field=f"labels[{i}].row")
        known = self._logged(sorted({item.request_id for item in items}))
        for i, item in enumerate(items):
            found = known.get(item.request_id)
            if found is None:
                raise NotFound(
                    f"no logged prediction has request id {item.request_id!r}",
                    field=f"labels[{i}].request_id",
                )
            model, rows, numeric = found
            if item.row >= rows:
                raise InvalidInput(
                    f"request {item.request_id!r} scored {rows} row(s); row {item.row} does not exist",
                    field=f"labels[{i}].row",
                )
            if numeric and isinstance(item.label, str):
                raise InvalidInput(
                    f"labels[{i}].label is text, but {model} predicts numbers", field=f"labels[{i}].label"
                )
        stored = updated = 0
        now = time.time()
        with self.db.atomic() as conn:
            for item in items:
                model = known[item.request_id][0]
                cur = conn.execute(
                    "INSERT INTO feedback (request_id, row, model, label, received_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (request_id, row) DO UPDATE SET label = excluded.label,"
                    " received_at = excluded.received_at, updates = updates + 1 RETURNING updates",
                    (item.request_id, item.row, model, json.dumps(item.label), now),
                )
                if cur.fetchone()[0]:
                    updated += 1
                else:
                    stored += 1
        return FeedbackResult(stored, updated)

    def import_feedback(self, path: str | Path) -> FeedbackResult:
        """Labels from a Parquet or CSV file with ``request_id`` and ``label`` (and ``row``) columns."""
        from mlbox.monitoring.frames import read_frame

        frame = read_frame(path, field="path")
        for column in ("request_id", "label"):
            if column not in frame.columns:
                raise InvalidInput(f"the labels file has no {column!r} column", field=column)
        rows = frame["row"].tolist() if "row" in frame.columns else [0] * len(frame)
        items = []
        for i, (rid, label, row) in enumerate(
            zip(frame["request_id"].tolist(), frame["label"].tolist(), rows, strict=True)
        ):
            if isinstance(label, np.generic):
                label = label.item()
            if isinstance(label, float) and label.is_integer():
                label = int(label)
            if not isinstance(row, (int, np.integer)) and not (isinstance(row, float) and row.is_integer()):
                raise InvalidInput(f"row {i}: row must be a whole number", field="row")
            items.append(FeedbackItem(str(rid), label, int(row)))
        return self.add_feedback(items)

    def _logged(self, request_ids: Sequence[str]) -> dict[str, tuple[str, int, bool]]:
        """``request id -> (model, rows scored, predicts numbers)`` for ids in the log (champion rows)."""
        if self._flush_log is not None:
            self._flush_log()
        if not request_ids:
            return {}
        import msgspec
        import polars as pl

        from mlbox.monitoring.logframe import _columns, read_outputs
        from mlbox.serving.predlog import OUT, iter_models, log_files, read_segments

        wanted = list(request_ids)
        out: dict[str, tuple[str, int, bool]] = {}
        for model in iter_models(self.log_root):
            typed_files, whole, rest = log_files(self.log_root / model)
            covered = {p.name[len("seg-") :] for p in whole}
            typed_files = [p for p in typed_files if p.name[len("rows-") :] not in covered]
            if whole or rest:  # JSON segments: older logs, and requests that could not be typed
                found = read_segments(whole + rest).filter(
                    pl.col("request_id").is_in(wanted) & ~pl.col("shadow")
                )
                for rid, outputs in found.select("request_id", "outputs").iter_rows():
                    cols = _columns(msgspec.json.decode(outputs), "output")
                    prediction, _ = read_outputs(cols)
                    rows = 0 if prediction is None else len(prediction)
                    numeric = prediction is not None and all(
                        isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                        for v in prediction.tolist()
                    )
                    out[rid] = (model, rows, numeric)
            if typed_files:
                scan = pl.concat([pl.scan_parquet(f) for f in typed_files], how="diagonal_relaxed")
                numeric = _numeric_prediction(scan.collect_schema(), OUT)
                counts = (
                    scan.filter(pl.col("request_id").is_in(wanted) & ~pl.col("shadow"))
                    .group_by("request_id")
                    .agg(pl.len().alias("rows"))
                    .collect()
                )
                for rid, rows in counts.iter_rows():
                    out[rid] = (model, int(rows), numeric)
        return out

    def labels(self, model: str) -> pd.DataFrame:
        import pandas as pd

        rows = self.db.query("SELECT request_id, row, label FROM feedback WHERE model = ?", (model,))
        # one JSON array decoded at once: a json.loads per label was most of reading 100,000 labels
        labels = msgspec.json.decode("[" + ",".join(r["label"] for r in rows) + "]") if rows else []
        return pd.DataFrame(
            {
                "request_id": [r["request_id"] for r in rows],
                "row": [int(r["row"]) for r in rows],
                "label": labels,
            }
        )

    # -- evaluation --------------------------------------------------------------------

    def evaluate(
        self,
        ref: str,
        *,
        since: float | None = None,
        until: float | None = None,
        last: int | None = None,
        buckets: int = BUCKETS,
        segment: str | None = None,
        positive: Any = 1,
    ) -> Evaluation:
        """Every check of ``ref``'s logged traffic in ``[since, until)`` (or its ``last`` rows);
        with ``segment``, the bias across that column's groups (``positive``: the favourable class)."""
        return self._evaluate(
            ref, since=since, until=until, last=last, buckets=buckets, segment=segment, positive=positive
        )[0]

    def _segment_keys(self, ref: str, columns: Sequence[str]) -> builtins.list[str]:
        """The entity key columns to look the feature ``ref`` (``view:feature``) up by; 400 on
        ``segment`` without a feature store, for an unknown view or a key the log lacks."""
        if self._join_keys is None or self._online_features is None:
            raise InvalidInput(f"no feature store to look up {ref!r} in", field="segment")
        try:
            keys = list(self._join_keys([ref]))
        except MlboxError as exc:
            raise InvalidInput(f"segment {ref!r}: {exc}", field="segment") from exc
        missing = [k for k in keys if k not in columns]
        if missing:
            raise InvalidInput(
                f"the logged rows have no entity key {', '.join(map(repr, missing))} to look up {ref!r}",
                field="segment",
            )
        return keys

    def _with_feature(self, window: pd.DataFrame, ref: str) -> pd.DataFrame:
        """The window with the feature store's online value of ``ref`` (``view:feature``) per
        row, looked up by the entity key columns the logged rows carry (a bias segment)."""
        keys = self._segment_keys(ref, list(window.columns))
        assert self._online_features is not None
        entities = window[keys].drop_duplicates().reset_index(drop=True)
        rows = [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in zip(keys, values, strict=True)}
            for values in entities.itertuples(index=False, name=None)
        ]
        found = self._online_features(rows, [ref])
        name = ref.split(":", 1)[1].split("@", 1)[0]
        entities[ref] = found.get(name, [None] * len(rows))
        return window.merge(entities, on=keys, how="left")

    @staticmethod
    def _drift(
        sample: pd.DataFrame, window: pd.DataFrame, tests: dict[str, str], thresholds: dict[str, float]
    ) -> list[drift_mod.Verdict]:
        """Exact tests on a small window; past `binned.LARGE_WINDOW` rows, the same tests from
        histograms (one pass per column instead of sorting both sides)."""
        if len(window) <= binned.LARGE_WINDOW:
            return drift_mod.drift(sample, window, tests=tests, thresholds=thresholds, skip_empty=True)
        kinds = {str(c): drift_mod.column_kind(sample[c]) for c in sample.columns}
        return binned.drift_frames(
            sample, window, kinds=kinds, tests=tests, thresholds=thresholds, skip_empty=True
        )

    def report(
        self, ref: str, *, since: float | None = None, until: float | None = None, last: int | None = None
    ) -> str:
        """The self-contained HTML report of a window (`mlbox.monitoring.report`); a large window's
        distributions are drawn from a uniform sample of its rows (`windowscan.REPORT_ROWS`)."""
        from mlbox.monitoring.report import render

        evaluation, window, sample = self._evaluate(
            ref, since=since, until=until, last=last, buckets=BUCKETS, report=True
        )
        shown = [
            v.column
            for v in evaluation.drift
            if v.drifted and v.kind == "numeric" and v.column in window.columns
        ][:6]
        distributions = {
            c: (
                sample[c].to_numpy(np.float64, na_value=np.nan),
                window[c].to_numpy(np.float64, na_value=np.nan),
            )
            for c in shown
        }
        return render(evaluation, distributions, title=f"{ref} (version {evaluation.version})")

    def _evaluate(
        self,
        ref: str,
        *,
        since: float | None,
        until: float | None,
        last: int | None,
        buckets: int,
        segment: str | None = None,
        positive: Any = 1,
        column_tests: Mapping[str, ColumnTest] | None = None,
        report: bool = False,
    ) -> tuple[Evaluation, pd.DataFrame, pd.DataFrame]:
        """(the evaluation, the window's rows (a sample of a large one's), the reference's rows).

        A window of the typed log past `binned.LARGE_WINDOW` rows is read once in Arrow batches
        (`_evaluate_large`); a smaller one, or one with older JSON segments, as a pandas frame
        with the exact tests."""
        mv = self.resolve(ref)
        prof = self.reference_profile(mv.name, mv.version)
        sample = self._sample(mv.name, mv.version)
        if prof is None or sample is None:
            raise InvalidInput(no_reference(mv.name, mv.version, ref), field="model")
        large = self._large_window(mv, since=since, until=until, last=last)
        if large is not None:
            return self._evaluate_large(
                mv, ref, prof, sample, large, since=since, until=until, buckets=buckets, segment=segment,
                positive=positive, column_tests=column_tests, report=report,
            )  # fmt: skip
        window = read_window(
            self.log_root, mv.name, mv.signature, since=since, until=until, version=mv.version
        )
        if last is not None:
            window = window.tail(last).reset_index(drop=True)
        if len(window) == 0:
            raise InvalidInput(
                f"no logged predictions of {mv.name} version {mv.version} in that window", field="window"
            )
        features = [c for c in prof.columns if c != PREDICTION and not c.startswith(PROBA)]
        present = [c for c in features if c in window.columns]
        tests, limits = _overrides(column_tests, present)
        verdicts = self._drift(sample[present], window[present], tests, limits) if present else []
        prediction_drift = None
        if PREDICTION in sample.columns and PREDICTION in window.columns:
            try:
                prediction_drift = drift_mod.verdict(
                    PREDICTION, sample[PREDICTION], window[PREDICTION], kind="categorical"
                )
            except InvalidInput:
                prediction_drift = None
        window_prof = profile(window[[c for c in prof.columns if c in window.columns]], like=prof)
        found = quality(
            prof,
            window_prof,
            [c for c in window.columns if c not in META and c != PREDICTION and not str(c).startswith(PROBA)],
        )
        if segment is not None and segment not in window.columns and ":" in segment:
            window = self._with_feature(window, segment)
        labelled = self._join_labels(mv.name, window)
        performance = self._performance(labelled)
        over_time = self._over_time(labelled, buckets)
        found_bias = None
        if segment is not None:
            if segment not in window.columns or PREDICTION not in window.columns:
                raise InvalidInput(
                    f"the logged rows have no column {segment!r} to segment by", field="segment"
                )
            found_bias = bias_of(
                segment,
                labelled[segment].tolist(),
                labelled[PREDICTION].tolist(),
                labelled["label"].tolist(),
                positive,
            )
        challenger = None
        other = self._challenger(mv, ref)
        if other is not None and PREDICTION in labelled.columns:
            challenger = self._compare(mv, other, labelled, self._shadow(mv, other, since, until))
        evaluation = Evaluation(
            model=mv.name,
            version=mv.version,
            since=since,
            until=until,
            rows=len(window),
            drift=drift_mod.by_severity(verdicts),
            drift_share=drift_mod.share_drifted(verdicts),
            prediction_drift=prediction_drift,
            quality=found,
            outlier_rate=outlier_rate(window, prof),
            performance=performance,
            over_time=over_time,
            challenger=challenger,
            bias=found_bias,
        )
        return evaluation, window, sample

    def _large_window(
        self, mv: ModelVersion, *, since: float | None, until: float | None, last: int | None
    ) -> _LargeWindow | None:
        """The typed log files, filter, rows to skip and rows of a window past `STREAM_PAST`
        rows; None for a smaller one, or a log with JSON segments (older logs, and requests
        whose values have no columns), which is read as a frame."""
        from mlbox.monitoring import windowscan
        from mlbox.serving.predlog import log_files

        typed, whole, rest = log_files(self.log_root / mv.name)
        covered = {p.name[len("rows-") :] for p in typed}
        if not typed or rest or any(p.name[len("seg-") :] not in covered for p in whole):
            return None
        past = max(STREAM_PAST, binned.LARGE_WINDOW)
        if windowscan.count_rows(typed, None) <= past:
            return None
        bounds = windowscan.Bounds(since, until, False, mv.version)
        rows = windowscan.count_rows(typed, bounds)
        take = rows if last is None else min(rows, last)
        if take <= past:
            return None
        return _LargeWindow(typed, bounds, rows - take, take)

    def _evaluate_large(
        self,
        mv: ModelVersion,
        ref: str,
        prof: Profile,
        sample: pd.DataFrame,
        large: _LargeWindow,
        *,
        since: float | None,
        until: float | None,
        buckets: int,
        segment: str | None,
        positive: Any,
        column_tests: Mapping[str, ColumnTest] | None,
        report: bool,
    ) -> tuple[Evaluation, pd.DataFrame, pd.DataFrame]:
        """`_evaluate` of a large window from one pass over its rows (`mlbox.monitoring.windowscan`):
        the same figures, drift from histograms as `_drift` computes it past `binned.LARGE_WINDOW`."""
        import pandas as pd

        from mlbox.monitoring import windowscan

        signature = mv.signature
        input_name = "input"
        if signature is not None and signature.inputs.kind != "columns" and signature.inputs.tensors:
            input_name = signature.inputs.tensors[0].name or "input"
        model_features = feature_names(signature) or []
        columns = windowscan.window_columns(large.files, input_name, model_features)
        features = [c for c in prof.columns if c != PREDICTION and not c.startswith(PROBA)]
        present = [c for c in features if c in columns]
        tests, limits = _overrides(column_tests, present)
        kinds = {c: drift_mod.column_kind(sample[c]) for c in present}
        refs = binned.reference_histograms(sample[present], present, kinds, skip_empty=True)
        numeric: dict[str, windowscan.NumericColumn] = {}
        for name in dict.fromkeys([*refs, *(c for c, p in prof.columns.items() if p.kind == "numeric")]):
            p = prof.columns.get(name)
            profiled = p is not None and p.kind == "numeric"
            edges = np.asarray(p.edges if profiled and p is not None else [], np.float64)
            numeric[name] = windowscan.NumericColumn(
                histogram=binned.Histogram.empty(refs[name][0].grid) if name in refs else None,
                edges=edges,
                counts=np.zeros(edges.size + 1 if profiled else 0, np.int64),
                ref_min=p.minimum if profiled and p is not None and p.minimum is not None else -math.inf,
                ref_max=p.maximum if profiled and p is not None and p.maximum is not None else math.inf,
                median=p.median if profiled and p is not None else None,
                mad=p.mad if profiled and p is not None else None,
            )
        categorical = [c for c in present if kinds[c] != "numeric"]
        categorical += [
            c for c, p in prof.columns.items() if p.kind == "categorical" and c not in categorical
        ]
        labels = self.labels(mv.name)
        other = self._challenger(mv, ref)
        shadow = self._shadow(mv, other, since, until) if other is not None else None
        row_columns: builtins.list[str] = []
        if segment is not None:
            if segment in columns:
                row_columns = [segment]
            elif ":" in segment:
                row_columns = self._segment_keys(segment, columns)
            else:
                raise InvalidInput(
                    f"the logged rows have no column {segment!r} to segment by", field="segment"
                )
        plan = windowscan.Plan(
            numeric=numeric,
            categorical=categorical,
            keep=pd.concat([labels[["request_id", "row"]], shadow[["request_id", "row"]]])
            if shadow is not None
            else labels[["request_id", "row"]],
            row_columns=row_columns,
            sample_rows=windowscan.REPORT_ROWS if report else 0,
        )
        scan = windowscan.scan(
            large.files, plan, input_name=input_name, features=model_features, bounds=large.bounds,
            skip=large.skip, expected_rows=large.rows,
        )  # fmt: skip
        if scan.rows == 0:
            raise InvalidInput(
                f"no logged predictions of {mv.name} version {mv.version} in that window", field="window"
            )
        grids = {c: h.grid for c, (h, _) in refs.items()}
        histograms = scan.histograms(grids, [c for c in present if kinds[c] != "numeric"])
        verdicts = binned.verdicts(sample[present], refs, histograms, present, kinds, tests, limits, True)
        prediction_drift = None
        if PREDICTION in sample.columns and scan.has_prediction:
            try:
                prediction_drift = binned.verdicts(
                    sample[[PREDICTION]], {}, scan.histograms({}, [PREDICTION]), [PREDICTION],
                    {PREDICTION: "categorical"}, None, None, False,
                )[0]  # fmt: skip
            except InvalidInput:
                prediction_drift = None
        found = quality(prof, scan.profile(prof), scan.columns)
        kept = scan.kept
        labelled = (
            kept.merge(labels, on=["request_id", "row"], how="inner")
            if len(labels)
            else kept.iloc[:0].assign(label=None)
        )
        labelled = labelled.sort_values("_i", kind="stable").reset_index(drop=True)
        top, non_integer = scan.top, scan.non_integer

        def performance_of(rows: int, part: pd.DataFrame, which: Any) -> perf.Performance:
            estimated = float(np.mean(top[which])) if top is not None and rows else None
            regression = non_integer is not None and bool(non_integer[which][:100].all())
            return self._performance_of(rows, part, estimated, regression, scan.has_prediction)

        performance = performance_of(scan.rows, labelled, slice(None))
        over_time: builtins.list[Bucket] = []
        if buckets >= 1:
            ts = scan.ts_us / 1e6
            order, parts = _bucket_parts(ts, buckets)
            position = np.empty(ts.size, np.int64)
            position[order] = np.arange(ts.size)
            at = position[labelled["_i"].to_numpy(np.int64)]
            by_position = np.argsort(at, kind="stable")
            at_sorted = at[by_position]
            start = 0
            for part in parts:
                stop = start + part.size
                lo, hi = np.searchsorted(at_sorted, [start, stop])
                piece = labelled.iloc[by_position[lo:hi]]
                over_time.append(
                    Bucket(
                        float(ts[part].min()), float(ts[part].max()), performance_of(part.size, piece, part)
                    )
                )
                start = stop
        found_bias = None
        if segment is not None:
            if not scan.has_prediction:
                raise InvalidInput(
                    f"the logged rows have no column {segment!r} to segment by", field="segment"
                )
            values = scan.row_values
            if segment in values:
                segments = values[segment]
            else:
                keyed = self._with_feature(pd.DataFrame({k: values[k] for k in row_columns}), segment)
                segments = keyed[segment].tolist()
            row_labels: builtins.list[Any] = [None] * scan.rows
            for i, label in zip(labelled["_i"].tolist(), labelled["label"].tolist(), strict=True):
                row_labels[i] = label
            found_bias = bias_of(segment, segments, values[PREDICTION], row_labels, positive)
        challenger = None
        if other is not None and scan.has_prediction:
            champion = (
                kept.merge(labels, on=["request_id", "row"], how="left")
                if len(labels)
                else kept.assign(label=None)
            )
            challenger = self._compare(mv, other, champion.sort_values("_i", kind="stable"), shadow)
        evaluation = Evaluation(
            model=mv.name,
            version=mv.version,
            since=since,
            until=until,
            rows=scan.rows,
            drift=drift_mod.by_severity(verdicts),
            drift_share=drift_mod.share_drifted(verdicts),
            prediction_drift=prediction_drift,
            quality=found,
            outlier_rate=scan.outliers / scan.rows,
            performance=performance,
            over_time=over_time,
            challenger=challenger,
            bias=found_bias,
        )
        return evaluation, scan.sample, sample

    def latest_rows(self, ref: str, n: int = 1) -> pd.DataFrame:
        """The feature columns of ``ref``'s last ``n`` logged rows (what an explanation takes)."""
        mv = self.resolve(ref)
        window = read_window(self.log_root, mv.name, mv.signature, version=mv.version)
        if len(window) == 0:
            raise InvalidInput(f"no logged predictions of {mv.name} version {mv.version}", field="window")
        names = feature_names(mv.signature) or [
            c for c in window.columns if c not in META and c != PREDICTION and not str(c).startswith(PROBA)
        ]
        return window[names].tail(n).reset_index(drop=True)

    def _challenger(self, mv: ModelVersion, ref: str) -> ModelVersion | None:
        """The version behind the model's ``challenger`` alias, when ``ref`` is another alias."""
        if ref.endswith(f"@{CHALLENGER}"):
            return None
        version = self._registry().get_model(mv.name).aliases.get(CHALLENGER)
        if version is None or version == mv.version:
            return None
        return self._registry().get_version(mv.name, version)

    def _shadow(
        self, mv: ModelVersion, other: ModelVersion, since: float | None, until: float | None
    ) -> pd.DataFrame | None:
        """The challenger's shadow answers in the window: ``request_id``, ``row``, ``challenger``."""
        shadow = read_window(
            self.log_root,
            mv.name,
            other.signature,
            since=since,
            until=until,
            shadow=True,
            version=other.version,
        )
        if len(shadow) == 0 or PREDICTION not in shadow.columns:
            return None
        return shadow[["request_id", "row", PREDICTION]].rename(columns={PREDICTION: "challenger"})

    def _compare(
        self, mv: ModelVersion, other: ModelVersion, labelled: pd.DataFrame, shadow: pd.DataFrame | None
    ) -> Comparison | None:
        """The challenger's shadow answers beside the champion's rows (``labelled``: request id,
        row, prediction and label, in window order), row by row."""
        if shadow is None:
            return None
        paired = labelled.merge(shadow, on=["request_id", "row"])
        if len(paired) == 0:
            return None
        return compare_models(
            mv.version,
            other.version,
            paired[PREDICTION].astype(str).to_numpy(),
            paired["challenger"].astype(str).to_numpy(),
            paired["label"].tolist(),
            paired["label"].notna().to_numpy(),
        )

    def _join_labels(self, model: str, window: pd.DataFrame) -> pd.DataFrame:
        labels = self.labels(model)
        if len(labels) == 0:
            return window.assign(label=None)
        return window.merge(labels, on=["request_id", "row"], how="left")

    def _performance(self, frame: pd.DataFrame) -> perf.Performance:
        """The performance of a window's rows (with their ``label``, None where none arrived)."""
        if PREDICTION not in frame.columns or len(frame) == 0:
            return perf.Performance(len(frame), 0)
        proba_cols = [c for c in frame.columns if str(c).startswith(PROBA)]
        estimated = perf.estimated_accuracy(frame[proba_cols].to_numpy(np.float64)) if proba_cols else None
        regression = not proba_cols and _regression_like(frame[PREDICTION].iloc[:100].tolist())
        return self._performance_of(len(frame), frame[frame["label"].notna()], estimated, regression, True)

    @staticmethod
    def _performance_of(
        rows: int, labelled: pd.DataFrame, estimated: float | None, regression: bool, predicted: bool
    ) -> perf.Performance:
        """A window's performance from its row count, its labelled rows (in window order),
        ``estimated`` (CBPE over all its rows, for a classifier's probabilities) and whether its
        first predictions are a regressor's (non-integer floats). One computation for the
        materialised and the streamed window."""
        if not predicted or rows == 0:
            return perf.Performance(rows, 0)
        proba_cols = [c for c in labelled.columns if str(c).startswith(PROBA)]
        everywhere = np.ones(len(labelled), dtype=bool)
        prediction = labelled[PREDICTION].to_numpy()
        if proba_cols:
            found = perf.classification(
                prediction.astype(np.int64),
                [
                    int(v) if isinstance(v, (int, float)) and v == v else -1
                    for v in labelled["label"].tolist()
                ],
                everywhere,
                labelled[proba_cols].to_numpy(np.float64),
                list(range(len(proba_cols))),
            )
            return msgspec.structs.replace(found, rows=rows, estimated_accuracy=estimated)
        if regression:
            found = perf.regression(
                prediction, labelled["label"].fillna(np.nan).to_numpy(np.float64), everywhere
            )
        else:
            found = perf.classification(
                np.asarray([str(v) for v in prediction.tolist()]),
                np.asarray([str(v) for v in labelled["label"].tolist()]),
                everywhere,
            )
        return msgspec.structs.replace(found, rows=rows)

    def _over_time(self, frame: pd.DataFrame, buckets: int) -> builtins.list[Bucket]:
        if len(frame) == 0 or buckets < 1:
            return []
        ts = (
            frame["ts"].astype("int64").to_numpy() / 1e6
            if str(frame["ts"].dtype).startswith("datetime")
            else frame["ts"].to_numpy(np.float64)
        )
        _, parts = _bucket_parts(ts, buckets)
        return [
            Bucket(float(ts[part].min()), float(ts[part].max()), self._performance(frame.iloc[part]))
            for part in parts
        ]

    # -- monitors and alerts -----------------------------------------------------------

    def create_monitor(
        self,
        ref: str,
        *,
        window_s: float = 3600.0,
        every_s: float | None = None,
        checks: Sequence[str] | None = None,
        thresholds: dict[str, float] | None = None,
        command: str | None = None,
        segment: str | None = None,
        column_tests: Mapping[str, ColumnTest] | None = None,
    ) -> Monitor:
        """A monitor of ``NAME@ALIAS``; its current version must have a reference. ``column_tests``
        override the drift test and/or threshold of single columns."""
        name, sep, alias = ref.partition("@")
        if not sep or not name or not alias:
            raise InvalidInput(f"{ref!r} is not NAME@ALIAS", field="model")
        if not window_s > 0 or not math.isfinite(window_s):
            raise InvalidInput("window_s must be a positive number of seconds", field="window_s")
        every = self.settings.every_s if every_s is None else every_s
        if not every > 0 or not math.isfinite(every):
            raise InvalidInput("every_s must be a positive number of seconds", field="every_s")
        chosen = list(checks) if checks else list(DEFAULT_CHECKS)
        unknown = [c for c in chosen if c not in CHECKS]
        if unknown:
            raise InvalidInput(f"unknown checks {unknown} (known: {', '.join(CHECKS)})", field="checks")
        limits = dict(thresholds or {})
        for key, value in limits.items():
            if key not in CHECKS:
                raise InvalidInput(f"a threshold for unknown check {key!r}", field="thresholds")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInput(f"the threshold of {key!r} must be a number", field="thresholds")
        if "bias" in chosen and not segment:
            raise InvalidInput("the bias check needs a segment column", field="segment")
        mv = self.resolve(ref)
        reference = self.reference(mv.name, mv.version)
        if reference is None:
            raise InvalidInput(no_reference(mv.name, mv.version, ref), field="model")
        overrides = self._column_tests(mv, column_tests or {})
        with self.db.atomic() as conn:
            if conn.execute("SELECT 1 FROM monitors WHERE model = ? AND alias = ?", (name, alias)).fetchone():
                raise Conflict(f"{ref} already has a monitor", field="model")
            cur = conn.execute(
                "INSERT INTO monitors (model, alias, window_s, every_s, checks, thresholds, command, segment,"
                " created_at, column_tests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    alias,
                    float(window_s),
                    float(every),
                    json.dumps(chosen),
                    json.dumps(limits),
                    command,
                    segment,
                    time.time(),
                    msgspec.json.encode(overrides).decode(),
                ),
            )
            monitor_id = int(cur.lastrowid or 0)
        return self.monitor(monitor_id)

    def _monitor(self, row: Any) -> Monitor:
        open_alerts = self.db.query_one(
            "SELECT COUNT(*) FROM alerts WHERE monitor_id = ? AND cleared_at IS NULL", (row["id"],)
        )
        return Monitor(
            row["id"],
            row["model"],
            row["alias"],
            row["window_s"],
            row["every_s"],
            json.loads(row["checks"]),
            json.loads(row["thresholds"]),
            row["command"],
            row["created_at"],
            row["last_run"],
            row["last_error"],
            int(open_alerts[0]) if open_alerts else 0,
            row["segment"],
            msgspec.json.decode(row["column_tests"] or "{}", type=dict[str, ColumnTest]),
        )

    def _column_tests(self, mv: ModelVersion, given: Mapping[str, ColumnTest]) -> dict[str, ColumnTest]:
        """Checked overrides: columns of the reference, known tests that fit the column's kind."""
        prof = self.reference_profile(mv.name, mv.version)
        columns = prof.columns if prof is not None else {}
        out: dict[str, ColumnTest] = {}
        for column, spec in given.items():
            field = f"column_tests.{column}"
            if column not in columns:
                raise InvalidInput(f"the reference has no column {column!r}", field=field)
            if spec.test is None and spec.threshold is None:
                raise InvalidInput(f"give a test or a threshold for {column!r}", field=field)
            if spec.test is not None:
                try:
                    drift_mod.check_test(column, spec.test, columns[column].kind)
                except InvalidInput as exc:
                    raise InvalidInput(str(exc), field=field) from exc
            if spec.threshold is not None and (
                isinstance(spec.threshold, bool) or not math.isfinite(spec.threshold) or spec.threshold < 0
            ):
                raise InvalidInput(f"the threshold of {column!r} must be a number >= 0", field=field)
            out[column] = spec
        return out

    def monitor(self, monitor_id: int) -> Monitor:
        row = self.db.query_one("SELECT * FROM monitors WHERE id = ?", (monitor_id,))
        if row is None:
            raise NotFound(f"no monitor {monitor_id}", field="monitor_id")
        return self._monitor(row)

    def find_monitor(self, ref: str) -> Monitor:
        name, _, alias = ref.partition("@")
        row = self.db.query_one("SELECT * FROM monitors WHERE model = ? AND alias = ?", (name, alias))
        if row is None:
            raise NotFound(f"no monitor of {ref!r}", field="model")
        return self._monitor(row)

    def list(self) -> builtins.list[Monitor]:
        return [self._monitor(r) for r in self.db.query("SELECT * FROM monitors ORDER BY model, alias")]

    def delete_monitor(self, monitor_id: int) -> None:
        self.monitor(monitor_id)
        with self.db.atomic() as conn:
            conn.execute("DELETE FROM monitors WHERE id = ?", (monitor_id,))

    def alerts(self, *, open_only: bool = False, limit: int = 200) -> builtins.list[Alert]:
        sql = "SELECT * FROM alerts" + (" WHERE cleared_at IS NULL" if open_only else "")
        rows = self.db.query(sql + " ORDER BY raised_at DESC, id DESC LIMIT ?", (limit,))
        return [self._alert(r) for r in rows]

    @staticmethod
    def _alert(r: Any) -> Alert:
        return Alert(
            r["id"], r["monitor_id"], r["model"], r["alias"], r["check_name"], r["message"],
            r["value"], r["threshold"], r["raised_at"], r["cleared_at"],
        )  # fmt: skip

    def history(self, monitor_id: int, limit: int = 100) -> builtins.list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT ran_at, version, rows, summary FROM monitor_runs WHERE monitor_id = ? ORDER BY ran_at DESC LIMIT ?",
            (monitor_id, limit),
        )
        return [
            {"ran_at": r["ran_at"], "version": r["version"], "rows": r["rows"], **json.loads(r["summary"])}
            for r in reversed(rows)
        ]

    def run_monitor(self, monitor_id: int, now: float | None = None) -> MonitorRun:
        """Evaluate the monitor's window now; raise an alert per newly breached check (once),
        clear the open ones whose check passes."""
        monitor = self.monitor(monitor_id)
        now = time.time() if now is None else now
        ref = f"{monitor.model}@{monitor.alias}"
        try:
            evaluation = self._evaluate(
                ref,
                since=now - monitor.window_s,
                until=now,
                last=None,
                buckets=BUCKETS,
                segment=monitor.segment,
                column_tests=monitor.column_tests,
            )[0]
        except InvalidInput as exc:
            with self.db.atomic() as conn:
                conn.execute(
                    "UPDATE monitors SET last_run = ?, last_error = ? WHERE id = ?",
                    (now, exc.message, monitor_id),
                )
            return MonitorRun(self.monitor(monitor_id), now, [], [], [], None)
        results = check_results(evaluation, monitor.checks, monitor.thresholds)
        raised, cleared = self._apply(monitor, results, evaluation, now)
        for alert in raised:
            if monitor.command:
                self._run_command(monitor.command, alert)
        return MonitorRun(self.monitor(monitor_id), now, results, raised, cleared, evaluation)

    def _apply(
        self, monitor: Monitor, results: Sequence[CheckResult], evaluation: Evaluation, now: float
    ) -> tuple[builtins.list[Alert], builtins.list[Alert]]:
        raised_ids: builtins.list[int] = []
        cleared_ids: builtins.list[int] = []
        summary = {
            "drift_share": evaluation.drift_share,
            "outlier_rate": evaluation.outlier_rate,
            "accuracy": evaluation.performance.accuracy,
            "estimated_accuracy": evaluation.performance.estimated_accuracy,
            "labelled": evaluation.performance.labelled,
            "rmse": evaluation.performance.rmse,
            "breached": [r.check for r in results if r.breached],
        }
        with self.db.atomic() as conn:
            for r in results:
                open_row = conn.execute(
                    "SELECT id FROM alerts WHERE monitor_id = ? AND check_name = ? AND cleared_at IS NULL",
                    (monitor.id, r.check),
                ).fetchone()
                if r.breached and open_row is None:
                    cur = conn.execute(
                        "INSERT INTO alerts (monitor_id, model, alias, check_name, message, value, threshold, raised_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            monitor.id,
                            monitor.model,
                            monitor.alias,
                            r.check,
                            r.message,
                            r.value,
                            r.threshold,
                            now,
                        ),
                    )
                    raised_ids.append(int(cur.lastrowid or 0))
                elif not r.breached and open_row is not None:
                    conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (now, open_row[0]))
                    cleared_ids.append(int(open_row[0]))
            conn.execute(
                "INSERT INTO monitor_runs (monitor_id, ran_at, version, rows, summary) VALUES (?, ?, ?, ?, ?)",
                (monitor.id, now, evaluation.version, evaluation.rows, json.dumps(summary)),
            )
            conn.execute(
                "UPDATE monitors SET last_run = ?, last_error = NULL WHERE id = ?", (now, monitor.id)
            )

        def fetch(ids: builtins.list[int]) -> builtins.list[Alert]:
            return [
                self._alert(r)
                for i in ids
                if (r := self.db.query_one("SELECT * FROM alerts WHERE id = ?", (i,)))
            ]

        return fetch(raised_ids), fetch(cleared_ids)

    def _run_command(self, command: str, alert: Alert) -> None:
        """The monitor's local command, with the alert in its environment (never a shell)."""
        import os
        import shlex

        env = {
            **os.environ,
            "MLBOX_ALERT_MODEL": alert.model,
            "MLBOX_ALERT_ALIAS": alert.alias,
            "MLBOX_ALERT_CHECK": alert.check,
            "MLBOX_ALERT_MESSAGE": alert.message,
        }
        try:
            subprocess.run(
                shlex.split(command), env=env, timeout=COMMAND_TIMEOUT_S, check=False, close_fds=True
            )
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            log.warning("the alert command of %s@%s failed: %s", alert.model, alert.alias, exc)

    def reconcile_once(self, now: float | None = None) -> dict[str, builtins.list[int]]:
        """Run every monitor that is due; the ids of monitors run and alerts raised (no key for none)."""
        now = time.time() if now is None else now
        ran: builtins.list[int] = []
        raised: builtins.list[int] = []
        for m in self.list():
            if m.last_run is not None and now - m.last_run < m.every_s:
                continue
            try:
                result = self.run_monitor(m.id, now)
            except MlboxError as exc:  # the model or its alias went away: say so on the monitor
                with self.db.atomic() as conn:
                    conn.execute(
                        "UPDATE monitors SET last_run = ?, last_error = ? WHERE id = ?",
                        (now, exc.message, m.id),
                    )
                continue
            ran.append(m.id)
            raised += [a.id for a in result.raised]
        out: dict[str, builtins.list[int]] = {}
        if ran:
            out["monitors_ran"] = ran
        if raised:
            out["alerts_raised"] = raised
        return out


@dataclass(frozen=True)
class _LargeWindow:
    """A window of the typed log to read in batches: its files, filter, leading rows to skip
    (``last``) and rows it holds after them."""

    files: builtins.list[Path]
    bounds: Any
    """`windowscan.Bounds`."""
    skip: int
    rows: int


def _overrides(
    column_tests: Mapping[str, ColumnTest] | None, present: Sequence[str]
) -> tuple[dict[str, str], dict[str, float]]:
    """(test, threshold) overrides of a monitor's columns that the window has."""
    overrides = {c: t for c, t in (column_tests or {}).items() if c in present}
    tests = {c: t.test for c, t in overrides.items() if t.test is not None}
    limits = {c: t.threshold for c, t in overrides.items() if t.threshold is not None}
    return tests, limits


def _bucket_parts(ts: np.ndarray, buckets: int) -> tuple[np.ndarray, builtins.list[np.ndarray]]:
    """(rows in time order, that order split into up to ``buckets`` runs of equal size)."""
    order = np.argsort(ts, kind="stable")
    parts = [p for p in np.array_split(order, min(buckets, ts.size)) if p.size]
    return order, parts


def _regression_like(head: Sequence[Any]) -> bool:
    """Whether a window's first predictions are a regressor's: floats, none a whole number."""
    return bool(head) and all(isinstance(v, float) and not float(v).is_integer() for v in head)


def _numeric_prediction(schema: Any, out_prefix: str) -> bool:
    """Whether typed rows with these columns predict numbers: an output of several columns
    (probabilities or logits: the prediction is their argmax) or a first output that is a number."""
    import polars as pl

    outs = [name for name in schema.names() if name.startswith(out_prefix)]
    if not outs:
        return False
    groups: dict[str, list[str]] = {}
    for col in outs:
        base, sep, idx = col.rpartition("_")
        groups.setdefault(base if sep and idx.isdigit() else col, []).append(col)
    if any(len(cols) > 1 for cols in groups.values()):
        return True
    dtype = schema[next(iter(groups.values()))[0]]
    return bool(dtype.is_numeric()) and dtype != pl.Boolean
