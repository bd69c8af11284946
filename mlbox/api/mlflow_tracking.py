"""MLflow's tracking REST API (``/api/2.0/mlflow/...``) over mlbox's tracking service.

An unmodified MLflow client with ``MLFLOW_TRACKING_URI`` pointing here and
``MLFLOW_TRACKING_TOKEN`` set to mlbox's token logs into mlbox's own stores:
the runs it makes are mlbox runs (``mlbox runs ls``, the TUI). Translation
rules (ids, milliseconds, statuses, filters) are `mlbox.mlflow.protocol`;
what MLflow has and mlbox does not (experiment tags, logged models) is
`mlbox.mlflow.state`; deleting and restoring runs and experiments is the
tracking service's own. Metric points go through `mlbox.mlflow.intake`
(batched commits), and the two logging routes also have a fast path in front
of Litestar (`mlbox.api.mlflow_fast`).

Bodies are read as plain JSON objects, not strict structs: MLflow's client
adds fields release after release, and MLflow's own server ignores the ones
it does not know, so refusing them would break the next client. Each field
used is checked here and an error names it. The routes stay out of mlbox's
OpenAPI document: their contract is MLflow's protos.
"""

from __future__ import annotations

import math
import posixpath
import time
from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from mlbox.api.mlflow_errors import MLFLOW_EXCEPTION_HANDLERS, both
from mlbox.mlflow import protocol as p
from mlbox.mlflow.intake import intake_for
from mlbox.mlflow.state import LoggedModel, MlflowState, state_for
from mlbox.store.errors import InvalidInput, NotFound
from mlbox.tracking.schemas import Experiment, Run
from mlbox.tracking.service import DEFAULT_EXPERIMENT, TrackingService

Body = dict[str, Any]

HEARTBEAT_EVERY_S = 1.0
_touched: dict[int, float] = {}
"""When each run's heartbeat was last written (monotonic seconds)."""


def _str(data: Body, key: str, *, required: bool = False, default: str = "") -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"Missing value for required parameter '{key}'", field=key)
        return default
    if isinstance(value, (dict, list)):
        raise InvalidInput(f"{key} must be a string", field=key)
    return str(value)


def _run_id(data: JSONBody[Body]) -> int:
    value = data.get("run_id") or data.get("run_uuid")
    return p.int_id(value, "run_id")


def _query(request: Request[Any, Any, Any]) -> Body:
    """GET parameters as a body (a repeated key is a list)."""
    out: Body = {}
    for key in request.query_params:
        values = request.query_params.getall(key)
        out[key] = values if len(values) > 1 else values[0]
    return out


