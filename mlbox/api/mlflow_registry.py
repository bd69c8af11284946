"""MLflow's model registry REST API over mlbox's registry.

``mlflow.register_model("runs:/ID/model", name)`` ends here as
``create_model_version`` with the run's artifact folder as its source: the
folder (an MLflow model directory, ``MLmodel`` and the framework's files) is
registered as a real mlbox version with the mlbox flavor ``mlbox models import``
would choose (`mlbox.registry.mlflow_flavors.choose`, one table for both), its
input example run once to give the signature, so ``mlbox up`` serves it under
its aliases like any other version. A flavor whose loading unpickles needs the
trust ``--trust`` gives the CLI: here the version tag ``mlbox.trust`` = ``true``.

mlbox versions never change (serving and lineage rely on that), so MLflow's
update of a version's description is refused with a message saying so.
Deleting a version or a whole model, and renaming a model, are the registry's
own, with its refusals (409 naming the alias or composed model that still needs it). A stage
transition moves the alias of the stage's name (``Production`` → alias
``production``), MLflow's own advice since 2.9.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from mlbox.api.mlflow_errors import MLFLOW_EXCEPTION_HANDLERS, both
from mlbox.api.mlflow_tracking import Body, _query, _str
from mlbox.mlflow import protocol as p
from mlbox.mlflow.state import MlflowState, state_for
from mlbox.registry.flavors import read_manifest
from mlbox.registry.mlflow_flavors import TRUST_TAG, choose, refuse_untrusted
from mlbox.registry.mlflow_format import example_input, load_skops, read_mlmodel
from mlbox.registry.refs import check_name
from mlbox.registry.schemas import Model, ModelVersion
from mlbox.registry.service import RegistryService
from mlbox.registry.staging import stage_run_artifacts
from mlbox.store.errors import Conflict, InvalidInput, NotFound

UNTRUSTED_HOW = (
    "Register it only if you trust where it came from: mlflow.register_model(uri, name,"
    f" tags={{'{TRUST_TAG}': 'true'}}), or import its directory with mlbox models import DIR --name NAME --trust"
)
"""How a caller of MLflow's REST API says it trusts a pickled model (`TRUST_TAG`)."""


def version_json(mv: ModelVersion, tags: dict[str, str]) -> Body:
    source = mv.lineage.source
    if source.startswith("run:"):
        run, _, path = source[4:].partition("/")
        source = f"{p.artifact_uri(int(run))}/{path}"
    out: Body = {
        "name": mv.name,
        "version": str(mv.version),
        "creation_timestamp": p.ms(mv.created_at),
        "last_updated_timestamp": p.ms(mv.created_at),
        "current_stage": "None",
        "description": mv.description,
        "source": source,
        "status": "READY",
        "tags": p.kv(tags),
        "aliases": list(mv.aliases),
    }
    if mv.run_id is not None:
        out["run_id"] = str(mv.run_id)
    return out


def _example(folder: Path, mlmodel: dict[str, Any]) -> Any:
    """The directory's input example cast to its signature; None when mlbox cannot read it (the
    version is then registered without a signature rather than refused)."""
    try:
        return example_input(folder, mlmodel)
    except (ValueError, TypeError, KeyError, IndexError, InvalidInput):
        return None


