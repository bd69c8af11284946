"""MLflow's Python API with MLflow's meanings, logging into mlbox: ``import mlbox.mlflow as mlflow``.

A training script written for MLflow runs unchanged but for its import line:
``run.info.run_id``, ``start_run(nested=True, experiment_id=...)``,
``log_metric(..., step=, timestamp=)`` (milliseconds), ``end_run("FINISHED")``,
``search_runs`` returning a pandas DataFrame, ``MlflowClient``,
``mlflow.sklearn.log_model``, ``register_model("runs:/ID/model", name)``,
``pyfunc.load_model("models:/name@alias")`` and ``autolog()``.

Where MLflow and mlbox's own API (``import mlbox``) differ, MLflow's meaning
holds here: ``log_metric`` without ``step`` logs step 0 (mlbox's own counts
up), ``start_run``'s first argument is a run id (mlbox's is a name), ids are
strings, times are milliseconds and statuses upper case. Everything lands in
mlbox's stores (``MLBOX_HOME``), so ``mlbox runs ls``, the TUI and the
registry see it; the REST form of the same API, for MLflow's own client, is
`mlbox.api.mlflow_tracking`.

Heavy imports (pandas, the frameworks) happen inside the functions that need them.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlbox.mlflow import protocol as p
from mlbox.mlflow.entities import Experiment, FileInfo, Metric, ModelInfo, ModelVersion, Run, RunData, RunInfo
from mlbox.mlflow.state import MlflowState, state_for
from mlbox.store.errors import Conflict, InvalidInput, MlboxError, NotFound
from mlbox.tracking import client as _client
from mlbox.tracking.service import DEFAULT_EXPERIMENT, TrackingService
from mlbox.tracking.writer import MetricWriter

if TYPE_CHECKING:
    from mlbox.mlflow.client import MlflowClient
    from mlbox.registry.service import RegistryService

__all__ = [
    "ActiveRun",
    "Experiment",
    "FileInfo",
    "Metric",
    "MlflowClient",
    "MlflowException",
    "ModelInfo",
    "ModelVersion",
    "Run",
    "RunData",
    "RunInfo",
    "active_run",
    "autolog",
    "create_experiment",
    "delete_logged_model_tag",
    "delete_tag",
    "end_run",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "register_model",
    "search_experiments",
    "search_runs",
    "set_experiment",
    "set_experiment_tag",
    "set_experiment_tags",
    "set_logged_model_tags",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]

MlflowException = MlboxError
"""MLflow scripts catch ``mlflow.exceptions.MlflowException``; here mlbox's errors are the same family."""


class _Fluent:
    """The process's MLflow state: the experiment, the stack of active runs, the last one."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.experiment_id: str | None = os.environ.get("MLFLOW_EXPERIMENT_ID")
        self.stack: list[ActiveRun] = []
        self.last: Run | None = None
        self.uri: str | None = None


_fluent = _Fluent()


def _tracking() -> TrackingService:
    tracking = (_client._default or _client.default_client()).tracking
    db = getattr(tracking, "db", None)  # none in a job on a Ray node (tracking over HTTP)
    if db is not None:
        state_for(db).adopt_deleted_marks(tracking)  # an older home's marks, once
    return tracking


def _state() -> MlflowState:
    return state_for(_tracking().db)


def _default_id() -> int | None:
    """The row id of ``Default``, which MLflow's names call ``"0"`` (`protocol.experiment_id_out`)."""
    tracking = _tracking()
    if getattr(tracking, "db", None) is not None:
        return state_for(tracking.db).default_experiment_id()
    try:  # a job on a Ray node: tracking over HTTP
        return int(tracking.get_experiment(DEFAULT_EXPERIMENT).id)
    except NotFound:
        return None


def _run_entity(run: Any) -> Run:
    return Run.of(run, default_id=_default_id())


def _registry() -> RegistryService:
    import mlbox

    return mlbox._registry()


# -- tracking URI -------------------------------------------------------------------------


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def set_tracking_uri(uri: str | Path) -> None:
    """A local folder (or ``file:`` URI) is the mlbox home to log into. A tracking server on this
    machine (``http://127.0.0.1:PORT``, ``localhost``: the URI MLflow's quickstarts set) is this
    machine's mlbox: logging goes straight into its home (``MLBOX_HOME``), which ``mlbox up``
    serves. Another host's URL is refused: a remote mlbox is reached with MLflow's own client
    (``MLFLOW_TRACKING_URI`` and ``MLFLOW_TRACKING_TOKEN``)."""
    from urllib.parse import urlsplit

    text = str(uri)
    if text.startswith(("http://", "https://")):
        if urlsplit(text).hostname not in LOOPBACK:
            raise InvalidInput(
                f"{text!r}: mlbox.mlflow logs into this machine's mlbox home; for another host's server"
                " use MLflow's own client with MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN",
                field="uri",
            )
        with _fluent.lock:
            _fluent.uri = text
        return
    if text.startswith("databricks") or "://" in text.removeprefix("file://"):
        raise InvalidInput(f"{text!r}: mlbox.mlflow logs into an mlbox home (a folder)", field="uri")
    path = text.removeprefix("file://").removeprefix("file:")
    with _fluent.lock:
        _client.set_home(path)
        _fluent.uri = text


