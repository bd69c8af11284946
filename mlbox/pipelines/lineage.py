"""Lineage: from a served prediction back to the raw files, and from a raw file forward.

The pipelines service records what each step run read (raw files, with their sha256 when it
read them) and made (frames, arrays, datasets by hash; model versions as ``name/version``).
With the graph inside each run (``step_runs.deps``), the reuse of results across runs
(``cached_from``), the registry's provenance (a version's training run) and the prediction
log's version column, that answers both questions:

* ``backward(request_id)``: the request → the model version that answered → the step run
  that registered it → its upstream step runs (through cache hits to the run that computed
  them) → the files they read;
* ``forward(path)``: the file → the step runs that read it → every step run downstream (and
  the later runs that reused those results) → the model versions they registered → how often
  each version was served, and its aliases.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import msgspec

from mlbox.pipelines.values import Stored
from mlbox.store import Database
from mlbox.store.errors import InvalidInput, NotFound

RECORDED_KINDS = frozenset({"frame", "polars", "array", "model", "dataset", "training_set", "predictions"})
MAX_HASHED_BYTES = 1 << 30
"""A raw file larger than this is recorded by name and size only (hashing it would stall a step)."""


class LineageNode(msgspec.Struct, frozen=True):
    id: str
    """``file:<path>``, ``step:<id>``, ``pipeline:<id>``, ``model:<name>/<version>``, ``run:<id>``,
    ``request:<id>``, ``served:<name>/<version>``."""
    kind: str
    label: str


class LineageEdge(msgspec.Struct, frozen=True):
    src: str
    dst: str
    what: str


class LineageGraph(msgspec.Struct, frozen=True):
    root: str
    direction: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]


def output_ref(stored: Stored) -> str:
    if stored.kind == "model":
        raw = msgspec.json.decode(stored.payload)
        return f"{raw['name']}/{raw['version']}"
    if stored.kind == "dataset":
        return stored.hash
    if stored.kind == "training_set":
        return str(msgspec.json.decode(stored.payload)["id"])
    if stored.kind == "predictions":
        raw = msgspec.json.decode(stored.payload)
        return f"{raw['model']}/{raw['version']}@{raw['start']:.3f}..{raw['end']:.3f}"
    return stored.payload


class MadeInput(msgspec.Struct, frozen=True):
    name: str
    """The step's argument."""
    source: str
    """``step`` (an upstream output), ``param`` or ``const``."""
    value: str
    """The upstream node and its output's hash, the parameter's or constant's JSON."""


class MadeBy(msgspec.Struct, frozen=True):
    """Who made an artifact, dataset, training set, model version or prediction log segment."""

    kind: str
    ref: str
    step_run_id: int
    pipeline_run_id: int
    pipeline: str
    node: str
    code_hash: str
    attempt: int
    made_at: float
    inputs: list[MadeInput]
    files: list[str]
    """The raw files the step read, ``path (sha256 …)``."""
    computed_by: int | None = None
    """When the step reused a cached result: the step run that computed it."""


def file_hash(path: str) -> str | None:
    try:
        if os.path.getsize(path) > MAX_HASHED_BYTES:
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def file_input(value: Any) -> tuple[str, str | None] | None:
    """``(absolute path, sha256)`` when ``value`` names an existing file, else None."""
    if not isinstance(value, str) or not value or len(value) > 4096 or "\0" in value:
        return None
    if not os.path.isabs(value) or not os.path.isfile(value):
        return None
    return os.path.realpath(value), file_hash(value)


class _Builder:
    def __init__(self, root: str, direction: str) -> None:
        self.root = root
        self.direction = direction
        self.nodes: dict[str, LineageNode] = {}
        self.edges: dict[tuple[str, str], LineageEdge] = {}

    def node(self, id: str, kind: str, label: str) -> str:
        self.nodes.setdefault(id, LineageNode(id, kind, label))
        return id

    def edge(self, src: str, dst: str, what: str) -> None:
        self.edges.setdefault((src, dst), LineageEdge(src, dst, what))

    def graph(self) -> LineageGraph:
        return LineageGraph(self.root, self.direction, list(self.nodes.values()), list(self.edges.values()))