class Registry:
    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry
        self.state: MlflowState = state_for(registry.db)

    def model_exists(self, name: str) -> bool:
        try:
            self.registry.get_model(name)
            return True
        except NotFound:
            return bool(self.state.announced(name))

    def model_json(self, name: str) -> Body:
        check_name(name)
        tags = self.state.tags("model", name)
        try:
            model: Model | None = self.registry.get_model(name)
        except NotFound:
            model = None
        if model is None:
            announced = self.state.announced(name)
            if not announced:
                raise NotFound(f"Registered Model with name={name} not found", field="name")
            description, created = announced[name]
            return {
                "name": name,
                "creation_timestamp": p.ms(created),
                "last_updated_timestamp": p.ms(created),
                "description": description,
                "tags": p.kv(tags),
                "aliases": [],
                "latest_versions": [],
            }
        out: Body = {
            "name": name,
            "creation_timestamp": p.ms(model.created_at),
            "last_updated_timestamp": p.ms(model.created_at),
            "description": model.description,
            "tags": p.kv(tags),
            "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(model.aliases.items())],
        }
        if model.latest_version is not None:
            out["latest_versions"] = [
                self.version_json(self.registry.get_version(name, model.latest_version))
            ]
        return out

    def version_json(self, mv: ModelVersion) -> Body:
        return version_json(mv, self.state.tags("version", f"{mv.name}/{mv.version}"))

    def version(self, data: JSONBody[Body]) -> ModelVersion:
        name = _str(data, "name", required=True)
        raw = _str(data, "version", required=True)
        if not raw.isdigit():
            raise InvalidInput(f"version must be a positive integer, got {raw!r}", field="version")
        try:
            return self.registry.get_version(name, int(raw))
        except NotFound:
            raise NotFound(f"Model Version (name={name}, version={raw}) not found", field="version") from None

    def create_version(self, data: Body) -> ModelVersion:
        """A run's MLflow model directory as a new version, chosen as ``mlbox models import``
        chooses (`mlbox.registry.mlflow_flavors.choose`: every flavor mlbox imports); a pickled
        flavor only with the `TRUST_TAG` tag, MLflow's skops sklearn without it. The run's files
        are staged (verified) to read them, then registered from the run, which keeps the lineage."""
        name = _str(data, "name", required=True)
        run_id, path = p.parse_source(_str(data, "source", required=True), _str(data, "run_id") or None)
        tags = p.pairs(data.get("tags"), "tags")
        trusted = tags.get(TRUST_TAG, "").strip().lower() == "true"
        description = _str(data, "description")
        tracking = self.registry.tracking
        files = {a.path for a in tracking.list_artifacts(run_id)}
        if f"{path}/MLmodel" not in files:
            if f"{path}/mlbox-model.json" not in files:
                raise InvalidInput(
                    f"run {run_id} has no model at {path!r} (no MLmodel file there)", field="source"
                )
            # a folder mlbox's own client logged: registered as `mlbox models register --run` does
            mv = self.registry.register(name, run_id=run_id, artifact_path=path, description=description)
        else:
            with tempfile.TemporaryDirectory(prefix="mlbox-mlflow-version-") as tmp:
                folder = Path(tmp) / "model"
                folder.mkdir()
                stage_run_artifacts(tracking, self.registry.artifacts, run_id, path, folder)
                mlmodel = read_mlmodel(folder)
                example = _example(folder, mlmodel)
                sk = mlmodel["flavors"].get("sklearn") or {}
                if sk.get("serialization_format") == "skops":  # loads no pickle: no trust needed
                    model = load_skops((folder / str(sk.get("pickled_model") or "model.skops")).read_bytes())
                    mv = self.registry.register(
                        name,
                        run_id=run_id,
                        model=model,
                        example_input=example,
                        description=description,
                        read_from=path,  # lineage: the run's files, as `mlbox models register --run`
                    )
                else:
                    chosen = choose(folder, mlmodel, read_manifest(folder))
                    refuse_untrusted(chosen, trusted, UNTRUSTED_HOW, field="tags")
                    mv = self.registry.register(
                        name,
                        run_id=run_id,
                        artifact_path=path,
                        flavor=None if (folder / "mlbox-model.json").is_file() else chosen.flavor,
                        options=None if (folder / "mlbox-model.json").is_file() else chosen.options,
                        example_input=example,
                        description=description,
                    )
        if tags:
            self.state.set_tags("version", f"{mv.name}/{mv.version}", tags)
        return mv


