"""What a job step's process runs (``JobSpec(function="mlbox.pipelines.jobstep:run_step")``).

It reads the step's inputs back from storage, runs the body inside the job's tracking run and
writes the output into its step run's row; the driver marks the step succeeded when the job
ends well. A process that finds its step no longer running this attempt (cancelled,
retried) writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from mlbox.pipelines.define import resolve
from mlbox.pipelines.execute import inputs, run_body
from mlbox.store import ArtifactStore, Database, Home
from mlbox.store.errors import Conflict


def run_step(step_run_id: int, attempt: int) -> None:
    home = Home(Path(os.environ["MLBOX_HOME"]))
    db = Database(home.db_path)
    artifacts = ArtifactStore(home.artifacts)
    row = db.query_one(
        "SELECT s.node, s.state, s.attempt, r.ref, r.import_root, r.params, r.id AS run_id FROM step_runs s"
        " JOIN pipeline_runs r ON r.id = s.run_id WHERE s.id = ?",
        (step_run_id,),
    )
    if row is None or row["state"] != "running" or row["attempt"] != attempt:
        raise Conflict(f"step run {step_run_id} is no longer running attempt {attempt}", field="step_run_id")
    graph = resolve(row["ref"], [row["import_root"]] if row["import_root"] else []).trace()
    node = graph.nodes[row["node"]]
    params: dict[str, Any] = msgspec.json.decode(row["params"])
    upstream = {
        r["node"]: (r["out_kind"], r["out_payload"])
        for r in db.query(
            "SELECT node, out_kind, out_payload FROM step_runs WHERE run_id = ?", (row["run_id"],)
        )
        if r["node"] in node.deps
    }
    stored = run_body(node, inputs(node, params, upstream, artifacts), artifacts)
    with db.atomic() as conn:
        conn.execute(
            "UPDATE step_runs SET out_kind = ?, out_payload = ?, out_hash = ? WHERE id = ? AND state = 'running'"
            " AND attempt = ?",
            (stored.kind, stored.payload, stored.hash, step_run_id, attempt),
        )
    print(f"step {row['node']} of pipeline run {row['run_id']}: {stored.kind} output stored")
