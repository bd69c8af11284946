"""Batch scoring on a Ray cluster: ``mlbox predict ... --executor ray`` (issue 19).

The Parquet input is split across the cluster by Ray Data, a row group a block
(``map_batches`` with a callable class, so each worker loads the model once, and
reads and scores the row groups it is given), and the scored groups come back to
one driver that writes them in the input's order (Ray Data kept the order of
2,000,000 rows here but not of 10,000,000, so the driver does) into one Parquet file,
renamed into place only when whole, as the local `mlbox.serving.batch.score_file`
does. Its columns are the local ones (the inputs kept, then `prediction_columns`).

The driver is a Ray job (submitted through the Jobs API, as the scheduler submits
jobs: `mlbox.scheduler.ray_executor`), so the cluster need not reach the appliance's
home. What it needs travels in a bundle folder beside the output: the version's
record (from the registry) and copies of its files taken from the verified cache.
A worker loads them through the registry's own loader: the files go into a private
artifact store, `ModelCache.materialize` checks every one against the sha256 the
registry recorded, and `flavors.load_model` loads the verified folder. So the input,
the output's folder and the bundle must be paths the cluster's nodes reach (a shared
filesystem, or this machine when the head is on loopback).

``ray`` is imported only in the driver and the workers, never by ``mlbox predict``'s
local path.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import msgspec

from mlbox.registry import flavors
from mlbox.registry.cache import ModelCache, cache_key
from mlbox.registry.loaded import LoadedModel
from mlbox.registry.schemas import ModelFile, ModelVersion
from mlbox.store.artifacts import ArtifactStore
from mlbox.store.errors import InvalidInput, MlboxError

if TYPE_CHECKING:
    import pyarrow as pa

    from mlbox.serving.batch import BatchOptions, BatchResult

MISSING = "__mlbox_missing__"
"""A worker's count of rows with a missing input, carried as a column the driver drops."""
GROUP = "__mlbox_group__"
"""The input row group a scored row came from (Ray Data need not keep the order: the driver does)."""
RESULT = "result.json"
POLL_S = 0.2


@dataclass(frozen=True)
class Task:
    """What the driver is told (``task.json`` in the bundle)."""

    input: str
    output: str
    batch_size: int
    keep_inputs: bool
    columns: list[str] | None
    prediction_column: str
    workers: int | None


# -- the appliance's side: bundle, submit, wait -----------------------------------------------------


def check(input_path: Path, model: LoadedModel, options: BatchOptions) -> None:
    """What the Ray path cannot do, refused before anything is submitted."""
    if input_path.suffix.lower() != ".parquet":
        raise InvalidInput(f"{input_path}: --executor ray reads Parquet (Ray Data splits it)", field="input")
    if model.version.manifest.get("features"):
        raise InvalidInput(
            "a model that looks its features up by entity scores on this machine only; drop --executor ray",
            field="executor",
        )
    if not model.version.files:
        raise InvalidInput(
            f"{model.version.ref} has no files of its own (a composed model); drop --executor ray",
            field="executor",
        )
    if options.timestamp_column is not None or options.online or options.allow_missing:
        raise InvalidInput("feature-view options do not apply with --executor ray", field="executor")


def bundle(folder: Path, input_path: Path, output: Path, model: LoadedModel, options: BatchOptions) -> None:
    """The driver's task and the model (its record and verified files) in ``folder``."""
    files = folder / "model"
    for f in model.version.files:
        dest = files / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.folder / f.path, dest)
    (folder / "version.json").write_bytes(msgspec.json.encode(model.version))
    task = Task(
        input=str(input_path.resolve()),
        output=str(output.resolve()),
        batch_size=options.batch_size,
        keep_inputs=options.keep_inputs,
        columns=list(options.columns) if options.columns is not None else None,
        prediction_column=options.prediction_column,
        workers=None,
    )
    (folder / "task.json").write_text(json.dumps(asdict(task)))


