"""Flavors: how each framework's model becomes files and comes back as a predictor.

A saved model is a folder: the flavor's files plus ``mlbox-model.json``, the
manifest (``flavor`` and what that flavor needs to load it). The same folder
logged as a run artifact (``mlbox.log_artifact(folder, "model")``) can be
registered later without loading the model in the registering process.

Flavor modules are imported on first use, so a missing framework only
matters to the models that need it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbox.registry.flavor_names import DETECT_ORDER
from mlbox.registry.flavors.base import Flavor, Predictor
from mlbox.store.errors import InvalidInput

__all__ = [
    "DETECT_ORDER",
    "MANIFEST_FILE",
    "Flavor",
    "Predictor",
    "detect_flavor",
    "get_flavor",
    "load_model",
    "read_manifest",
    "save_model",
]

MANIFEST_FILE = "mlbox-model.json"
FORMAT = 1
# Boosters before sklearn (whose estimators the boosters' wrappers are), `python` last.
_cache: dict[str, Flavor] = {}


def get_flavor(name: object) -> Flavor:
    if not isinstance(name, str) or name not in DETECT_ORDER:
        raise InvalidInput(f"unknown flavor {name!r}; known: {list(DETECT_ORDER)}", field="flavor")
    if name not in _cache:
        module = importlib.import_module(f"mlbox.registry.flavors.{name}")
        _cache[name] = module.FLAVOR
    return _cache[name]


def detect_flavor(model: object) -> Flavor:
    for name in DETECT_ORDER:
        flavor = get_flavor(name)
        if flavor.detect(model):
            return flavor
    raise InvalidInput(
        f"no flavor knows a {type(model).__module__}.{type(model).__qualname__}; give flavor= or"
        " wrap it in a class with a predict method",
        field="model",
    )


def save_model(
    model: Any,
    folder: Path | str,
    *,
    flavor: str | None = None,
    example_input: Any = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Save ``model`` into the empty or new ``folder``; returns the manifest also written there."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = detect_flavor(model) if flavor is None else get_flavor(flavor)
    manifest = {
        "flavor": chosen.name,
        "format": FORMAT,
        **chosen.save(model, folder, example_input=example_input, options=options or {}),
    }
    write_manifest(folder, manifest)
    return manifest


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none; `InvalidInput` when it is not one."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{MANIFEST_FILE} is not JSON: {exc}", field="manifest") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("flavor"), str):
        raise InvalidInput(f"{MANIFEST_FILE} has no 'flavor'", field="manifest")
    get_flavor(manifest["flavor"])
    return manifest


def load_model(
    folder: Path | str, manifest: Mapping[str, Any] | None = None, *, device: str = "cpu"
) -> Predictor:
    """A predictor from a saved folder. Only for folders whose files were verified (the registry's cache)."""
    folder = Path(folder)
    manifest = manifest if manifest is not None else read_manifest(folder)
    if manifest is None:
        raise InvalidInput(f"{folder} has no {MANIFEST_FILE}", field="path")
    return get_flavor(manifest["flavor"]).load(folder, manifest, device=device)