class Mlflow:
    """The MLflow view of the tracking service for one request."""

    def __init__(self, tracking: TrackingService) -> None:
        self.tracking = tracking
        self.state: MlflowState = state_for(tracking.db)
        self.state.adopt_deleted_marks(tracking)  # once per process; then a flag
        self._default_id: int | None = None

    def exp_id(self, ident: int | str) -> str:
        """The MLflow id answered for experiment row ``ident``: ``"0"`` for ``Default``
        (`protocol.experiment_id_out`; its row id read once per request)."""
        if self._default_id is None:
            self._default_id = self.state.default_experiment_id()
        return p.experiment_id_out(ident, self._default_id)

    def stored_id(self, given: object) -> str:
        """The experiment row id (as text, as `mlbox.mlflow.state` keeps it) MLflow's id names."""
        return str(self.experiment(given).id) if str(given) == p.DEFAULT_EXPERIMENT_ID else str(given)

    # -- experiments ---------------------------------------------------------------

    def default_experiment(self) -> Experiment:
        return self.tracking.get_or_create_experiment(DEFAULT_EXPERIMENT)

    def experiment(self, exp_id: object) -> Experiment:
        text = str(exp_id if exp_id is not None else "")
        if text in ("", p.DEFAULT_EXPERIMENT_ID):
            return self.default_experiment()
        ident = p.int_id(text, "experiment_id")
        try:
            return self.tracking.get_experiment(ident)
        except NotFound:
            raise NotFound(f"No Experiment with id={text} exists", field="experiment_id") from None

    def experiment_json(self, exp: Experiment) -> Body:
        return p.experiment_json(
            self.exp_id(exp.id),
            exp.name,
            exp.created_at,
            deleted=exp.deleted_at is not None,
            tags={**self.state.tags("experiment", str(exp.id)),
                  **({"mlflow.note.content": exp.description} if exp.description else {})},
        )  # fmt: skip

    def active_experiment(self, exp_id: object) -> Experiment:
        exp = self.experiment(exp_id)
        if exp.deleted_at is not None:
            raise InvalidInput(f"experiment {exp.id} is deleted: restore it first", field="experiment_id")
        return exp

    # -- runs ----------------------------------------------------------------------

    def run(self, run_id: int) -> Run:
        try:
            return self.tracking.get_run(run_id)
        except NotFound:
            raise NotFound(f"Run with id={run_id} not found", field="run_id") from None

    def run_json(self, run: Run, *, full: bool = False) -> Body:
        end = p.ms(run.end_time)
        if full:
            summaries = self.tracking.metric_keys(run.id)
            metrics = [
                {"key": s.key, "value": _finite(s.last), "timestamp": p.ms(run.heartbeat), "step": s.step}
                for s in summaries
            ]
        else:
            metrics = [
                {"key": k, "value": _finite(v), "timestamp": p.ms(run.heartbeat), "step": 0}
                for k, v in sorted(run.metrics.items())
            ]
        tags = {"mlflow.runName": run.name, **run.tags}
        info: Body = {
            "run_id": str(run.id),
            "run_uuid": str(run.id),
            "run_name": run.name,
            "experiment_id": self.exp_id(run.experiment_id),
            "user_id": run.tags.get("mlflow.user", ""),
            "status": p.status_to_mlflow(run.status),
            "start_time": p.ms(run.start_time),
            "artifact_uri": p.artifact_uri(run.id),
            "lifecycle_stage": "deleted" if run.deleted_at is not None else "active",
        }
        if end is not None:
            info["end_time"] = end
        out: Body = {
            "info": info,
            "data": {"metrics": metrics, "params": p.kv(run.params), "tags": p.kv(tags)},
            "inputs": {},
        }
        if full:
            logged = self.state.logged_models(run_id=run.id)
            out["outputs"] = {"model_outputs": [{"model_id": m.model_id, "step": 0} for m in logged]}
            datasets = self.tracking.list_datasets(run.id)
            out["inputs"] = {
                "dataset_inputs": [
                    {
                        "tags": [{"key": "mlflow.data.context", "value": d.context}],
                        "dataset": {
                            "name": d.name,
                            "digest": d.digest,
                            "source_type": "mlbox",
                            "source": d.source,
                            "schema": "",
                        },
                    }
                    for d in datasets
                ]
            }
        return out

    def touch(self, run_id: int) -> None:
        """A remote run has no process mlbox can watch: the calls it logs are its heartbeat
        (written at most once a second per run: each write is a transaction of its own)."""
        now = time.monotonic()
        if now - _touched.get(run_id, -math.inf) >= HEARTBEAT_EVERY_S:
            self.tracking.heartbeat(run_id)
            _touched[run_id] = now
            if len(_touched) > 10_000:
                _touched.clear()

    def log_batch(self, run_id: int, data: Body) -> None:
        """Params and tags, each one transaction (each checks the run exists), then the points
        through the intake (`mlbox.mlflow.intake`: committed in batches, as the fast path does)."""
        params = p.pairs(data.get("params"), "params")
        tags = p.pairs(data.get("tags"), "tags")
        points = p.metric_points(p.metric_items(data.get("metrics") or []), time.time())
        if params:
            self.tracking.log_params(run_id, dict(params))
        if tags:
            self.tracking.set_tags(run_id, dict(tags))
        self.run(run_id)
        if points:
            intake_for(self.tracking).add(run_id, points)
        if params or tags:
            self.touch(run_id)  # points refresh the heartbeat when they are committed

    def flush(self) -> None:
        """Commit the points the intake holds: what a read answers includes every answered point."""
        intake_for(self.tracking).flush()

    def logged_model_json(self, m: LoggedModel) -> Body:
        return {
            "info": {
                "model_id": m.model_id,
                "experiment_id": self.exp_id(m.experiment_id),
                "name": m.name,
                "artifact_uri": f"{p.artifact_uri(m.run_id)}/{m.artifact_path}",
                "creation_timestamp_ms": p.ms(m.created_at),
                "last_updated_timestamp_ms": p.ms(m.updated_at),
                "model_type": m.model_type,
                "source_run_id": str(m.run_id),
                "status": m.status,
                "tags": p.kv(m.tags),
                "lifecycle_stage": "active",
            },
            "data": {"params": p.kv(m.params), "metrics": []},
        }


