"""Running one step's body: its inputs read back from storage, its output checked and stored.

Shared by the in-process thread pool and the job process (`mlbox.pipelines.jobstep`), so a
step computes the same way wherever it runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from mlbox.pipelines.define import Node, conforms
from mlbox.pipelines.values import Stored, decode, encode
from mlbox.store import ArtifactStore
from mlbox.store.errors import InvalidInput


def cache_key(node: Node, params: Mapping[str, Any], upstream_hashes: Mapping[str, str]) -> str:
    """Code hash + each input's hash (an upstream output's, a parameter's or a constant's)."""
    h = hashlib.sha256(node.step.code_hash.encode())
    for name in sorted(node.bindings):
        b = node.bindings[name]
        if b.kind == "step":
            part = "s:" + upstream_hashes[b.ref]
        elif b.kind == "param":
            part = "p:" + msgspec.json.encode(params.get(b.ref), order="sorted").decode()
        else:
            part = "c:" + msgspec.json.encode(b.value, order="sorted").decode()
        h.update(f"\0{name}\0{part}".encode())
    return h.hexdigest()


def inputs(
    node: Node, params: Mapping[str, Any], upstream: Mapping[str, tuple[str, str]], artifacts: ArtifactStore
) -> dict[str, Any]:
    """The keyword arguments of ``node``'s function; ``upstream`` maps a node to its stored
    ``(kind, payload)``."""
    kwargs: dict[str, Any] = {}
    for name, b in node.bindings.items():
        if b.kind == "step":
            kind, payload = upstream[b.ref]
            kwargs[name] = decode(kind, payload, artifacts)
        elif b.kind == "param":
            kwargs[name] = params.get(b.ref)
        else:
            kwargs[name] = b.value
    return kwargs


def run_body(node: Node, kwargs: Mapping[str, Any], artifacts: ArtifactStore) -> Stored:
    """Call the step and store its output; `InvalidInput` when it does not match the declared type."""
    value = node.step.fn(**kwargs)
    declared = node.step.output
    if not conforms(value, declared):
        raise InvalidInput(
            f"step {node.name!r} returned {type(value).__name__}, but declares"
            f" {getattr(declared, '__name__', declared)}",
            field=node.name,
        )
    return encode(value, artifacts, step=node.name)
