"""Registered models: listing, versions, registering from a run, moving aliases.

Every route here needs the management token (the app-wide guard), the
scoring routes of `mlbox.api.serving` are the only open ones under
``/api/v1/models``. No route takes model bytes: a version is registered from
a run's logged artifact, which is already in the verified artifact store, so
nothing reaches the registry over HTTP that was not logged by a token holder
or a local process. Names, aliases and versions are checked by the service
(`mlbox.registry.refs`), so the API and the CLI refuse the same strings with
the same messages.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from mlbox.api.ranges import Int64
from mlbox.registry.refs import ModelRef, check_alias, check_name
from mlbox.registry.schemas import AliasMove, Model, ModelVersion
from mlbox.registry.service import DEFAULT_ARTIFACT_PATH, RegistryService
from mlbox.store.errors import InvalidInput

Example = list[Any] | dict[str, list[Any]]


class NewVersion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /api/v1/models/{name}/versions``: which run artifact to register.

    ``example_input`` (rows, or named columns) infers the signature and checks
    that the model runs; ``options`` reach the flavor (for files logged
    without mlbox's manifest, with ``flavor``).
    """

    run_id: Int64
    artifact_path: str = DEFAULT_ARTIFACT_PATH
    flavor: str | None = None
    description: str = ""
    options: dict[str, Any] = {}
    example_input: Example | None = None


class AliasTarget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``PUT .../aliases/{alias}``: the version it should name, and why."""

    version: Int64
    note: str = ""


class AliasNote(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    note: str = ""


class AliasChange(msgspec.Struct, frozen=True):
    """One alias move as the caller asked for it (``to_version`` None: removed)."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None


class ModelDetail(msgspec.Struct, frozen=True):
    model: Model
    versions: list[ModelVersion]


def _example(value: Example | None) -> Any:
    """JSON rows as one array, named columns as a dict of arrays (what signature inference reads)."""
    if value is None:
        return None
    import numpy as np

    try:
        if isinstance(value, dict):
            return {k: np.asarray(v) for k, v in value.items()}
        return np.asarray(value)
    except ValueError as exc:  # ragged rows
        raise InvalidInput(
            f"example_input is not a rectangular array: {exc}", field="example_input"
        ) from None


class ModelController(Controller):
    path = "/api/v1/models"
    tags = ("models",)

    @get(operation_id="listModels", sync_to_thread=True, summary="Models, latest versions and aliases")
    def list_models(self, registry: NamedDependency[RegistryService]) -> list[Model]:
        return registry.list_models()

    @get("/{name:str}", operation_id="getModel", sync_to_thread=True, summary="A model with its versions")
    def get_model(self, registry: NamedDependency[RegistryService], name: FromPath[str]) -> ModelDetail:
        return ModelDetail(model=registry.get_model(name), versions=registry.list_versions(name))

    @get(
        "/{name:str}/versions",
        operation_id="listModelVersions",
        sync_to_thread=True,
        summary="Every version of a model, oldest first",
    )
    def list_versions(
        self, registry: NamedDependency[RegistryService], name: FromPath[str]
    ) -> list[ModelVersion]:
        return registry.list_versions(name)

    @post(
        "/{name:str}/versions",
        operation_id="registerModelVersion",
        sync_to_thread=True,
        summary="Register a run's logged model as a new version",
    )
    def register_version(
        self, registry: NamedDependency[RegistryService], name: FromPath[str], data: JSONBody[NewVersion]
    ) -> ModelVersion:
        return registry.register(
            name,
            run_id=data.run_id,
            artifact_path=data.artifact_path,
            flavor=data.flavor,
            description=data.description,
            options=data.options,
            example_input=_example(data.example_input),
        )

    @get(
        "/{name:str}/versions/{version:int}",
        operation_id="getModelVersion",
        sync_to_thread=True,
        summary="One version: flavor, signature, lineage, files",
    )
    def get_version(
        self, registry: NamedDependency[RegistryService], name: FromPath[str], version: FromPath[int]
    ) -> ModelVersion:
        return registry.get_version(name, version)

    @get(
        "/{name:str}/aliases/{alias:str}",
        operation_id="getModelAlias",
        sync_to_thread=True,
        summary="The version an alias names",
    )
    def get_alias(
        self, registry: NamedDependency[RegistryService], name: FromPath[str], alias: FromPath[str]
    ) -> ModelVersion:
        return registry.resolve(ModelRef(check_name(name), alias=check_alias(alias)))

    @put(
        "/{name:str}/aliases/{alias:str}",
        operation_id="setModelAlias",
        sync_to_thread=True,
        summary="Point an alias at a version (promote, or roll back)",
    )
    def set_alias(
        self,
        registry: NamedDependency[RegistryService],
        name: FromPath[str],
        alias: FromPath[str],
        data: JSONBody[AliasTarget],
    ) -> AliasChange:
        before = registry.get_model(name).aliases.get(alias)
        moved = registry.set_alias(name, alias, data.version, note=data.note)
        return AliasChange(model=moved.name, alias=alias, from_version=before, to_version=moved.version)

    @delete(
        "/{name:str}/aliases/{alias:str}",
        operation_id="deleteModelAlias",
        status_code=200,
        sync_to_thread=True,
        summary="Remove an alias (kept in its history)",
    )
    def delete_alias(
        self,
        registry: NamedDependency[RegistryService],
        name: FromPath[str],
        alias: FromPath[str],
        data: JSONBody[AliasNote | None] = None,
    ) -> AliasChange:
        before = registry.get_model(name).aliases.get(alias)
        registry.delete_alias(name, alias, note=data.note if data else "")
        return AliasChange(model=name, alias=alias, from_version=before, to_version=None)

    @delete(
        "/{name:str}/versions/{version:int}",
        operation_id="deleteModelVersion",
        status_code=200,
        sync_to_thread=True,
        summary="Delete a version no alias points to (409 naming what still needs it)",
    )
    def delete_version(
        self, registry: NamedDependency[RegistryService], name: FromPath[str], version: FromPath[int]
    ) -> ModelVersion:
        return registry.delete_version(name, version)

    @delete(
        "/{name:str}",
        operation_id="deleteModel",
        status_code=200,
        sync_to_thread=True,
        summary="Delete a model with no alias left, and all its versions (409 naming what needs it)",
    )
    def delete_model(self, registry: NamedDependency[RegistryService], name: FromPath[str]) -> Model:
        return registry.delete_model(name)

    @get(
        "/{name:str}/aliases/{alias:str}/history",
        operation_id="getModelAliasHistory",
        sync_to_thread=True,
        summary="Every move of one alias, oldest first",
    )
    def alias_history(
        self, registry: NamedDependency[RegistryService], name: FromPath[str], alias: FromPath[str]
    ) -> list[AliasMove]:
        return registry.alias_history(name, alias)

    @get(
        "/{name:str}/history",
        operation_id="getModelHistory",
        sync_to_thread=True,
        summary="Every alias move of a model, oldest first",
    )
    def history(self, registry: NamedDependency[RegistryService], name: FromPath[str]) -> list[AliasMove]:
        return registry.alias_history(name)