def _finite(value: float | None) -> float | str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


class MlflowTrackingController(Controller):
    """Experiments, runs, metrics and MLflow 3's logged models, in MLflow's words."""

    path = "/"
    tags = ("mlflow",)
    exception_handlers = MLFLOW_EXCEPTION_HANDLERS

    # -- experiments -------------------------------------------------------------------

    @post(both("/experiments/create"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def create_experiment(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        name = _str(data, "name", required=True)
        m = Mlflow(tracking)
        exp = tracking.create_experiment(name)
        tags = p.pairs(data.get("tags"), "tags")
        if tags:
            m.state.set_tags("experiment", str(exp.id), tags)
        return {"experiment_id": m.exp_id(exp.id)}

    @get(both("/experiments/get"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_experiment(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> Body:
        m = Mlflow(tracking)
        exp = m.experiment(_str(_query(request), "experiment_id", required=True))
        return {"experiment": m.experiment_json(exp)}

    @get(both("/experiments/get-by-name"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_experiment_by_name(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> Body:
        m = Mlflow(tracking)
        name = _str(_query(request), "experiment_name", required=True)
        try:
            exp = tracking.get_experiment(name)
        except NotFound:
            if name != DEFAULT_EXPERIMENT:
                raise NotFound(
                    f"Could not find experiment with name '{name}'", field="experiment_name"
                ) from None
            exp = m.default_experiment()
        return {"experiment": m.experiment_json(exp)}

    @post(both("/experiments/search"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def search_experiments(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        return _search_experiments(Mlflow(tracking), data)

    @get(both("/experiments/search"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def search_experiments_get(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> Body:
        return _search_experiments(Mlflow(tracking), _query(request))

    @post(both("/experiments/delete"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_experiment(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        exp = m.experiment(_str(data, "experiment_id", required=True))
        if exp.name == DEFAULT_EXPERIMENT:
            raise InvalidInput("Cannot delete the default experiment '0'.", field="experiment_id")
        tracking.delete_experiment(exp.id)  # its runs too, as MLflow does
        return {}

    @post(both("/experiments/restore"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def restore_experiment(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        tracking.restore_experiment(m.experiment(_str(data, "experiment_id", required=True)).id)
        return {}

    @post(both("/experiments/update"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def update_experiment(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        exp = m.experiment(_str(data, "experiment_id", required=True))
        new_name = _str(data, "new_name")
        if new_name:
            tracking.rename_experiment(exp.id, new_name)  # name taken: RESOURCE_ALREADY_EXISTS
        return {}

    @post(
        both("/experiments/set-experiment-tag"), sync_to_thread=True, include_in_schema=False, status_code=200
    )
    def set_experiment_tag(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        exp = m.experiment(_str(data, "experiment_id", required=True))
        key = _str(data, "key", required=True)
        m.state.set_tags("experiment", str(exp.id), {key: _str(data, "value")})
        return {}

    @post(
        both("/experiments/delete-experiment-tag"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def delete_experiment_tag(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        exp = m.experiment(_str(data, "experiment_id", required=True))
        m.state.delete_tag("experiment", str(exp.id), _str(data, "key", required=True))
        return {}

    # -- runs --------------------------------------------------------------------------

    @post(both("/runs/create"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def create_run(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        exp = m.active_experiment(data.get("experiment_id"))
        tags = p.pairs(data.get("tags"), "tags")
        name = _str(data, "run_name") or tags.get("mlflow.runName") or None
        user = _str(data, "user_id")
        if user:
            tags.setdefault("mlflow.user", user)
        tags.pop("mlflow.runName", None)  # the run's name is the run's, not a tag
        start = p.seconds(data.get("start_time"), "start_time")
        run = tracking.create_run(exp.name, name, tags=dict(tags) or None, now=start)
        return {"run": m.run_json(run, full=True)}

    @get(both("/runs/get"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_run(self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]) -> Body:
        m = Mlflow(tracking)
        m.flush()
        return {"run": m.run_json(m.run(_run_id(_query(request))), full=True)}

    @post(both("/runs/update"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def update_run(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        m.flush()  # a run that ends has every point it was answered for
        run_id = _run_id(data)
        run = m.run(run_id)
        name = _str(data, "run_name")
        if name and name != run.name:
            tracking.set_tags(run_id, {"mlflow.runName": name})
        if data.get("status"):
            status = p.status_from_mlflow(data["status"])
            if status == "running":
                m.touch(run_id)
            elif run.status == "running":
                end = p.seconds(data.get("end_time"), "end_time")
                run = tracking.end_run(run_id, status, now=end)
        run = m.run(run_id)
        return {"run_info": m.run_json(run)["info"]}

    @post(both("/runs/delete"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_run(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        m.flush()  # its answered points land before the mark
        tracking.delete_run(m.run(_run_id(data)).id)
        return {}

    @post(both("/runs/restore"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def restore_run(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        tracking.restore_run(Mlflow(tracking).run(_run_id(data)).id)
        return {}

    @post(both("/runs/log-metric"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def log_metric(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        run_id = _run_id(data)
        m.log_batch(run_id, {"metrics": [data]})
        return {}

    @post(both("/runs/log-parameter"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def log_param(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        run_id = _run_id(data)
        m.log_batch(
            run_id, {"params": [{"key": _str(data, "key", required=True), "value": data.get("value")}]}
        )
        return {}

    @post(both("/runs/set-tag"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def set_tag(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        run_id = _run_id(data)
        m.log_batch(run_id, {"tags": [{"key": _str(data, "key", required=True), "value": data.get("value")}]})
        return {}

    @post(both("/runs/delete-tag"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_tag(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        run_id = _run_id(data)
        key = _str(data, "key", required=True)
        run = m.run(run_id)
        if run.deleted_at is not None:  # MLflow's words and code for a run that is not active
            raise InvalidInput(
                f"The run {run_id} must be in the 'active' state. Current state is deleted.", field="run_id"
            )
        try:
            tracking.delete_tag(run_id, key)
        except NotFound:
            raise NotFound(f"No tag with name: {key} in run with id {run_id}", field="key") from None
        m.touch(run_id)
        return {}

    @post(both("/runs/log-batch"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def log_batch(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        Mlflow(tracking).log_batch(_run_id(data), data)
        return {}

    @post(both("/runs/log-inputs"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def log_inputs(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        run_id = _run_id(data)
        m.run(run_id)
        datasets = data.get("datasets") or []
        if not isinstance(datasets, list):
            raise InvalidInput("datasets must be a list", field="datasets")
        for i, item in enumerate(datasets):
            ds = item.get("dataset") if isinstance(item, dict) else None
            if not isinstance(ds, dict):
                raise InvalidInput(f"datasets[{i}].dataset is required", field=f"datasets[{i}].dataset")
            context = p.pairs(item.get("tags"), f"datasets[{i}].tags").get("mlflow.data.context", "training")
            tracking.log_dataset(
                run_id,
                name=_str(ds, "name", required=True),
                digest=_str(ds, "digest"),
                source=_str(ds, "source"),
                rows=None,
                schema={},
                context=context or "training",
            )
        return {}

    @post(both("/runs/outputs"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def log_outputs(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        Mlflow(tracking).run(_run_id(data))  # a logged model already names its run
        return {}

    @post(both("/runs/log-model"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def log_model(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        run_id = _run_id(data)
        Mlflow(tracking).run(run_id)
        model_json = _str(data, "model_json")
        if model_json:
            tracking.set_tags(run_id, {"mlflow.log-model.history": model_json[:5000]})
        return {}

    @post(both("/runs/search"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def search_runs(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        m.flush()
        ids = data.get("experiment_ids") or []
        if isinstance(ids, str):
            ids = [ids]
        names = [m.experiment(i).name for i in ids]
        limit = p.max_results(data.get("max_results"), 1000)
        offset = p.page_offset(data.get("page_token"))
        text = _str(data, "filter")
        clauses = [f"({p.translate_filter(text, m.state.default_experiment_id())})"] if text.strip() else []
        order = p.translate_order_by(data.get("order_by"))
        page = tracking.search_runs(
            " and ".join(clauses),
            order_by=order,
            experiments=names or None,
            limit=limit,
            offset=offset,
            lifecycle=p.lifecycle(data.get("run_view_type")),
        )
        out: Body = {"runs": [m.run_json(r) for r in page.runs]}
        if offset + len(page.runs) < page.total:
            out["next_page_token"] = str(offset + len(page.runs))
        return out

    # -- metrics -----------------------------------------------------------------------

    @get(both("/metrics/get-history"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_metric_history(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> Body:
        query = _query(request)
        run_id = _run_id(query)
        key = _str(query, "metric_key", required=True)
        m = Mlflow(tracking)
        m.run(run_id)
        m.flush()
        try:
            points = tracking.metric_history(run_id, key)
        except NotFound:
            return {"metrics": []}
        offset = p.page_offset(query.get("page_token"))
        limit = p.max_results(query.get("max_results"), len(points) or 1, limit=10**9)
        chosen = points[offset : offset + limit]
        out: Body = {
            "metrics": [
                {"key": key, "value": _finite(pt.value), "timestamp": p.ms(pt.ts), "step": pt.step}
                for pt in chosen
            ]
        }
        if offset + len(chosen) < len(points):
            out["next_page_token"] = str(offset + len(chosen))
        return out

    @get(
        both("/metrics/get-history-bulk-interval"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def get_history_bulk_interval(
        self, tracking: NamedDependency[TrackingService], request: Request[Any, Any, Any]
    ) -> Body:
        query = _query(request)
        ids = query.get("run_ids") or []
        ids = [ids] if isinstance(ids, str) else ids
        key = _str(query, "metric_key", required=True)
        max_points = p.max_results(query.get("max_results"), 320, limit=100_000)
        Mlflow(tracking).flush()
        out: list[Body] = []
        for rid in ids:
            run_id = p.int_id(rid, "run_ids")
            try:
                points = tracking.metric_history(run_id, key, max_points=max_points)
            except NotFound:
                continue
            out.extend(
                {"key": key, "value": _finite(pt.value), "timestamp": p.ms(pt.ts), "step": pt.step,
                 "run_id": str(run_id)}
                for pt in points
            )  # fmt: skip
        return {"metrics": out}

    # -- MLflow 3 logged models --------------------------------------------------------

    @post(both("/logged-models"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def create_logged_model(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        exp = m.active_experiment(data.get("experiment_id"))
        source = data.get("source_run_id")
        if not source:
            raise InvalidInput(
                "mlbox keeps a logged model's files with its run: log it inside a run (mlflow.start_run)",
                field="source_run_id",
            )
        run_id = p.int_id(source, "source_run_id")
        m.run(run_id)
        name = _str(data, "name") or "model"
        if posixpath.normpath(name) != name or name.startswith(("/", ".")):
            raise InvalidInput(f"name {name!r} is not a plain artifact name", field="name")
        model = m.state.create_logged_model(
            experiment_id=str(exp.id),
            run_id=run_id,
            name=name,
            model_type=_str(data, "model_type"),
            params=p.pairs(data.get("params"), "params"),
            tags=p.pairs(data.get("tags"), "tags"),
        )
        return {"model": m.logged_model_json(model)}

    @get(both("/logged-models/{model_id:str}"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_logged_model(self, tracking: NamedDependency[TrackingService], model_id: FromPath[str]) -> Body:
        m = Mlflow(tracking)
        return {"model": m.logged_model_json(m.state.logged_model(model_id))}

    @patch(
        both("/logged-models/{model_id:str}"), sync_to_thread=True, include_in_schema=False, status_code=200
    )
    def finalize_logged_model(
        self, tracking: NamedDependency[TrackingService], model_id: FromPath[str], data: JSONBody[Body]
    ) -> Body:
        m = Mlflow(tracking)
        status = _str(data, "status", default="LOGGED_MODEL_READY")
        if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_PENDING"):
            raise InvalidInput(f"unknown logged model status {status!r}", field="status")
        return {"model": m.logged_model_json(m.state.update_logged_model(model_id, status=status))}

    @delete(
        both("/logged-models/{model_id:str}"), sync_to_thread=True, include_in_schema=False, status_code=200
    )
    def delete_logged_model(
        self, tracking: NamedDependency[TrackingService], model_id: FromPath[str]
    ) -> Body:
        Mlflow(tracking).state.delete_logged_model(model_id)
        return {}

    @patch(
        both("/logged-models/{model_id:str}/tags"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def set_logged_model_tags(
        self, tracking: NamedDependency[TrackingService], model_id: FromPath[str], data: JSONBody[Body]
    ) -> Body:
        m = Mlflow(tracking)
        m.state.logged_model(model_id)
        m.state.set_tags("logged_model", model_id, p.pairs(data.get("tags"), "tags"))
        return {}

    @delete(
        both("/logged-models/{model_id:str}/tags/{tag_key:str}"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def delete_logged_model_tag(
        self, tracking: NamedDependency[TrackingService], model_id: FromPath[str], tag_key: FromPath[str]
    ) -> Body:
        Mlflow(tracking).state.delete_tag("logged_model", model_id, tag_key)
        return {}

    @post(
        both("/logged-models/{model_id:str}/params"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def log_logged_model_params(
        self, tracking: NamedDependency[TrackingService], model_id: FromPath[str], data: JSONBody[Body]
    ) -> Body:
        m = Mlflow(tracking)
        m.state.update_logged_model(model_id, params=p.pairs(data.get("params"), "params"))
        return {}

    @post(both("/logged-models/search"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def search_logged_models(self, tracking: NamedDependency[TrackingService], data: JSONBody[Body]) -> Body:
        m = Mlflow(tracking)
        ids = data.get("experiment_ids") or None
        models = m.state.logged_models(experiment_ids=[m.stored_id(i) for i in ids] if ids else None)
        return {"models": [m.logged_model_json(x) for x in models]}


def _search_experiments(m: Mlflow, data: JSONBody[Body]) -> Body:
    m.default_experiment()  # MLflow always has experiment "0"
    exps = m.tracking.list_experiments(p.lifecycle(data.get("view_type"), "view_type"))
    text = _str(data, "filter").strip()
    if text:
        exps = [e for e in exps if _experiment_matches(e, text)]
    limit = p.max_results(data.get("max_results"), 1000)
    offset = p.page_offset(data.get("page_token"))
    chosen = exps[offset : offset + limit]
    out: Body = {"experiments": [m.experiment_json(e) for e in chosen]}
    if offset + len(chosen) < len(exps):
        out["next_page_token"] = str(offset + len(chosen))
    return out


def _experiment_matches(exp: Experiment, text: str) -> bool:
    return p.name_matches(exp.name, text)