class Lineage:
    """The queries; ``served(name, version)`` counts a version's logged predictions and
    ``find_request(id)`` answers ``(model, version)`` for a request (both from the prediction log);
    ``model_run(name, version)`` is the version's training run and its aliases (the registry)."""

    def __init__(
        self,
        db: Database,
        *,
        find_request: Callable[[str], tuple[str, int] | None],
        served: Callable[[str, int], int],
        model_info: Callable[[str, int], tuple[int | None, list[str]]],
    ) -> None:
        self.db = db
        self.find_request = find_request
        self.served = served
        self.model_info = model_info

    def _step(self, b: _Builder, step_id: int) -> tuple[str, Any]:
        row = self.db.query_one(
            "SELECT s.id, s.node, s.run_id, s.deps, s.state, s.cached_from, s.code_hash, r.pipeline FROM step_runs s"
            " JOIN pipeline_runs r ON r.id = s.run_id WHERE s.id = ?",
            (step_id,),
        )
        if row is None:
            raise NotFound(f"step run {step_id} does not exist", field="step_run_id")
        sid = b.node(
            f"step:{row['id']}",
            "step",
            f"{row['pipeline']}.{row['node']} (step run {row['id']}, {row['state']}, code {row['code_hash'][:8]})",
        )
        pid = b.node(
            f"pipeline:{row['run_id']}", "pipeline", f"pipeline run {row['run_id']} ({row['pipeline']})"
        )
        b.edge(sid, pid, "part of")
        return sid, row

    def _model(self, b: _Builder, ref: str) -> str:
        name, _, version = ref.rpartition("/")
        mid = b.node(f"model:{ref}", "model", f"model {name} version {version}")
        try:
            run_id, aliases = self.model_info(name, int(version))
        except (NotFound, ValueError):
            return mid
        if run_id is not None:
            b.edge(mid, b.node(f"run:{run_id}", "run", f"tracking run {run_id}"), "trained in")
        for alias in aliases:
            b.edge(mid, b.node(f"alias:{name}@{alias}", "alias", f"{name}@{alias}"), "is")
        return mid

    def made_by(self, kind: str, ref: str) -> list[MadeBy]:
        """Every step run that produced ``ref`` of ``kind`` (a frame's or array's sha256, a
        dataset's hash, ``name/version``, a training set id, a prediction segment), newest first:
        its pipeline run, code version and inputs."""
        if kind not in RECORDED_KINDS:
            raise InvalidInput(
                f"kind must be one of {', '.join(sorted(RECORDED_KINDS))}, not {kind!r}", field="kind"
            )
        rows = self.db.query(
            "SELECT l.step_run_id, l.at, s.run_id, s.node, s.code_hash, s.attempt, s.bindings, s.cached_from,"
            " r.pipeline, r.params FROM pipeline_lineage l JOIN step_runs s ON s.id = l.step_run_id"
            " JOIN pipeline_runs r ON r.id = s.run_id"
            " WHERE l.direction = 'out' AND l.kind = ? AND l.ref = ? ORDER BY l.id DESC",
            (kind, ref),
        )
        if not rows:
            raise NotFound(f"no pipeline step made the {kind} {ref!r}", field="ref")
        out: list[MadeBy] = []
        for r in rows:
            params = msgspec.json.decode(r["params"])
            inputs: list[MadeInput] = []
            for name, b in sorted(msgspec.json.decode(r["bindings"]).items()):
                if b.get("kind") == "step":
                    up = self.db.query_one(
                        "SELECT out_hash FROM step_runs WHERE run_id = ? AND node = ?",
                        (r["run_id"], b["ref"]),
                    )
                    value = f"{b['ref']} (output {((up and up['out_hash']) or '?')[:12]})"
                elif b.get("kind") == "param":
                    value = f"{b['ref']} = {msgspec.json.encode(params.get(b['ref'])).decode()}"
                else:
                    value = msgspec.json.encode(b.get("value")).decode()
                inputs.append(MadeInput(name, str(b.get("kind")), value))
            files = [
                f"{f['ref']} (sha256 {(f['sha256'] or '?')[:12]})"
                for f in self.db.query(
                    "SELECT ref, sha256 FROM pipeline_lineage WHERE step_run_id = ? AND direction = 'in'"
                    " AND kind = 'file' ORDER BY id",
                    (r["step_run_id"],),
                )
            ]
            out.append(
                MadeBy(
                    kind, ref, int(r["step_run_id"]), int(r["run_id"]), r["pipeline"], r["node"],
                    r["code_hash"], int(r["attempt"]), float(r["at"]), inputs, files, r["cached_from"],
                )
            )  # fmt: skip
        return out

    def backward(self, request_id: str) -> LineageGraph:
        """From a served prediction back to the raw files."""
        if not request_id:
            raise InvalidInput("a request id is needed", field="request_id")
        found = self.find_request(request_id)
        if found is None:
            raise NotFound(f"no logged prediction has the request id {request_id!r}", field="request_id")
        name, version = found
        b = _Builder(f"request:{request_id}", "backward")
        rid = b.node(b.root, "request", f"request {request_id}")
        mid = self._model(b, f"{name}/{version}")
        b.edge(rid, mid, "answered by")
        makers = self.db.query(
            "SELECT step_run_id FROM pipeline_lineage WHERE direction = 'out' AND kind = 'model' AND ref = ?",
            (f"{name}/{version}",),
        )
        todo = [int(r["step_run_id"]) for r in makers]
        for s in todo:
            b.edge(mid, f"step:{s}", "registered by")
        seen: set[int] = set()
        while todo:
            step_id = todo.pop()
            if step_id in seen:
                continue
            seen.add(step_id)
            sid, row = self._step(b, step_id)
            if row["cached_from"] is not None:
                b.edge(sid, f"step:{row['cached_from']}", "reused the result of")
                todo.append(int(row["cached_from"]))
            for d in msgspec.json.decode(row["deps"]):
                up = self.db.query_one(
                    "SELECT id FROM step_runs WHERE run_id = ? AND node = ?", (row["run_id"], d)
                )
                if up is not None:
                    b.edge(sid, f"step:{up['id']}", "read the output of")
                    todo.append(int(up["id"]))
            for f in self.db.query(
                "SELECT ref, sha256 FROM pipeline_lineage WHERE step_run_id = ? AND direction = 'in' AND kind = 'file'",
                (step_id,),
            ):
                fid = b.node(f"file:{f['ref']}", "file", f"{f['ref']} (sha256 {(f['sha256'] or '?')[:12]})")
                b.edge(sid, fid, "read")
        return b.graph()

    def forward(self, path: str) -> LineageGraph:
        """From a raw file forward to every model version and served version it influenced."""
        if not path:
            raise InvalidInput("a file path is needed", field="path")
        real = os.path.realpath(path)
        readers = self.db.query(
            "SELECT step_run_id, sha256 FROM pipeline_lineage WHERE direction = 'in' AND kind = 'file' AND ref = ?",
            (real,),
        )
        if not readers:
            raise NotFound(f"no pipeline step read the file {real}", field="path")
        b = _Builder(f"file:{real}", "forward")
        fid = b.node(b.root, "file", real)
        todo: list[int] = []
        for r in readers:
            b.edge(fid, f"step:{r['step_run_id']}", "read by")
            todo.append(int(r["step_run_id"]))
        seen: set[int] = set()
        while todo:
            step_id = todo.pop()
            if step_id in seen:
                continue
            seen.add(step_id)
            sid, row = self._step(b, step_id)
            for down in self.db.query(
                "SELECT id, deps FROM step_runs WHERE run_id = ? AND state IN ('succeeded', 'cached', 'running')",
                (row["run_id"],),
            ):
                if row["node"] in msgspec.json.decode(down["deps"]):
                    b.edge(sid, f"step:{down['id']}", "feeds")
                    todo.append(int(down["id"]))
            for reuse in self.db.query("SELECT id FROM step_runs WHERE cached_from = ?", (step_id,)):
                b.edge(sid, f"step:{reuse['id']}", "reused by")
                todo.append(int(reuse["id"]))
            for out in self.db.query(
                "SELECT ref FROM pipeline_lineage WHERE step_run_id = ? AND direction = 'out' AND kind = 'model'",
                (step_id,),
            ):
                mid = self._model(b, out["ref"])
                b.edge(sid, mid, "registered")
                name, _, version = str(out["ref"]).rpartition("/")
                n = self.served(name, int(version))
                if n:
                    b.edge(
                        mid,
                        b.node(f"served:{out['ref']}", "served", f"{out['ref']}: {n} predictions served"),
                        "served",
                    )
        return b.graph()
