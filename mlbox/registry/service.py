"""The model registry: named models, immutable versions, moving aliases.

It owns the registry tables; the tracking service is asked for runs, their
artifacts and lineage, never read directly. Invariants:

* A version is written once, in one ``BEGIN IMMEDIATE`` transaction that
  also picks its number (``max + 1``), so two processes registering at once
  get distinct numbers and nobody sees a version without its files. No code
  path updates a version (a trigger refuses it too).
* Every alias move is a history row written in the same transaction as the
  move; a rollback is a move back, recorded like any other.
* Files live in the content-addressed artifact store (a run's artifacts are
  already there: registering copies nothing). Models load only from the
  verified cache (`mlbox.registry.cache`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from mlbox.registry import flavors, staging
from mlbox.registry.cache import ModelCache, cache_key
from mlbox.registry.composition import Composition, check_chain
from mlbox.registry.loaded import LoadedModel
from mlbox.registry.migrations import migrations
from mlbox.registry.refs import ModelRef, check_alias, check_name, check_version, parse_ref
from mlbox.registry.schemas import AliasMove, Lineage, LineageDataset, Model, ModelFile, ModelVersion
from mlbox.registry.signature import Signature
from mlbox.store.artifacts import ArtifactStore, clean_relpath
from mlbox.store.db import Database
from mlbox.store.errors import Conflict, InvalidInput, NotFound
from mlbox.tracking.dependents import Dependents, refusal
from mlbox.tracking.service import TrackingService

DEFAULT_ARTIFACT_PATH = "model"


_FEATURE_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*(@[A-Za-z0-9]+)?$")


def check_feature_refs(refs: Sequence[str]) -> list[str]:
    """``view:feature`` references, in order (their views are resolved when the model is served)."""
    if isinstance(refs, str) or not refs:
        raise InvalidInput("features must be a non-empty list of 'view:feature'", field="features")
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or not _FEATURE_REF.match(ref):
            raise InvalidInput(f"{ref!r} is not 'view:feature'", field=f"features[{i}]")
    return list(refs)


class ModelOverview(msgspec.Struct, frozen=True):
    """A model as a listing of models shows it, with when it last changed."""

    model: Model
    updated: float
    """The newest of: the model's creation, its newest version's registration, its last alias move."""


class RegistryService:
    def __init__(
        self,
        db: Database,
        artifacts: ArtifactStore,
        tracking: TrackingService,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.artifacts = artifacts
        self.tracking = tracking
        self.cache = ModelCache(cache_dir or artifacts.root.parent / "cache" / "models", artifacts)
        self.version_dependents: Dependents[tuple[str, int]] = Dependents("model version")
        """Checks asked before a version is deleted: aliases and composed models here; services
        built later (serving's pinned versions) add theirs (`mlbox.tracking.dependents`)."""
        self.version_dependents.add("registry", self._versions_needed)
        tracking.run_dependents.add("registry", self._runs_needed)
        migrations.apply(db)

    # -- registration ----------------------------------------------------------------

    def register(
        self,
        name: str,
        *,
        run_id: int | None = None,
        artifact_path: str | None = None,
        model: Any = None,
        flavor: str | None = None,
        example_input: Any = None,
        description: str = "",
        files_from: str | Path | None = None,
        options: Mapping[str, Any] | None = None,
        features: Sequence[str] | None = None,
        read_from: str | None = None,
    ) -> ModelVersion:
        """Register a new version of ``name`` from one source:

        * ``model=``: an object in memory, saved by its flavor (detected unless
          ``flavor=`` is given; ``options`` reach the flavor, e.g. ``form``);
        * ``files_from=``: a local file or folder;
        * ``run_id=`` (with ``artifact_path``, default ``model``): a run's logged
          file or folder. ``run_id`` with ``model=`` or ``files_from=`` only
          records where the model came from; with ``model=`` read from that
          run's artifact (an MLflow skops model, converted), ``read_from=``
          names the artifact path, and the lineage names the run's files.

        A folder saved by `mlbox.registry.flavors.save_model` carries its
        manifest; other files need ``flavor=``. With ``example_input`` the saved
        model is loaded back and run once, which checks it and gives the
        signature (inputs and outputs).

        ``features=["view:feature", ...]`` says the model takes those features,
        in that order, as its input matrix: serving then accepts entity keys
        and looks the features up in the online store.
        """
        check_name(name)
        if not isinstance(description, str):
            raise InvalidInput("description must be a string", field="description")
        opts = dict(options or {})
        sources = sum(x is not None for x in (model, files_from, artifact_path))
        if sources > 1:
            raise InvalidInput("give only one of model=, files_from= and artifact_path=", field="model")
        if sources == 0 and run_id is None:
            raise InvalidInput(
                "nothing to register: give model=, files_from= or run_id= (with artifact_path=)",
                field="model",
            )
        staging.refuse_url(artifact_path, "artifact_path")
        staging.refuse_url(files_from, "files_from")
        if artifact_path is not None and run_id is None:
            raise InvalidInput("artifact_path= names a run's artifact: give run_id= too", field="run_id")
        lineage = self._lineage(run_id, model, files_from, artifact_path, read_from)
        with self.cache.staging() as tmp:
            staging_root = Path(tmp).parent
            folder = Path(tmp) / "model"
            folder.mkdir()
            known: staging.Known = {}
            if model is not None:
                manifest = flavors.save_model(
                    model, folder, flavor=flavor, example_input=example_input, options=opts
                )
            else:
                if files_from is not None:
                    staging.copy_local(Path(files_from), folder, staging_root)
                else:
                    assert run_id is not None
                    known = staging.stage_run_artifacts(
                        self.tracking, self.artifacts, run_id, artifact_path or DEFAULT_ARTIFACT_PATH, folder
                    )
                source_field = "files_from" if files_from is not None else "artifact_path"
                manifest = staging.manifest_for(folder, flavor, opts, source_field)
            if features is not None:
                manifest["features"] = check_feature_refs(features)
                flavors.write_manifest(folder, manifest)
            if manifest["flavor"] == "composed":  # no model of its own to run: its parts must exist
                self._check_parts(Composition.from_manifest(manifest))
                signature = None
            else:
                signature = staging.version_signature(folder, manifest, example_input)
            files = staging.store_files(self.artifacts, folder, known)
        return self._insert(name, manifest, signature, lineage, files, description)

    def _check_parts(self, composition: Composition) -> None:
        signatures = []
        for i, ref in enumerate(composition.parts):
            try:
                signatures.append(self.resolve(ref).signature)
            except NotFound as exc:
                raise NotFound(f"part {ref!r}: {exc.message}", field=f"parts[{i}]") from None
        if composition.graph == "chain":
            check_chain(composition.parts, signatures)

    def _lineage(
        self,
        run_id: int | None,
        model: Any,
        files_from: str | Path | None,
        artifact_path: str | None,
        read_from: str | None = None,
    ) -> Lineage:
        if model is not None and read_from is not None and run_id is not None:
            source = f"run:{run_id}/{clean_relpath(read_from, field='read_from')}"
        elif model is not None:
            source = "object"
        elif files_from is not None:
            source = f"file:{Path(files_from).resolve()}"
        else:
            path = clean_relpath(artifact_path or DEFAULT_ARTIFACT_PATH, field="artifact_path")
            source = f"run:{run_id}/{path}"
        if run_id is None:
            return Lineage(source=source)
        if isinstance(run_id, bool) or not isinstance(run_id, int):
            raise InvalidInput(f"run_id must be an integer, got {run_id!r}", field="run_id")
        try:
            detail = self.tracking.run_detail(run_id)
        except NotFound:
            raise NotFound(f"no run with id {run_id}", field="run_id") from None
        run = detail.run
        if run.deleted_at is not None:
            raise Conflict(f"run {run_id} is deleted: restore it before registering from it", field="run_id")
        return Lineage(
            source=source,
            run_id=run.id,
            run_name=run.name,
            experiment=run.experiment,
            datasets=[LineageDataset(d.name, d.context, d.digest) for d in detail.datasets],
            git_sha=run.git_sha,
            git_dirty=run.git_dirty,
        )

    def _insert(
        self,
        name: str,
        manifest: dict[str, Any],
        signature: Signature | None,
        lineage: Lineage,
        files: list[ModelFile],
        description: str,
    ) -> ModelVersion:
        now = time.time()
        with self.db.atomic() as conn:
            conn.execute("INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)", (name, now))
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = ?", (name,)
            ).fetchone()
            version = int(row[0])
            conn.execute(
                "INSERT INTO model_versions (model, version, flavor, manifest, signature, run_id, lineage,"
                " description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    manifest["flavor"],
                    json.dumps(manifest, sort_keys=True),
                    None if signature is None else msgspec.json.encode(signature).decode(),
                    lineage.run_id,
                    msgspec.json.encode(lineage).decode(),
                    description,
                    now,
                ),
            )
            conn.executemany(
                "INSERT INTO model_files (model, version, path, sha256, size) VALUES (?, ?, ?, ?, ?)",
                [(name, version, f.path, f.sha256, f.size) for f in files],
            )
        return self.get_version(name, version)

    def describe_model(self, name: str, description: str) -> Model:
        """Set a model's description (the model's, not a version's: versions never change)."""
        self._require_model(check_name(name))
        with self.db.atomic() as conn:
            conn.execute("UPDATE models SET description = ? WHERE name = ?", (description, name))
        return self.get_model(name)

    # -- aliases --------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, note: str = "") -> ModelVersion:
        """Point ``alias`` at ``version`` (a rollback is a move back); every move is kept in history."""
        check_name(name)
        check_alias(alias)
        check_version(version)
        with self.db.atomic() as conn:
            self._require_version(name, version)
            row = conn.execute(
                "SELECT version FROM aliases WHERE model = ? AND alias = ?", (name, alias)
            ).fetchone()
            previous = None if row is None else int(row[0])
            if previous != version:
                conn.execute(
                    "INSERT INTO aliases (model, alias, version) VALUES (?, ?, ?)"
                    " ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version",
                    (name, alias, version),
                )
                self._record_move(conn, name, alias, previous, version, note)
        return self.get_version(name, version)

    def delete_alias(self, name: str, alias: str, note: str = "") -> None:
        check_name(name)
        check_alias(alias)
        with self.db.atomic() as conn:
            self._require_model(name)
            row = conn.execute(
                "SELECT version FROM aliases WHERE model = ? AND alias = ?", (name, alias)
            ).fetchone()
            if row is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}", field="alias")
            conn.execute("DELETE FROM aliases WHERE model = ? AND alias = ?", (name, alias))
            self._record_move(conn, name, alias, int(row[0]), None, note)

    def _record_move(
        self, conn: sqlite3.Connection, name: str, alias: str, old: int | None, new: int | None, note: str
    ) -> None:
        conn.execute(
            "INSERT INTO alias_history (model, alias, from_version, to_version, moved_at, note)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (name, alias, old, new, time.time(), str(note)),
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Moves oldest first (optionally of one alias)."""
        self._require_model(check_name(name))
        sql = "SELECT * FROM alias_history WHERE model = ?"
        params: list[Any] = [name]
        if alias is not None:
            sql += " AND alias = ?"
            params.append(check_alias(alias))
        rows = self.db.query(sql + " ORDER BY id", params)
        return [
            AliasMove(
                id=r["id"],
                model=r["model"],
                alias=r["alias"],
                from_version=r["from_version"],
                to_version=r["to_version"],
                moved_at=r["moved_at"],
                note=r["note"],
            )
            for r in rows
        ]

    # -- reading --------------------------------------------------------------------

    def _require_model(self, name: str) -> None:
        if self.db.query_one("SELECT 1 FROM models WHERE name = ?", (name,)) is None:
            raise NotFound(f"no model named {name!r}", field="name")

    def _require_version(self, name: str, version: int) -> None:
        row = self.db.query_one(
            "SELECT 1 FROM model_versions WHERE model = ? AND version = ?", (name, version)
        )
        if row is None:
            self._require_model(name)
            raise NotFound(f"model {name!r} has no version {version}", field="version")

    def _versions(self, name: str, version: int | None = None) -> list[ModelVersion]:
        where = "model = ?"
        params: list[Any] = [name]
        if version is not None:
            where += " AND version = ?"
            params.append(version)
        rows = self.db.query(f"SELECT * FROM model_versions WHERE {where} ORDER BY version", params)
        files: dict[int, list[ModelFile]] = defaultdict(list)
        for f in self.db.query(f"SELECT * FROM model_files WHERE {where} ORDER BY path", params):
            files[f["version"]].append(ModelFile(f["path"], f["sha256"], f["size"]))
        aliases: dict[int, list[str]] = defaultdict(list)
        for a in self.db.query("SELECT alias, version FROM aliases WHERE model = ? ORDER BY alias", (name,)):
            aliases[a["version"]].append(a["alias"])
        return [
            ModelVersion(
                name=r["model"],
                version=r["version"],
                flavor=r["flavor"],
                description=r["description"],
                created_at=r["created_at"],
                run_id=r["run_id"],
                signature=None
                if r["signature"] is None
                else msgspec.json.decode(r["signature"], type=Signature),
                lineage=msgspec.json.decode(r["lineage"], type=Lineage),
                manifest=json.loads(r["manifest"]),
                files=files[r["version"]],
                aliases=aliases[r["version"]],
            )
            for r in rows
        ]

    def get_version(self, name: str, version: int) -> ModelVersion:
        check_name(name)
        check_version(version)
        found = self._versions(name, version)
        if not found:
            self._require_version(name, version)
        return found[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        self._require_model(check_name(name))
        return self._versions(name)

    def list_models(self) -> list[Model]:
        return [overview.model for overview in self.overview()]

    def overview(self) -> list[ModelOverview]:
        """Every model with what a listing of models shows (its latest version, version count,
        aliases) and when it last changed: two queries, whatever the number of models."""
        rows = self.db.query(
            "SELECT m.name, m.description, m.created_at, MAX(v.version) AS latest, COUNT(v.version) AS n,"
            " MAX(m.created_at,"
            " COALESCE((SELECT lv.created_at FROM model_versions lv WHERE lv.model = m.name"
            " ORDER BY lv.version DESC LIMIT 1), m.created_at),"
            " COALESCE((SELECT h.moved_at FROM alias_history h WHERE h.model = m.name"
            " ORDER BY h.id DESC LIMIT 1), m.created_at)) AS updated"
            " FROM models m LEFT JOIN model_versions v ON v.model = m.name"
            " GROUP BY m.name ORDER BY m.name"
        )
        aliases: dict[str, dict[str, int]] = defaultdict(dict)
        for a in self.db.query("SELECT model, alias, version FROM aliases ORDER BY alias"):
            aliases[a["model"]][a["alias"]] = a["version"]
        return [
            ModelOverview(
                Model(
                    name=r["name"],
                    description=r["description"],
                    created_at=r["created_at"],
                    latest_version=r["latest"],
                    version_count=r["n"],
                    aliases=aliases[r["name"]],
                ),
                updated=r["updated"],
            )
            for r in rows
        ]

    def get_model(self, name: str) -> Model:
        check_name(name)
        for model in self.list_models():
            if model.name == name:
                return model
        raise NotFound(f"no model named {name!r}", field="name")

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version named by ``name``, ``name@alias``, ``name/3`` or ``name:3``."""
        parsed = ref if isinstance(ref, ModelRef) else parse_ref(ref)
        name = parsed.name
        if self.db.query_one("SELECT 1 FROM models WHERE name = ?", (name,)) is None:
            raise NotFound(f"no model named {name!r}", field="model")
        if parsed.alias is not None:
            row = self.db.query_one(
                "SELECT version FROM aliases WHERE model = ? AND alias = ?", (name, parsed.alias)
            )
            if row is None:
                raise NotFound(f"model {name!r} has no alias {parsed.alias!r}", field="model")
            version = int(row[0])
        elif parsed.version is not None:
            version = parsed.version
        else:
            row = self.db.query_one("SELECT MAX(version) FROM model_versions WHERE model = ?", (name,))
            if row is None or row[0] is None:
                raise NotFound(f"model {name!r} has no versions", field="model")
            version = int(row[0])
        found = self._versions(name, version)
        if not found:
            raise NotFound(f"model {name!r} has no version {version}", field="model")
        return found[0]

    # -- loading --------------------------------------------------------------------

    def load(self, ref: str | ModelRef | ModelVersion, *, device: str = "cpu") -> LoadedModel:
        """Load a version from verified copies of its files; a modified file raises `IntegrityError`."""
        mv = ref if isinstance(ref, ModelVersion) else self.resolve(ref)
        label = f"model {mv.name!r} version {mv.version}"
        folder = self.cache.materialize(cache_key(mv.manifest, mv.files), mv.files, label)
        predictor = flavors.load_model(folder, mv.manifest, device=device)
        return LoadedModel(version=mv, predictor=predictor, folder=folder, device=device)

    # -- deleting --------------------------------------------------------------------

    def delete_version(self, name: str, version: int) -> ModelVersion:
        """Remove a version for good (as MLflow does); returns it as it was. `Conflict` naming
        what still needs it: an alias pointing at it, a composed model naming it as a part, a
        pinned served version. Its files' objects are left to ``mlbox gc``."""
        mv = self.get_version(name, version)
        self.version_dependents.refuse_if_needed(
            [(name, version)], f"model {name!r} version {version}", field="version"
        )
        with self.db.atomic() as conn:
            self._remove_versions(conn, name, [version])
        return mv

    def delete_model(self, name: str) -> Model:
        """Remove a model with all its versions and alias history; returns it as it was. `Conflict`
        while an alias is left (delete the aliases first: they are what is served) or when
        another model's composition names it."""
        model = self.get_model(name)
        versions = self._unneeded_versions(model, "delete")
        with self.db.atomic() as conn:
            self._remove_versions(conn, name, versions)
            conn.execute("DELETE FROM alias_history WHERE model = ?", (name,))
            conn.execute("DELETE FROM models WHERE name = ?", (name,))
        return model

    def _unneeded_versions(self, model: Model, verb: str) -> list[int]:
        """The version numbers of ``model`` when nothing needs them, so that it may go (``verb``:
        delete or rename); `Conflict` naming an alias left, a composition naming the model or
        another service holding one of its versions otherwise."""
        name = model.name
        if model.aliases:
            shown = ", ".join(f"{name}@{a} -> version {v}" for a, v in sorted(model.aliases.items()))
            how = "; ".join(f"mlbox models alias {name} {a} --delete" for a in sorted(model.aliases))
            raise Conflict(
                f"cannot {verb} model {name!r}: aliases still point to it ({shown}); delete them first: {how}",
                field="name",
            )
        versions = [v.version for v in self._versions(name)]
        needed = self._parts_naming(name, None) + self.version_dependents.of([(name, v) for v in versions])
        if needed:
            raise Conflict(refusal(f"model {name!r}", needed), field="name")
        return versions

    def rename_model(self, name: str, new_name: str) -> Model:
        """Give a model, its versions, their files and its alias history the name ``new_name``
        (MLflow's rename). `Conflict` while an alias is left (serving routes and monitors follow
        aliases by name: move them after the rename), while another model's composition or
        another service needs one of its versions, or when ``new_name`` is taken. Versions and
        their files are immutable rows, so they are copied under the new name and the old rows
        deleted, in one transaction."""
        check_name(new_name)
        model = self.get_model(name)
        if new_name == name:
            return model
        if self.db.query_one("SELECT 1 FROM models WHERE name = ?", (new_name,)) is not None:
            raise Conflict(f"model {new_name!r} already exists", field="new_name")
        self._unneeded_versions(model, "rename")
        with self.db.atomic() as conn:
            conn.execute(
                "INSERT INTO models (name, description, created_at)"
                " SELECT ?, description, created_at FROM models WHERE name = ?",
                (new_name, name),
            )
            conn.execute(
                "INSERT INTO model_versions (model, version, flavor, manifest, signature, run_id, lineage,"
                " description, created_at) SELECT ?, version, flavor, manifest, signature, run_id, lineage,"
                " description, created_at FROM model_versions WHERE model = ?",
                (new_name, name),
            )
            conn.execute(
                "INSERT INTO model_files (model, version, path, sha256, size)"
                " SELECT ?, version, path, sha256, size FROM model_files WHERE model = ?",
                (new_name, name),
            )
            conn.execute("UPDATE alias_history SET model = ? WHERE model = ?", (new_name, name))
            conn.execute("DELETE FROM model_files WHERE model = ?", (name,))
            conn.execute("DELETE FROM model_versions WHERE model = ?", (name,))
            conn.execute("DELETE FROM models WHERE name = ?", (name,))
        return self.get_model(new_name)

    def _remove_versions(self, conn: sqlite3.Connection, name: str, versions: Sequence[int]) -> None:
        """Delete the versions' rows; an alias set meanwhile makes SQLite's foreign key refuse it."""
        try:
            for v in versions:
                conn.execute("DELETE FROM model_files WHERE model = ? AND version = ?", (name, v))
                conn.execute("DELETE FROM model_versions WHERE model = ? AND version = ?", (name, v))
        except sqlite3.IntegrityError:
            raise Conflict(
                f"an alias of model {name!r} was set meanwhile; try again", field="alias"
            ) from None

    def _versions_needed(self, keys: Sequence[tuple[str, int]]) -> list[str]:
        found: list[str] = []
        for name, version in keys:
            for a in self.db.query(
                "SELECT alias FROM aliases WHERE model = ? AND version = ? ORDER BY alias", (name, version)
            ):
                found.append(f"alias {name}@{a['alias']} points to version {version}")
            found.extend(self._parts_naming(name, version))
        return found

    def _parts_naming(self, name: str, version: int | None) -> list[str]:
        """Composed versions of other models (or of ``name``'s other versions) with a part that
        names version ``version`` of ``name`` by number (None: any part naming ``name``)."""
        found: list[str] = []
        for r in self.db.query(
            "SELECT model, version, manifest FROM model_versions WHERE flavor = 'composed' ORDER BY model, version"
        ):
            if r["model"] == name and (version is None or r["version"] == version):
                continue
            for part in json.loads(r["manifest"]).get("parts", []):
                ref = parse_ref(part)
                if ref.name == name and (version is None or ref.version == version):
                    found.append(f"composed model {r['model']!r} version {r['version']} uses {part!r}")
        return found

    def _runs_needed(self, run_ids: Sequence[int]) -> list[str]:
        rows = self.db.query(
            "SELECT model, version, run_id FROM model_versions"
            " WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY model, version",
            (json.dumps(list(run_ids)),),
        )
        return [
            f"model {r['model']!r} version {r['version']} was registered from run {r['run_id']}" for r in rows
        ]

    def referenced_objects(self) -> set[str]:
        """The artifact store objects the versions' files are."""
        return {r[0] for r in self.db.query("SELECT DISTINCT sha256 FROM model_files")}

    def prune_cache(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Remove the verified model folders (`mlbox.registry.cache`) no version has any more
        (those of deleted versions); returns (folders, bytes). The folders are listed before
        the versions are read, so a version registered meanwhile keeps its folder."""
        listed = (
            [d for d in self.cache.root.iterdir() if d.is_dir() and len(d.name) == 64]
            if self.cache.root.is_dir()
            else []
        )
        live = {cache_key(mv.manifest, mv.files) for m in self.list_models() for mv in self._versions(m.name)}
        gone = [d for d in listed if d.name not in live]
        size = sum(f.stat().st_size for d in gone for f in d.rglob("*") if f.is_file() and not f.is_symlink())
        if not dry_run:
            for folder in gone:
                self.cache._discard(folder)
        return len(gone), size
