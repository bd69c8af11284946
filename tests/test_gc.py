"""``mlbox gc`` over a real home: the sweep of unreferenced artifact objects (what it removes,
what it keeps), the purge of runs deleted past the retention period, and a real writer
process re-storing the very objects the sweep is removing at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlbox.gc import DAY_S, collect
from mlbox.services import Services
from mlbox.store import ArtifactStore
from mlbox.store.errors import NotFound
from mlbox.store.gc import sweep
from tests.models import Doubler

OLD = time.time() - 7 * DAY_S


def _age(store: ArtifactStore, sha: str, when: float = OLD) -> None:
    os.utime(store.root / "objects" / sha[:2] / sha[2:], (when, when))


def test_sweep_removes_old_unreferenced_objects_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    held, garbage, young, again = (store.put_bytes(b) for b in (b"held", b"garbage!", b"young", b"again"))
    for blob in (held, garbage, again):
        _age(store, blob.sha256)
    store.put_bytes(b"again")  # stored again: touched, so fresh
    dry = sweep(store, lambda: {held.sha256}, dry_run=True)
    assert (dry.removed, dry.freed_bytes, dry.kept_young, dry.referenced) == (1, 8, 2, 1)
    assert store.exists(garbage.sha256)
    done = sweep(store, lambda: {held.sha256})
    assert done == dry
    assert not store.exists(garbage.sha256)
    assert all(store.exists(b.sha256) for b in (held, young, again))
    assert sweep(store, lambda: set(), min_age_s=0).removed == 3
    assert list(store.objects()) == []
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []  # nothing left aside


def test_discard_puts_back_an_object_a_writer_touched(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    blob = store.put_bytes(b"x" * 10)
    _age(store, blob.sha256)
    cutoff = time.time() - 60
    store.put_bytes(b"x" * 10)  # a writer stores the same bytes before the sweep renames it
    assert store.discard(blob.sha256, touched_since=cutoff) is False
    assert store.read_bytes(blob.sha256) == b"x" * 10
    _age(store, blob.sha256)
    assert store.discard(blob.sha256, touched_since=cutoff) is True
    assert store.put_bytes(b"x" * 10).sha256 == blob.sha256  # afresh after removal
    assert store.read_bytes(blob.sha256) == b"x" * 10


def test_gc_purges_runs_past_retention_and_frees_their_objects(services: Services, tmp_path: Path) -> None:
    t = services.tracking
    old, recent = t.create_run("e").id, t.create_run("e").id
    t.log_artifact_bytes(old, "a.bin", b"a" * 1000)
    t.log_artifact_bytes(recent, "b.bin", b"b" * 500)
    for r in (old, recent):
        t.end_run(r)
    now = time.time()
    t.delete_run(old, now=now - 31 * DAY_S)
    t.delete_run(recent, now=now - DAY_S)
    dry = collect(services, older_than_s=30 * DAY_S, dry_run=True, min_object_age_s=0)
    assert (dry.purged_runs, dry.objects_removed, dry.freed_bytes) == ([old], 1, 1000)
    assert t.get_run(old).id == old
    report = collect(services, older_than_s=30 * DAY_S, min_object_age_s=0)
    assert (report.purged_runs, report.objects_removed, report.freed_bytes) == ([old], 1, 1000)
    with pytest.raises(NotFound):
        t.get_run(old)
    assert b"".join(t.read_artifact(recent, "b.bin")) == b"b" * 500


def test_gc_removes_the_model_cache_of_deleted_versions(services: Services) -> None:
    reg = services.registry
    for factor in (2.0, 3.0):
        reg.register("m", model=Doubler(factor))
    kept, gone = (reg.load(f"m/{v}").folder for v in (1, 2))
    reg.delete_version("m", 2)
    assert collect(services, older_than_s=30 * DAY_S, dry_run=True).cache_folders_removed == 1
    assert gone.is_dir()
    report = collect(services, older_than_s=30 * DAY_S)
    assert report.cache_folders_removed == 1 and report.cache_bytes_freed > 0
    assert not gone.exists() and kept.is_dir()


WRITER = """
import sys
from pathlib import Path
from mlbox.store import ArtifactStore, Database
from mlbox.tracking.service import TrackingService

home = Path(sys.argv[1])
t = TrackingService(Database(home / "mlbox.db"), ArtifactStore(home / "artifacts"))
run = t.create_run("writer").id
print(run, flush=True)
for i in range(int(sys.argv[2])):
    # Every other artifact repeats the bytes of an old unreferenced object the sweep is removing.
    data = b"garbage %d" % (i // 2) if i % 2 == 0 else b"fresh %d" % i
    t.log_artifact_bytes(run, f"a/{i}", data)
t.end_run(run)
"""


def test_a_concurrent_writer_never_loses_an_artifact(services: Services, home: Path) -> None:
    store = services.tracking.artifacts
    n = 300
    garbage = [store.put_bytes(b"garbage %d" % k).sha256 for k in range(n)]
    for sha in garbage:
        _age(store, sha)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home), str(n)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    run_id = int(writer.stdout.readline())
    removed = passes = 0
    while writer.poll() is None or passes == 0:
        removed += collect(services, older_than_s=30 * DAY_S, min_object_age_s=2).objects_removed
        passes += 1
    assert writer.wait(timeout=60) == 0
    removed += collect(services, older_than_s=30 * DAY_S, min_object_age_s=2).objects_removed
    logged = services.tracking.list_artifacts(run_id)
    assert len(logged) == n
    for a in logged:  # every recorded artifact is there, and verified
        assert b"".join(services.tracking.read_artifact(run_id, a.path))
    relogged = {a.sha256 for a in logged}
    left = {sha for sha, _, _ in store.objects()}
    assert {g for g in garbage if g not in relogged} & left == set()
    assert removed >= n - len(relogged & set(garbage))