def score_on_ray(
    executor: str,
    input_path: Path,
    output: Path,
    model: LoadedModel,
    options: BatchOptions,
    *,
    timeout_s: float | None = None,
) -> BatchResult:
    """Score ``input_path`` on the Ray cluster ``executor`` (``ray://HOST:PORT``) into ``output``.

    Errors: `InvalidInput` for what the Ray path cannot do (`check`), `MlboxError` with the end
    of the Ray job's log when it failed; the output is then left as it was."""
    from mlbox.scheduler.ray_executor import RayExecutor
    from mlbox.serving.batch import BatchResult

    check(input_path, model, options)
    ray = RayExecutor(executor)
    folder = output.parent / f".{output.name}.ray-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o700)
    try:
        bundle(folder, input_path, output, model, options)
        sid = f"mlbox-predict-{uuid.uuid4().hex[:12]}"
        entrypoint = f"python -m mlbox.serving.batch_ray {shlex.quote(str(folder))}"
        ray.submit(sid, entrypoint, {"runtime_env": {"env_vars": {"PYTHONUNBUFFERED": "1"}}})
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            info = ray.info(sid)
            if info is not None and info.status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            if deadline is not None and time.monotonic() > deadline:
                ray.stop(sid)
                raise MlboxError(f"batch scoring on Ray ({sid}) did not end within {timeout_s:g} s")
            time.sleep(POLL_S)
        if info.status != "SUCCEEDED":
            tail = ray.logs(sid).strip().splitlines()[-8:]
            raise MlboxError(f"batch scoring on Ray ({sid}) {info.status.lower()}: " + " | ".join(tail))
        said = json.loads((folder / RESULT).read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return BatchResult(int(said["rows"]), output, None, int(said["rows_with_missing"]))


# -- the cluster's side: the driver and its workers -----------------------------------------------


def load_bundled(folder: Path, scratch: Path) -> LoadedModel:
    """The bundled version, loaded as the registry loads it: its files into a private store,
    then `ModelCache.materialize` (each checked against the sha256 the registry recorded)."""
    version = msgspec.json.decode((folder / "version.json").read_bytes(), type=ModelVersion)
    store = ArtifactStore(scratch / "objects")
    for f in version.files:
        store.put_file(folder / "model" / f.path)  # stored under its actual sha256
    cache = ModelCache(scratch / "cache", store)
    label = f"model {version.name!r} version {version.version}"
    files: list[ModelFile] = list(version.files)
    verified = cache.materialize(cache_key(version.manifest, files), files, label)
    predictor = flavors.load_model(verified, version.manifest, device="cpu")
    return LoadedModel(version=version, predictor=predictor, folder=verified)


class Worker:
    """One per Ray Data worker: loads the model once, then scores the batches it is given."""

    def __init__(self, folder: str, task: dict[str, Any]) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="mlbox-ray-model-"))
        self.model = load_bundled(Path(folder), self.scratch)
        self.task = Task(**task)

    def __call__(self, items: pa.Table) -> pa.Table:
        """Score the row groups named by ``items`` (column ``group``), each read from the input
        here and tagged with its number, so the driver can write them in the input's order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = pq.ParquetFile(self.task.input)
        parts = []
        for group in items.column("group").to_pylist():
            rows = source.read_row_group(group)
            for start in range(0, rows.num_rows, self.task.batch_size):
                scored = self.score(rows.slice(start, self.task.batch_size))
                parts.append(scored.append_column(GROUP, pa.array([group] * scored.num_rows, pa.int64())))
        return pa.concat_tables(parts)

    def score(self, batch: pa.Table) -> pa.Table:
        import polars as pl
        import pyarrow as pa

        from mlbox.serving.batch import prediction_columns
        from mlbox.serving.batch_inputs import missing_rows, model_inputs

        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        features = frame.select(self.task.columns) if self.task.columns is not None else frame
        signature = self.model.signature
        inputs = model_inputs(features, signature.inputs if signature else None, 0)
        missing = int(missing_rows(inputs).sum())
        preds = prediction_columns(self.model.predict(inputs), self.task.prediction_column, batch.num_rows)
        if self.task.keep_inputs:
            table = batch
            for name, values in preds.items():
                if name in batch.schema.names:
                    raise InvalidInput(
                        f"{name}: the input already has this column; name the predictions with "
                        "--prediction-column, or drop the inputs with --no-keep-inputs",
                        field=name,
                    )
                table = table.append_column(name, values)
        else:
            table = pa.table(preds)
        marks = [0] * batch.num_rows
        if marks:
            marks[0] = missing
        return table.append_column(MISSING, pa.array(marks, pa.int64()))


def drive(folder: Path) -> dict[str, int]:
    """The Ray job's entrypoint: read, score across the cluster, write one file in order."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        import ray
        import ray.data
    except ImportError:  # the job runs where the cluster's Python is: say what it lacks
        raise SystemExit(
            "mlbox predict --executor ray: this Ray node has no ray[data]: pip install 'mlbox[ray]'"
        ) from None

    task = Task(**json.loads((folder / "task.json").read_text()))
    ray.init(logging_level=logging.WARNING, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    meta = pq.ParquetFile(task.input).metadata
    expected = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    groups = [{"group": g} for g, n in enumerate(expected) if n]
    if not groups:
        raise InvalidInput(f"{task.input} has no rows to score", field="input")
    ds = ray.data.from_items(groups, override_num_blocks=len(groups))  # one row group a block
    cpus = int(ray.cluster_resources().get("CPU", 1))
    scored = ds.map_batches(
        Worker,
        fn_constructor_kwargs={"folder": str(folder), "task": asdict(task)},
        batch_size=1,
        batch_format="pyarrow",
        concurrency=(1, task.workers or max(1, cpus)),
        num_cpus=1,
    )
    output = Path(task.output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    writer: Any = None
    rows = missing = 0
    waiting: dict[int, list[pa.Table]] = {}  # scored parts of groups that came early
    seen = [0] * len(expected)
    following = next((g for g, n in enumerate(expected) if n), len(expected))
    try:
        for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
            table = cast("pa.Table", batch)
            for group in sorted(set(table.column(GROUP).to_pylist())):
                part = table.filter(pc.equal(table.column(GROUP), group))
                waiting.setdefault(group, []).append(part)
                seen[group] += part.num_rows
            while following < len(expected) and seen[following] == expected[following]:
                for part in waiting.pop(following, []):
                    missing += int(part.column(MISSING).to_numpy().sum())
                    part = part.drop_columns([MISSING, GROUP])
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, part.schema)
                    writer.write_table(part.cast(writer.schema))
                    rows += part.num_rows
                following += 1
                while following < len(expected) and not expected[following]:
                    following += 1
        if writer is None or following < len(expected):
            raise MlboxError(f"scored {rows} of {sum(expected)} rows of {task.input}; nothing written")
        writer.close()
        writer = None
        os.replace(tmp, output)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    said = {"rows": rows, "rows_with_missing": missing}
    (folder / RESULT).write_text(json.dumps(said))
    return said


if __name__ == "__main__":
    # through the module's own name, so the workers import `Worker` rather than unpickle a copy
    from mlbox.serving import batch_ray

    print(json.dumps(batch_ray.drive(Path(sys.argv[1]))))
