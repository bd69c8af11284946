"""The model registry over a real home: registration, versions, aliases, lineage, integrity."""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlbox
from mlbox.registry.flavors import MANIFEST_FILE, save_model
from mlbox.registry.migrations import migrations
from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.store.db import Database
from mlbox.store.errors import IntegrityError, InvalidInput, NotFound
from tests.models import Doubler

REPO = Path(__file__).resolve().parents[1]
QUICK = {"log_code": False, "log_environment": False}


@pytest.fixture
def registry(services: Services) -> RegistryService:
    t = services.tracking
    return RegistryService(t.db, t.artifacts, t)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def clf(data: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    return LogisticRegression().fit(*data)


def _objects(home: Path) -> set[str]:
    return {p.parent.name + p.name for p in (home / "artifacts" / "objects").glob("*/*")}


def test_migrations_create_the_tables_once(tmp_path: Path) -> None:
    db = Database(tmp_path / "r.db")
    assert migrations.apply(db) == ["m001_registry"]
    assert migrations.apply(db) == []
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"models", "model_versions", "model_files", "aliases", "alias_history"} <= tables


def test_register_from_a_run_artifact_records_lineage_and_copies_nothing(
    registry: RegistryService,
    home: Path,
    tmp_path: Path,
    clf: LogisticRegression,
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = data
    with mlbox.start_run("train", experiment="churn", log_environment=False) as run:
        mlbox.log_dataset(x, "train-x")
        mlbox.log_dataset(y, "val-y", context="validation")
        save_model(clf, tmp_path / "saved")
        logged = mlbox.log_artifact(tmp_path / "saved", "model")
    before = _objects(home)
    mv = registry.register("churn", run_id=run.id, example_input=x[:2], description="first")
    assert _objects(home) == before  # the run's blobs are the version's blobs
    assert (mv.name, mv.version, mv.flavor, mv.run_id, mv.description) == (
        "churn",
        1,
        "sklearn",
        run.id,
        "first",
    )
    assert {(f.path, f.sha256) for f in mv.files} == {
        (a.path.removeprefix("model/"), a.sha256) for a in logged
    }
    ran = registry.tracking.get_run(run.id)
    lineage = mv.lineage
    assert (lineage.source, lineage.run_id, lineage.run_name, lineage.experiment) == (
        f"run:{run.id}/model",
        run.id,
        "train",
        "churn",
    )
    assert (lineage.git_sha, lineage.git_dirty) == (ran.git_sha, ran.git_dirty)
    digests = {d.name: d.digest for d in registry.tracking.list_datasets(run.id)}
    assert {(d.name, d.context, d.digest) for d in lineage.datasets} == {
        ("train-x", "training", digests["train-x"]),
        ("val-y", "validation", digests["val-y"]),
    }
    np.testing.assert_array_equal(registry.load("churn@latest").predict(x), clf.predict(x))


def test_register_a_single_run_file_with_a_flavor(
    registry: RegistryService, tmp_path: Path, clf: LogisticRegression, data: tuple[np.ndarray, np.ndarray]
) -> None:
    (tmp_path / "clf.pkl").write_bytes(pickle.dumps(clf))
    with mlbox.start_run(**QUICK) as run:  # type: ignore[arg-type]
        mlbox.log_artifact(tmp_path / "clf.pkl", "models")
    with pytest.raises(InvalidInput) as err:
        registry.register("plain", run_id=run.id, artifact_path="models/clf.pkl")
    assert err.value.field == "flavor"
    mv = registry.register("plain", run_id=run.id, artifact_path="models/clf.pkl", flavor="sklearn")
    assert [f.path for f in mv.files] == ["clf.pkl", MANIFEST_FILE]
    x = data[0]
    np.testing.assert_array_equal(registry.load("plain").predict(x), clf.predict(x))
    from_object = registry.register("with-run", model=Doubler(), run_id=run.id)
    assert (from_object.lineage.source, from_object.lineage.run_id) == ("object", run.id)
    with pytest.raises(NotFound) as nf:
        registry.register("plain", run_id=run.id, artifact_path="nothing-here")
    assert nf.value.field == "artifact_path"
    with pytest.raises(NotFound) as nf:
        registry.register("plain", run_id=run.id + 100)
    assert nf.value.field == "run_id"


def test_versions_increment_and_never_change(registry: RegistryService) -> None:
    first = registry.register("double", model=Doubler(2.0), example_input=np.arange(3))
    registry.register("double", model=Doubler(3.0))
    third = registry.register("double", model=Doubler(4.0), description="x4")
    assert [v.version for v in registry.list_versions("double")] == [1, 2, 3]
    assert third.version == 3 and registry.resolve("double") == third
    assert registry.get_version("double", 1) == first
    assert registry.load("double/1").predict(np.array([1])).tolist() == [2]
    assert registry.load("double:3").predict(np.array([1])).tolist() == [4]
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        registry.db.conn.execute("UPDATE model_versions SET flavor = 'x' WHERE model = 'double'")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        registry.db.conn.execute("UPDATE model_files SET sha256 = 'x' WHERE model = 'double'")
    (model,) = registry.list_models()
    assert (model.name, model.latest_version, model.version_count, model.aliases) == ("double", 3, 3, {})


def test_two_processes_registering_at_once_get_distinct_versions(
    registry: RegistryService, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """Both children wait at a barrier (files), then register 10 versions each as fast as they can."""
    (tmp_path / "m.pkl").write_bytes(pickle.dumps({"any": "bytes"}))
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from mlbox.registry.service import RegistryService
        from mlbox.services import Services
        from mlbox.settings import Settings
        t = Services.open(Settings.from_env()).tracking
        registry = RegistryService(t.db, t.artifacts, t)
        Path(sys.argv[1]).touch()
        while not Path({str(go)!r}).exists():
            time.sleep(0.005)
        for _ in range(10):
            registry.register("race", files_from={str(tmp_path / "m.pkl")!r}, flavor="python")
        """
    )
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(r)], env=subprocess_env, cwd=tmp_path, stderr=subprocess.PIPE
        )
        for r in ready
    ]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert [v.version for v in registry.list_versions("race")] == list(range(1, 21))


def test_aliases_move_with_history_and_roll_back(registry: RegistryService) -> None:
    for factor in (1.0, 2.0, 3.0):
        registry.register("m", model=Doubler(factor))
    registry.set_alias("m", "champion", 1)
    registry.set_alias("m", "challenger", 2, note="try 2")
    promoted = registry.set_alias("m", "champion", 2, note="promote")
    assert promoted.aliases == ["challenger", "champion"]
    registry.set_alias("m", "champion", 2)  # already there: no move
    registry.set_alias("m", "champion", 1, note="rollback")
    registry.delete_alias("m", "challenger")
    assert registry.resolve("m@champion").version == 1
    assert registry.get_model("m").aliases == {"champion": 1}
    assert [v.aliases for v in registry.list_versions("m")] == [["champion"], [], []]
    moves = [(h.alias, h.from_version, h.to_version, h.note) for h in registry.alias_history("m")]
    assert moves == [
        ("champion", None, 1, ""),
        ("challenger", None, 2, "try 2"),
        ("champion", 1, 2, "promote"),
        ("champion", 2, 1, "rollback"),
        ("challenger", 2, None, ""),
    ]
    assert [h.to_version for h in registry.alias_history("m", "champion")] == [1, 2, 1]
    times = [h.moved_at for h in registry.alias_history("m")]
    assert times == sorted(times)


def test_resolve_formats_and_not_found(registry: RegistryService) -> None:
    registry.register("fmt", model=Doubler())
    registry.register("fmt", model=Doubler())
    registry.set_alias("fmt", "prod", 1)
    for ref, version in [("fmt", 2), ("fmt@latest", 2), ("fmt@prod", 1), ("fmt/1", 1), ("fmt:2", 2),
                         ("models:/fmt/1", 1), ("models:/fmt@prod", 1)]:  # fmt: skip
        assert registry.resolve(ref).version == version, ref
    for ref in ("nope", "fmt/9", "fmt@staging"):
        with pytest.raises(NotFound) as nf:
            registry.resolve(ref)
        assert nf.value.field == "model"
    with pytest.raises(NotFound) as nf:
        registry.get_version("fmt", 9)
    assert nf.value.field == "version"
    with pytest.raises(NotFound) as nf:
        registry.list_versions("nope")
    assert nf.value.field == "name"
    with pytest.raises(NotFound) as nf:
        registry.set_alias("fmt", "prod", 7)
    assert nf.value.field == "version"
    with pytest.raises(NotFound) as nf:
        registry.delete_alias("fmt", "staging")
    assert nf.value.field == "alias"


def test_bad_names_refs_and_sources_name_the_field(registry: RegistryService, tmp_path: Path) -> None:
    registry.register("ok", model=Doubler())
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "weights.bin").write_bytes(b"\x00")
    for alias in ("Champion", "9lives", "latest", "a b"):
        with pytest.raises(InvalidInput) as err:
            registry.set_alias("ok", alias, 1)
        assert err.value.field == "alias"
    for ref in ("ok/0", "ok/one", "ok@", "", "o k"):
        with pytest.raises(InvalidInput) as err:
            registry.resolve(ref)
        assert err.value.field == "model"
    cases = [
        ({"name": "bad/name", "model": Doubler()}, "name"),
        ({"name": "x"}, "model"),
        ({"name": "x", "model": Doubler(), "files_from": tmp_path}, "model"),
        ({"name": "x", "model": Doubler(), "flavor": "caffe"}, "flavor"),
        ({"name": "x", "model": object()}, "model"),
        ({"name": "x", "model": Doubler(), "example_input": {"a": "b"}}, "example_input"),
        ({"name": "x", "files_from": plain}, "flavor"),
        ({"name": "x", "files_from": plain, "flavor": "sklearn"}, "files_from"),
        ({"name": "x", "files_from": tmp_path, "flavor": "python"}, "files_from"),
        ({"name": "x", "model": Doubler(), "run_id": "7"}, "run_id"),
        ({"name": "x", "artifact_path": "model"}, "run_id"),
        ({"name": "x", "run_id": 1, "artifact_path": "../etc"}, "artifact_path"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as err:
            registry.register(**kwargs)  # type: ignore[arg-type]
        assert err.value.field == field, kwargs
    with pytest.raises(NotFound) as nf:
        registry.register("x", files_from=tmp_path / "missing.pkl", flavor="python")
    assert nf.value.field == "files_from"
    assert [m.name for m in registry.list_models()] == ["ok"]  # nothing half-registered


def _object_path(home: Path, sha: str) -> Path:
    return home / "artifacts" / "objects" / sha[:2] / sha[2:]


def test_a_tampered_artifact_refuses_to_load(
    registry: RegistryService, home: Path, clf: LogisticRegression
) -> None:
    mv = registry.register("victim", model=clf)
    (weights,) = [f for f in mv.files if f.path == "model.pkl"]
    obj = _object_path(home, weights.sha256)
    obj.chmod(0o644)
    obj.write_bytes(obj.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError) as err:
        registry.load("victim")
    message = err.value.message
    assert (
        "model 'victim' version 1" in message and "'model.pkl'" in message and "refusing to load" in message
    )
    assert not list((home / "cache" / "models").glob("[0-9a-f]*"))  # nothing half-made left to trust


def test_an_edited_cache_copy_is_rebuilt_from_the_store(
    registry: RegistryService, home: Path, clf: LogisticRegression, data: tuple[np.ndarray, np.ndarray]
) -> None:
    registry.register("cached", model=clf)
    first = registry.load("cached")
    cached = first.folder / "model.pkl"
    cached.chmod(0o644)
    cached.write_bytes(pickle.dumps(Doubler()))  # a different, loadable model
    second = registry.load("cached")
    assert second.folder == first.folder
    x = data[0]
    np.testing.assert_array_equal(second.predict(x), clf.predict(x))
    assert oct(os.stat(second.folder / "model.pkl").st_mode & 0o777) == "0o400"


def test_registering_from_a_tampered_run_artifact_is_refused(
    registry: RegistryService, home: Path, tmp_path: Path
) -> None:
    save_model(Doubler(), tmp_path / "saved")
    with mlbox.start_run(**QUICK) as run:  # type: ignore[arg-type]
        (info, *_) = [
            a for a in mlbox.log_artifact(tmp_path / "saved", "model") if a.path == "model/model.pkl"
        ]
    obj = _object_path(home, info.sha256)
    obj.chmod(0o644)
    obj.write_bytes(b"tampered")
    with pytest.raises(IntegrityError) as err:
        registry.register("x", run_id=run.id)
    assert err.value.field == "artifact_path" and "model/model.pkl" in err.value.message


def test_describe_model(registry: RegistryService) -> None:
    registry.register("d", model=Doubler())
    assert registry.describe_model("d", "doubles things").description == "doubles things"
    with pytest.raises(NotFound):
        registry.describe_model("nope", "x")