class MlflowRegistryController(Controller):
    path = "/"
    tags = ("mlflow",)
    exception_handlers = MLFLOW_EXCEPTION_HANDLERS

    # -- registered models ---------------------------------------------------------------

    @post(both("/registered-models/create"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def create_registered_model(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body]
    ) -> Body:
        r = Registry(registry)
        name = check_name(_str(data, "name", required=True))
        if r.model_exists(name) or not r.state.announce_model(name, _str(data, "description")):
            raise Conflict(f"Registered Model (name={name}) already exists.", field="name")
        tags = p.pairs(data.get("tags"), "tags")
        if tags:
            r.state.set_tags("model", name, tags)
        return {"registered_model": r.model_json(name)}

    @get(both("/registered-models/get"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_registered_model(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        return {
            "registered_model": Registry(registry).model_json(_str(_query(request), "name", required=True))
        }

    @get(both("/registered-models/search"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def search_registered_models(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        from mlbox.api.mlflow_tracking import _experiment_matches
        from mlbox.tracking.schemas import Experiment

        r = Registry(registry)
        query = _query(request)
        names = sorted({m.name for m in registry.list_models()} | set(r.state.announced()))
        text = _str(query, "filter").strip()
        if text:
            names = [n for n in names if _experiment_matches(Experiment(0, n, "", 0.0), text)]
        limit = p.max_results(query.get("max_results"), 100)
        offset = p.page_offset(query.get("page_token"))
        chosen = names[offset : offset + limit]
        out: Body = {"registered_models": [r.model_json(n) for n in chosen]}
        if offset + len(chosen) < len(names):
            out["next_page_token"] = str(offset + len(chosen))
        return out

    @patch(both("/registered-models/update"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def update_registered_model(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body]
    ) -> Body:
        r = Registry(registry)
        name = _str(data, "name", required=True)
        description = _str(data, "description")
        if r.state.announced(name) and not any(m.name == name for m in registry.list_models()):
            r.state.describe_announced(name, description)
        else:
            registry.describe_model(name, description)
        return {"registered_model": r.model_json(name)}

    @post(both("/registered-models/rename"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def rename_registered_model(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body]
    ) -> Body:
        """The registry's own rename (refused while an alias is left: serving follows aliases by
        name); this layer's tags and announcement move along."""
        r = Registry(registry)
        name = _str(data, "name", required=True)
        new_name = _str(data, "new_name", required=True)
        check_name(new_name)
        if not r.model_exists(name):
            raise NotFound(f"Registered Model with name={name} not found", field="name")
        if name != new_name and r.model_exists(new_name):
            raise Conflict(f"Registered Model (name={new_name}) already exists.", field="new_name")
        if any(m.name == name for m in registry.list_models()):
            registry.rename_model(name, new_name)
        r.state.rename_model(name, new_name)
        return {"registered_model": r.model_json(new_name)}

    @delete(both("/registered-models/delete"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_registered_model(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body | None] = None
    ) -> Body:
        """The model and all its versions, as in MLflow; mlbox refuses (naming why) while an alias
        or a composed model still needs it (`RegistryService.delete_model`)."""
        r = Registry(registry)
        name = _str(data or {}, "name", required=True)
        if any(m.name == name for m in registry.list_models()):
            registry.delete_model(name)
        elif not r.state.announced(name):
            raise NotFound(f"Registered Model with name={name} not found", field="name")
        r.state.forget_model(name)
        return {}

    @post(
        both("/registered-models/get-latest-versions"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def get_latest_versions(self, registry: NamedDependency[RegistryService], data: JSONBody[Body]) -> Body:
        r = Registry(registry)
        body = r.model_json(_str(data, "name", required=True))
        return {"model_versions": body.get("latest_versions", [])}

    @get(
        both("/registered-models/get-latest-versions"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def get_latest_versions_get(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        body = Registry(registry).model_json(_str(_query(request), "name", required=True))
        return {"model_versions": body.get("latest_versions", [])}

    @post(both("/registered-models/set-tag"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def set_registered_model_tag(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body]
    ) -> Body:
        r = Registry(registry)
        name = _str(data, "name", required=True)
        r.model_json(name)
        r.state.set_tags("model", name, {_str(data, "key", required=True): _str(data, "value")})
        return {}

    @delete(
        both("/registered-models/delete-tag"), sync_to_thread=True, include_in_schema=False, status_code=200
    )
    def delete_registered_model_tag(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body | None] = None
    ) -> Body:
        body = data or {}
        Registry(registry).state.delete_tag(
            "model", _str(body, "name", required=True), _str(body, "key", required=True)
        )
        return {}

    # -- aliases -----------------------------------------------------------------------

    @post(both("/registered-models/alias"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def set_alias(self, registry: NamedDependency[RegistryService], data: JSONBody[Body]) -> Body:
        mv = Registry(registry).version(data)
        registry.set_alias(mv.name, _str(data, "alias", required=True), mv.version, note="mlflow")
        return {}

    @delete(both("/registered-models/alias"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_alias(
        self,
        registry: NamedDependency[RegistryService],
        request: Request[Any, Any, Any],
        data: JSONBody[Body | None] = None,
    ) -> Body:
        body = data or _query(request)
        registry.delete_alias(
            _str(body, "name", required=True), _str(body, "alias", required=True), note="mlflow"
        )
        return {}

    @get(both("/registered-models/alias"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_by_alias(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        query = _query(request)
        name = _str(query, "name", required=True)
        alias = _str(query, "alias", required=True)
        r = Registry(registry)
        return {"model_version": r.version_json(registry.resolve(f"{name}@{alias}"))}

    # -- versions ----------------------------------------------------------------------

    @post(both("/model-versions/create"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def create_model_version(self, registry: NamedDependency[RegistryService], data: JSONBody[Body]) -> Body:
        r = Registry(registry)
        return {"model_version": r.version_json(r.create_version(data))}

    @get(both("/model-versions/get"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def get_model_version(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        r = Registry(registry)
        return {"model_version": r.version_json(r.version(_query(request)))}

    @get(
        both("/model-versions/get-download-uri"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def get_download_uri(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        r = Registry(registry)
        return {"artifact_uri": r.version_json(r.version(_query(request)))["source"]}

    @get(both("/model-versions/search"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def search_model_versions(
        self, registry: NamedDependency[RegistryService], request: Request[Any, Any, Any]
    ) -> Body:
        import re

        r = Registry(registry)
        query = _query(request)
        text = _str(query, "filter").strip()
        versions: list[ModelVersion] = []
        if text:
            clauses = re.split(r"\s+and\s+", text, flags=re.IGNORECASE)
            wanted: dict[str, str] = {}
            for clause in clauses:
                match = re.fullmatch(r"\s*(name|run_id|source_path|source)\s*=\s*(['\"])(.*)\2\s*", clause)
                if match is None:
                    raise InvalidInput(
                        f"filter {clause!r}: mlbox filters versions by name = '...' and run_id = '...'",
                        field="filter",
                    )
                wanted[match.group(1)] = match.group(3)
            names = [wanted["name"]] if "name" in wanted else [m.name for m in registry.list_models()]
            for name in names:
                try:
                    versions.extend(registry.list_versions(name))
                except NotFound:
                    continue
            if "run_id" in wanted:
                versions = [v for v in versions if str(v.run_id) == wanted["run_id"]]
        else:
            for m in registry.list_models():
                versions.extend(registry.list_versions(m.name))
        versions.sort(key=lambda v: (v.name, -v.version))
        limit = p.max_results(query.get("max_results"), 10_000, limit=200_000)
        offset = p.page_offset(query.get("page_token"))
        chosen = versions[offset : offset + limit]
        out: Body = {"model_versions": [r.version_json(v) for v in chosen]}
        if offset + len(chosen) < len(versions):
            out["next_page_token"] = str(offset + len(chosen))
        return out

    @patch(both("/model-versions/update"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def update_model_version(self, registry: NamedDependency[RegistryService], data: JSONBody[Body]) -> Body:
        r = Registry(registry)
        mv = r.version(data)
        if _str(data, "description") != mv.description:
            raise InvalidInput(
                "mlbox versions never change: a description is given at registration", field="description"
            )
        return {"model_version": r.version_json(mv)}

    @delete(both("/model-versions/delete"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_model_version(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body | None] = None
    ) -> Body:
        r = Registry(registry)
        mv = r.version(data or {})
        registry.delete_version(mv.name, mv.version)  # refused while an alias or a composed model needs it
        r.state.drop_tags("version", f"{mv.name}/{mv.version}")
        return {}

    @post(
        both("/model-versions/transition-stage"),
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def transition_stage(self, registry: NamedDependency[RegistryService], data: JSONBody[Body]) -> Body:
        r = Registry(registry)
        mv = r.version(data)
        stage = _str(data, "stage", required=True)
        if stage.lower() in ("production", "staging"):
            mv = registry.set_alias(mv.name, stage.lower(), mv.version, note="mlflow stage")
        elif stage.lower() not in ("archived", "none"):
            raise InvalidInput(f"unknown stage {stage!r}", field="stage")
        return {"model_version": r.version_json(mv)}

    @post(both("/model-versions/set-tag"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def set_model_version_tag(self, registry: NamedDependency[RegistryService], data: JSONBody[Body]) -> Body:
        r = Registry(registry)
        mv = r.version(data)
        r.state.set_tags(
            "version", f"{mv.name}/{mv.version}", {_str(data, "key", required=True): _str(data, "value")}
        )
        return {}

    @delete(both("/model-versions/delete-tag"), sync_to_thread=True, include_in_schema=False, status_code=200)
    def delete_model_version_tag(
        self, registry: NamedDependency[RegistryService], data: JSONBody[Body | None] = None
    ) -> Body:
        r = Registry(registry)
        mv = r.version(data or {})
        r.state.delete_tag("version", f"{mv.name}/{mv.version}", _str(data or {}, "key", required=True))
        return {}