def get_tracking_uri() -> str:
    client = _client._default or _client.default_client()
    return _fluent.uri or f"file:{client.settings.home}"


# -- experiments -----------------------------------------------------------------------------


def _experiment_of(exp_id: str | None) -> Any:
    tracking = _tracking()
    if exp_id in (None, "", p.DEFAULT_EXPERIMENT_ID):
        return tracking.get_or_create_experiment(DEFAULT_EXPERIMENT)
    try:
        return tracking.get_experiment(p.int_id(exp_id, "experiment_id"))
    except NotFound:
        raise NotFound(f"No Experiment with id={exp_id} exists", field="experiment_id") from None


def _entity(exp: Any) -> Experiment:
    state = _state()
    return Experiment.of(exp, tags=state.tags("experiment", str(exp.id)), default_id=_default_id())


def create_experiment(
    name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    exp = _tracking().create_experiment(name)
    if tags:
        _state().set_tags("experiment", str(exp.id), {k: str(v) for k, v in tags.items()})
    return p.experiment_id_out(exp.id, _default_id())


def get_experiment(experiment_id: str) -> Experiment:
    return _entity(_experiment_of(experiment_id))


def get_experiment_by_name(name: str) -> Experiment | None:
    try:
        return _entity(_tracking().get_experiment(name))
    except NotFound:
        return None


def search_experiments(
    view_type: int | str = 1,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[Experiment]:
    """MLflow's signature: the view type first (``ACTIVE_ONLY`` = 1, ``DELETED_ONLY`` = 2, ``ALL`` = 3)."""
    found = [_entity(e) for e in _tracking().list_experiments(p.lifecycle(view_type, "view_type"))]
    if filter_string:
        found = [e for e in found if p.name_matches(e.name, filter_string)]
    return found[:max_results] if max_results else found


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """The experiment later runs go to, created by name on first use (MLflow's meaning)."""
    if experiment_name is None and experiment_id is None:
        raise InvalidInput("give experiment_name or experiment_id", field="experiment_name")
    exp = (
        _tracking().get_or_create_experiment(experiment_name)
        if experiment_name
        else _experiment_of(experiment_id)
    )
    if exp.deleted_at is not None:
        raise InvalidInput(f"experiment {exp.name!r} is deleted: restore it first", field="experiment_name")
    _fluent.experiment_id = str(exp.id)
    return _entity(exp)


# -- runs ---------------------------------------------------------------------------------------


class ActiveRun(Run):
    """The run being logged to (MLflow's ``ActiveRun``): a context manager that ends it."""

    def __init__(self, run: Run, writer: MetricWriter) -> None:
        super().__init__(run.info, run.data)
        object.__setattr__(self, "writer", writer)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        status = (
            "FINISHED"
            if exc_type is None
            else "KILLED"
            if issubclass(exc_type, KeyboardInterrupt)
            else "FAILED"
        )
        end_run(status)


def _writer(run_id: int) -> MetricWriter:
    tracking = _tracking()
    client = _client._default or _client.default_client()
    return MetricWriter(
        lambda rows: tracking.log_metrics(run_id, rows),
        lambda: tracking.heartbeat(run_id),
        heartbeat_s=client.settings.heartbeat_s,
    )


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a run, or resume ``run_id``; a run inside an active one needs ``nested=True``."""
    import socket

    tracking = _tracking()
    with _fluent.lock:
        if _fluent.stack and not nested:
            raise Conflict(
                f"Run with UUID {_fluent.stack[-1].info.run_id} is already active. To start a nested run,"
                " call start_run with nested=True",
                field="nested",
            )
        all_tags: dict[str, object] = {k: str(v) for k, v in (tags or {}).items()}
        parent = parent_run_id or (_fluent.stack[-1].info.run_id if _fluent.stack else None)
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        if description:
            all_tags["mlflow.note.content"] = description
        if run_id is not None:
            rid = p.int_id(run_id, "run_id")
            run = tracking.attach_run(rid, host=socket.gethostname(), pid=os.getpid(), pid_started=None)
            if all_tags:
                tracking.set_tags(rid, all_tags)
        else:
            exp = _experiment_of(experiment_id or _fluent.experiment_id)
            all_tags.setdefault("mlflow.user", os.environ.get("USER", ""))
            run = tracking.create_run(
                exp.name,
                run_name or str(all_tags.pop("mlflow.runName", "")) or None,
                tags=all_tags,
                host=socket.gethostname(),
                pid=os.getpid(),
            )
        active = ActiveRun(_run_entity(tracking.get_run(run.id)), _writer(run.id))
        _fluent.stack.append(active)
        return active


def active_run() -> ActiveRun | None:
    return _fluent.stack[-1] if _fluent.stack else None


def last_active_run() -> Run | None:
    return _fluent.stack[-1] if _fluent.stack else _fluent.last


_before_end: list[Callable[[str, str], None]] = []
"""Called with (run id, MLflow status) before a run ends, while it is still the active one
(autologging logs the trained model there: `mlbox.mlflow.pytorch`)."""


def end_run(status: str = "FINISHED") -> None:
    """End the innermost active run with MLflow's status (``FINISHED``, ``FAILED``, ``KILLED``)."""
    mlbox_status = p.status_from_mlflow(status)
    if mlbox_status == "running":
        raise InvalidInput("a run cannot end as RUNNING", field="status")
    with _fluent.lock:
        if not _fluent.stack:
            return
        active = _fluent.stack[-1]
        rid = int(active.info.run_id)
        try:
            for hook in list(_before_end):
                hook(active.info.run_id, str(status).upper())
        finally:
            _fluent.stack.pop()
            try:
                active.writer.close()  # type: ignore[attr-defined]
            finally:
                _tracking().end_run(rid, mlbox_status)
        _fluent.last = _run_entity(_tracking().get_run(rid))


@atexit.register
def _end_runs_at_exit() -> None:
    """MLflow ends the runs a script left open when it exits: FINISHED, or FAILED after an
    uncaught exception; their buffered points are committed first."""
    import sys

    status = "FAILED" if getattr(sys, "last_value", None) is not None else "FINISHED"
    while _fluent.stack:
        try:
            end_run(status)
        except Exception as exc:  # the interpreter is going away: say why, do not raise
            print(f"mlbox.mlflow: could not end run at exit: {exc}", file=sys.stderr)
            _fluent.stack.pop()


def _active_id(run_id: str | None = None) -> int:
    if run_id is not None:
        return p.int_id(run_id, "run_id")
    if not _fluent.stack:
        start_run()  # MLflow starts a run on the first log call
    return int(_fluent.stack[-1].info.run_id)


def get_run(run_id: str) -> Run:
    rid = p.int_id(run_id, "run_id")
    return _run_entity(_tracking().get_run(rid))


# -- logging ------------------------------------------------------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    **_ignored: Any,
) -> None:
    """One point; ``step`` defaults to 0 and ``timestamp`` (milliseconds) to now, as in MLflow."""
    from mlbox.tracking.validation import check_key, check_step, check_value

    rid = _active_id(run_id)
    ts = time.time() if timestamp is None else float(timestamp) / 1000.0
    point = (check_key(key, "metric"), check_step(key, step or 0), ts, check_value(key, value))
    active = _fluent.stack[-1] if _fluent.stack and int(_fluent.stack[-1].info.run_id) == rid else None
    if active is None or synchronous:
        if active is not None:
            active.writer.flush()  # type: ignore[attr-defined]
        _tracking().log_points(rid, [point])
    else:
        active.writer.add(point[0], point[1], point[2], point[3])  # type: ignore[attr-defined]


def log_metrics(
    metrics: Mapping[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    **_ignored: Any,
) -> None:
    for key, value in metrics.items():
        log_metric(key, value, step=step, synchronous=synchronous, timestamp=timestamp, run_id=run_id)


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    _tracking().log_params(_active_id(), {key: value})
    return value


def log_params(params: Mapping[str, Any], synchronous: bool | None = None, run_id: str | None = None) -> None:
    _tracking().log_params(_active_id(run_id), dict(params))


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _tracking().set_tags(_active_id(), {key: str(value)})


def set_tags(tags: Mapping[str, Any], synchronous: bool | None = None) -> None:
    _tracking().set_tags(_active_id(), {k: str(v) for k, v in tags.items()})


def delete_tag(key: str) -> None:
    """Remove a tag of the active run (MLflow's ``mlflow.delete_tag``): `NotFound` when it has none."""
    _tracking().delete_tag(_active_id(), key)


def log_artifact(local_path: str | Path, artifact_path: str | None = None, run_id: str | None = None) -> None:
    _tracking().log_artifact(_active_id(run_id), local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None, run_id: str | None = None) -> None:
    """The folder's contents (not the folder itself) under ``artifact_path``, as MLflow does."""
    folder = Path(local_dir)
    if not folder.is_dir():
        raise NotFound(f"no such folder: {folder}", field="local_dir")
    rid = _active_id(run_id)
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            sub = f"{artifact_path}/{child.name}" if artifact_path else child.name
            _tracking().log_artifact(rid, child, sub)
        else:
            _tracking().log_artifact(rid, child, artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    _tracking().log_artifact_bytes(_active_id(run_id), artifact_file, text.encode())


def log_dict(dictionary: Mapping[str, Any], artifact_file: str, run_id: str | None = None) -> None:
    """JSON, or YAML when the file ends with ``.yaml``/``.yml`` (MLflow's rule)."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dict(dictionary), sort_keys=False)
    else:
        text = json.dumps(dictionary, indent=2, default=str)
    log_text(text, artifact_file, run_id)


def log_figure(
    figure: Any,
    artifact_file: str,
    *,
    save_kwargs: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> None:
    """A matplotlib figure (``savefig``) or a plotly one (``write_html``/``write_image``)."""
    import io

    suffix = Path(artifact_file).suffix.lstrip(".") or "png"
    buf = io.BytesIO()
    if hasattr(figure, "savefig"):
        figure.savefig(buf, format=suffix, **dict(save_kwargs or {}))
        data = buf.getvalue()
    elif hasattr(figure, "write_html") and suffix == "html":
        data = figure.to_html(include_plotlyjs=False).encode()
    else:
        raise InvalidInput(f"cannot save a {type(figure).__name__} as {artifact_file!r}", field="figure")
    _tracking().log_artifact_bytes(_active_id(run_id), artifact_file, data)


def log_image(image: Any, artifact_file: str | None = None, *, key: str | None = None,
              step: int | None = None, run_id: str | None = None, **_: Any) -> None:  # fmt: skip
    """A numpy array (HxW, HxWx3 or HxWx4; floats in 0..1 or uint8) or a PIL image, as PNG."""
    import io

    import numpy as np
    from PIL import Image

    if artifact_file is None:
        if key is None:
            raise InvalidInput("give artifact_file (or key)", field="artifact_file")
        artifact_file = f"images/{key}/step_{step or 0}.png"
    if not isinstance(image, Image.Image):
        arr = np.asarray(image)
        if arr.dtype.kind == "f":
            arr = (np.clip(arr, 0.0, 1.0) * 255).round()
        try:
            image = Image.fromarray(arr.astype(np.uint8))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot make an image of shape {arr.shape}: {exc}", field="image") from None
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    _tracking().log_artifact_bytes(_active_id(run_id), artifact_file, buf.getvalue())


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    """A dict of columns or a pandas frame as MLflow's table JSON (``{"columns", "data"}``)."""
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(dict(data))
    body = {"columns": [str(c) for c in frame.columns], "data": json.loads(frame.to_json(orient="values"))}
    log_text(json.dumps(body), artifact_file, run_id)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """Where the active run's artifacts are, as a URI ``pyfunc.load_model`` and ``register_model`` read."""
    rid = _active_id()
    return f"runs:/{rid}/{artifact_path}" if artifact_path else f"runs:/{rid}"


def set_experiment_tag(key: str, value: Any) -> None:
    set_experiment_tags({key: value})


def set_experiment_tags(tags: Mapping[str, Any]) -> None:
    """Tags on the current experiment (``set_experiment``'s, else the default one)."""
    exp = _experiment_of(_fluent.experiment_id)
    _state().set_tags("experiment", str(exp.id), {k: str(v) for k, v in tags.items()})


def log_input(
    dataset: Any, context: str | None = None, tags: Mapping[str, str] | None = None, model: Any = None
) -> None:
    """A dataset (``mlbox.mlflow.data.from_pandas``/``from_numpy``, or anything with name, digest
    and source) recorded with the run, as ``mlbox.log_dataset`` records it."""
    from mlbox.mlflow.data import Dataset

    ds = dataset if isinstance(dataset, Dataset) else Dataset.of(dataset)
    _tracking().log_dataset(
        _active_id(),
        name=ds.name,
        digest=ds.digest,
        source=ds.source,
        rows=ds.rows,
        schema=ds.schema,
        context=context or (tags or {}).get("mlflow.data.context") or "training",
    )


# -- search -------------------------------------------------------------------------------------


def search_runs(
    experiment_ids: list[str] | None = None,
    filter_string: str = "",
    run_view_type: int | str = 1,
    max_results: int = 100_000,
    order_by: list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
) -> Any:
    """Runs as a pandas DataFrame (``run_id``, ``status``, ``metrics.*``, ``params.*``, ``tags.*``),
    or a list of `Run` with ``output_format="list"``. Without experiments, the current one."""
    tracking = _tracking()
    names = list(experiment_names or [])
    names += [_experiment_of(i).name for i in experiment_ids or []]
    if not names and not search_all_experiments:
        names = [_experiment_of(_fluent.experiment_id).name]
    default_id = _default_id()
    clauses = [f"({p.translate_filter(filter_string, default_id)})"] if filter_string.strip() else []
    runs: list[Run] = []
    offset = 0
    while len(runs) < max_results:
        page = tracking.search_runs(
            " and ".join(clauses),
            order_by=p.translate_order_by(order_by),
            experiments=names or None,
            limit=min(50_000, max_results - len(runs)),
            offset=offset,
            lifecycle=p.lifecycle(run_view_type),
        )
        runs.extend(Run.of(r, default_id=default_id) for r in page.runs)
        offset += len(page.runs)
        if not page.runs or offset >= page.total:
            break
    if output_format == "list":
        return runs
    return _frame(runs)


def _frame(runs: list[Run]) -> Any:
    import pandas as pd

    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "run_id": r.info.run_id,
            "experiment_id": r.info.experiment_id,
            "status": r.info.status,
            "artifact_uri": r.info.artifact_uri,
            "start_time": pd.to_datetime(r.info.start_time, unit="ms", utc=True),
            "end_time": None
            if r.info.end_time is None
            else pd.to_datetime(r.info.end_time, unit="ms", utc=True),
        }
        row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in r.data.params.items()})
        row.update({f"tags.{k}": v for k, v in r.data.tags.items()})
        rows.append(row)
    columns = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    return pd.DataFrame(rows, columns=None if rows else columns)


