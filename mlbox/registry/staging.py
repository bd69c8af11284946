"""Registration's staging folder: a model's files gathered, described and checked before they count.

Whatever the source (an object saved by its flavor, a local file or folder,
a run's artifacts copied out verified), registration first builds a private
folder holding exactly the version's files plus its manifest. The model is
loaded from that folder to infer the signature, so what gets registered is
known to load; only then are the files put into the artifact store and the
version row written.

A folder logged with an example input (``mlbox.log_model(m, example_input=x)``)
carries the signature inferred then, in `SIGNATURE_FILE`, so registering it
later without the example (``mlbox.register_model("lr", run_id=...)``) still
gives the version its signature.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from mlbox.registry import flavors
from mlbox.registry.schemas import ModelFile
from mlbox.registry.signature import Signature, infer_schema, validate
from mlbox.store.artifacts import ArtifactStore, clean_relpath
from mlbox.store.errors import IntegrityError, InvalidInput, MlboxError, NotFound
from mlbox.tracking.service import TrackingService

SIGNATURE_FILE = "mlbox-signature.json"
"""Beside the manifest in a logged model folder: the signature inferred when it was logged."""

Known = dict[str, tuple[str, int]]
"""``{path in the model folder: (sha256, size)}`` of files already in the artifact store."""


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def refuse_url(value: str | Path | None, field: str) -> None:
    """`InvalidInput` (400) for a source written as a URL (``http://``, ``s3://``, ``gs://``).

    Nothing is fetched from a network (the appliance works air-gapped), so a URL can never
    be a source; before, it was looked up as an artifact path and answered 404 as if a
    run merely lacked that artifact.
    """
    if isinstance(value, str) and _URL.match(value.strip()):
        raise InvalidInput(
            f"{value!r} is a URL: sources must be artifacts of a run in this store (run_id= with"
            " artifact_path=) or local files; mlbox fetches nothing from a network",
            field=field,
        )


def stage_run_artifacts(
    tracking: TrackingService, artifacts: ArtifactStore, run_id: int, artifact_path: str, folder: Path
) -> Known:
    """Verified copies of a run's logged file or folder (a tampered one is refused here)."""
    prefix = clean_relpath(artifact_path, field="artifact_path")
    logged = tracking.list_artifacts(run_id)
    chosen = [(Path(a.path).name, a) for a in logged if a.path == prefix]
    if not chosen:
        chosen = [(a.path[len(prefix) + 1 :], a) for a in logged if a.path.startswith(prefix + "/")]
    if not chosen:
        raise NotFound(f"run {run_id} has no artifact {prefix!r}", field="artifact_path")
    known: Known = {}
    for rel, info in chosen:
        try:
            artifacts.copy_to(info.sha256, folder / rel)
        except (IntegrityError, NotFound) as exc:
            raise IntegrityError(
                f"run {run_id} artifact {info.path!r} cannot be read back intact: {exc.message}",
                field="artifact_path",
            ) from None
        known[rel] = (info.sha256, info.size)
    return known


def copy_local(src: Path, folder: Path, staging_root: Path) -> None:
    if src.is_dir():
        if staging_root.resolve().is_relative_to(src.resolve()):
            raise InvalidInput(
                f"{src} holds the mlbox home itself; give the model's own folder", field="files_from"
            )
        shutil.copytree(src, folder, dirs_exist_ok=True)
    elif src.is_file():
        shutil.copy2(src, folder / src.name)
    else:
        raise NotFound(f"no such file or folder: {src}", field="files_from")


def manifest_for(
    folder: Path, flavor: str | None, options: Mapping[str, Any], source_field: str
) -> dict[str, Any]:
    """The folder's own manifest, or one the named flavor writes for files saved without mlbox."""
    manifest = flavors.read_manifest(folder)
    if manifest is not None:
        if flavor is not None and flavor != manifest["flavor"]:
            raise InvalidInput(f"the files say flavor {manifest['flavor']!r}, not {flavor!r}", field="flavor")
        return manifest
    if flavor is None:
        raise InvalidInput(
            f"these files have no {flavors.MANIFEST_FILE}; give flavor= (one of"
            f" {list(flavors.DETECT_ORDER)}) to say how to load them",
            field="flavor",
        )
    chosen = flavors.get_flavor(flavor)
    try:
        adopted = chosen.adopt(folder, options)
    except InvalidInput as exc:
        if exc.field == "artifact_path":  # the flavor cannot tell where the files came from
            raise InvalidInput(exc.message, field=source_field) from None
        raise
    manifest = {"flavor": chosen.name, "format": flavors.FORMAT, **adopted}
    flavors.write_manifest(folder, manifest)
    return manifest


def infer_version_signature(folder: Path, manifest: dict[str, Any], example_input: Any) -> Signature | None:
    """Load the staged model and run it once on ``example_input``: it loads, and we learn its outputs."""
    if example_input is None:
        return None
    inputs = infer_schema(example_input)
    predictor = flavors.load_model(folder, manifest)
    try:
        output = predictor.predict(validate(inputs, example_input))
    except MlboxError:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"the model failed on example_input: {type(exc).__name__}: {str(exc)[:300]}",
            field="example_input",
        ) from None
    return Signature(inputs=inputs, outputs=infer_schema(output))


def write_signature(folder: Path, signature: Signature) -> None:
    """Keep ``signature`` in the model folder, for a registration that has no example input."""
    (folder / SIGNATURE_FILE).write_bytes(msgspec.json.format(msgspec.json.encode(signature)) + b"\n")


def read_signature(folder: Path) -> Signature | None:
    """The signature a folder was logged with, or None when it was logged without an example."""
    path = folder / SIGNATURE_FILE
    if not path.is_file():
        return None
    try:
        return msgspec.json.decode(path.read_bytes(), type=Signature)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"{SIGNATURE_FILE} is not a signature: {exc}", field="signature") from None


def version_signature(folder: Path, manifest: dict[str, Any], example_input: Any) -> Signature | None:
    """The signature a registered version gets: inferred from ``example_input`` when one is given
    (which also checks the model runs), else the one the folder was logged with, else none."""
    if example_input is not None:
        return infer_version_signature(folder, manifest, example_input)
    return read_signature(folder)


def logged_signature(folder: Path, manifest: dict[str, Any], example_input: Any) -> None:
    """At ``log_model`` with an example: infer the signature from the saved model, keep it in the folder."""
    signature = infer_version_signature(folder, manifest, example_input)
    if signature is not None:
        write_signature(folder, signature)


def store_files(artifacts: ArtifactStore, folder: Path, known: Known) -> list[ModelFile]:
    """Put the staged files into the artifact store (skipping those already there)."""
    files = []
    for dirpath, _dirs, names in os.walk(folder):
        for fname in names:
            path = Path(dirpath) / fname
            rel = clean_relpath(path.relative_to(folder).as_posix())
            if rel in known:
                sha, size = known[rel]
            else:
                blob = artifacts.put_file(path)
                sha, size = blob.sha256, blob.size
            files.append(ModelFile(rel, sha, size))
    return sorted(files, key=lambda f: f.path)