# -- models --------------------------------------------------------------------------------------


def register_model(
    model_uri: str, name: str, tags: Mapping[str, Any] | None = None, **_ignored: Any
) -> ModelVersion:
    """``runs:/<run id>/<path>`` becomes a new version of ``name`` (MLflow's signature)."""
    run_id, path = p.parse_source(model_uri, None)
    mv = _registry().register(name, run_id=run_id, artifact_path=path)
    if tags:
        _state().set_tags("version", f"{mv.name}/{mv.version}", {k: str(v) for k, v in tags.items()})
    return ModelVersion.of(mv)


def set_logged_model_tags(model_id: str, tags: Mapping[str, Any]) -> None:
    """Tags on an MLflow 3 logged model (``ModelInfo.model_id``)."""
    state = _state()
    state.logged_model(model_id)
    state.set_tags("logged_model", model_id, {k: str(v) for k, v in tags.items()})


def delete_logged_model_tag(model_id: str, key: str) -> None:
    _state().delete_tag("logged_model", model_id, key)


def autolog(log_models: bool = True, disable: bool = False, **kwargs: Any) -> None:
    """MLflow's ``mlflow.autolog()``: scikit-learn (`mlbox.mlflow.sklearn.autolog`) when it is
    installed, and plain PyTorch loops (`mlbox.mlflow.pytorch.autolog`) when torch is already
    imported (importing torch here would cost every other script seconds; call
    ``mlflow.pytorch.autolog()`` to turn it on before)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("sklearn") is not None:
        from mlbox.mlflow import sklearn

        sklearn.autolog(log_models=log_models, disable=disable)
    if "torch" in sys.modules:
        from mlbox.mlflow import pytorch

        pytorch.autolog(log_models=log_models, disable=disable)


def __getattr__(name: str) -> Any:
    """``MlflowClient`` and the flavor modules on first use (they import more)."""
    import importlib

    if name == "MlflowClient":
        from mlbox.mlflow.client import MlflowClient

        return MlflowClient
    if name in ("sklearn", "pytorch", "pyfunc", "data", "models", "client", "tracking"):
        target = "client" if name == "tracking" else name
        return importlib.import_module(f"mlbox.mlflow.{target}")
    raise AttributeError(f"module 'mlbox.mlflow' has no attribute {name!r}")


def _log_model_folder(folder: Path, name: str, run_id: str | None = None) -> str:
    rid = _active_id(run_id)
    _tracking().log_artifact(rid, folder, name)
    return str(rid)


def _temp() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="mlbox-mlflow-")
