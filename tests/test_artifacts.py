"""The content-addressed artifact store: names, dedup, verification, containment."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from mlbox.store.artifacts import CHUNK, ArtifactStore, clean_relpath
from mlbox.store.errors import IntegrityError, InvalidInput, NotFound


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _objects(store: ArtifactStore) -> list[Path]:
    return sorted(p for p in (store.root / "objects").rglob("*") if p.is_file() or p.is_symlink())


def _tmp_files(store: ArtifactStore) -> list[Path]:
    return list((store.root / "tmp").iterdir())


def test_roundtrip_bytes_file_and_stream(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 17)  # several chunks, not a multiple of the chunk size
    blob = store.put_bytes(data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert store.exists(blob.sha256)
    assert store.read_bytes(blob.sha256) == data
    chunks = list(store.iter_bytes(blob.sha256))
    assert len(chunks) > 1 and b"".join(chunks) == data

    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    fblob = store.put_file(src)
    assert store.read_bytes(fblob.sha256) == b"weights"
    copy = store.copy_to(fblob.sha256, tmp_path / "out" / "deep" / "model.bin")
    assert copy.read_bytes() == b"weights"

    empty = store.put_stream(io.BytesIO(b""))
    assert empty.size == 0 and store.read_bytes(empty.sha256) == b""


def test_objects_are_named_by_hash_and_read_only(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"hello")
    path = store.root / "objects" / blob.sha256[:2] / blob.sha256[2:]
    assert _objects(store) == [path]
    assert stat.S_IMODE(path.stat().st_mode) == 0o400  # read-only, and the owner's alone
    assert _tmp_files(store) == []


def test_same_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    a = store.put_bytes(b"same bytes")
    src = tmp_path / "f.txt"
    src.write_bytes(b"same bytes")
    b = store.put_file(src)
    assert a == b
    assert len(_objects(store)) == 1
    c = store.put_bytes(b"other bytes")
    assert c.sha256 != a.sha256
    assert len(_objects(store)) == 2
    assert _tmp_files(store) == []


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a.txt", "a.txt"),
        ("a/b.txt", "a/b.txt"),
        ("a/./b", "a/b"),
        ("./a//b/", "a/b"),
        ("model/weights.pt", "model/weights.pt"),
        ("with space/ünïcode.txt", "with space/ünïcode.txt"),
        ("a..b/c..", "a..b/c.."),  # dots inside a name are not a parent reference
    ],
)
def test_clean_relpath_accepts_and_normalizes(raw: str, clean: str) -> None:
    assert clean_relpath(raw) == clean


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../x",
        "a/../../b",
        "a/..",
        "/etc/passwd",
        "//etc/passwd",
        "~/x",
        "~root/x",
        "a\\b",
        "..\\..\\windows",
        "a\x00b",
        "a\nb",
        "",
        "   ",
        ".",
        "./",
    ],
)
def test_clean_relpath_refuses_escapes(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        clean_relpath(bad, field="artifact_path")
    assert err.value.field == "artifact_path"
    assert err.value.message


def test_clean_relpath_refuses_non_strings() -> None:
    with pytest.raises(InvalidInput):
        clean_relpath(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        clean_relpath(b"a/b")  # type: ignore[arg-type]


def test_tampered_object_is_refused(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"the real model")
    path = store.root / "objects" / blob.sha256[:2] / blob.sha256[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"a poisoned model")
    with pytest.raises(IntegrityError, match="does not match"):
        store.read_bytes(blob.sha256)
    with pytest.raises(IntegrityError):
        next(store.iter_bytes(blob.sha256))  # refused before the first chunk
    with pytest.raises(IntegrityError):
        store.copy_to(blob.sha256, store.root.parent / "copy.bin")


def test_symlinked_object_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_bytes(b"secret")
    path = store.root / "objects" / blob.sha256[:2] / blob.sha256[2:]
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")  # same bytes: the hash alone would pass
    os.chmod(path, 0o644)
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(IntegrityError, match="not a regular file"):
        store.read_bytes(blob.sha256)


def test_object_that_is_a_folder_is_refused(store: ArtifactStore) -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    (store.root / "objects" / sha[:2] / sha[2:]).mkdir(parents=True)
    with pytest.raises(IntegrityError):
        store.read_bytes(sha)


def test_missing_object_is_not_found(store: ArtifactStore) -> None:
    sha = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(sha)
    with pytest.raises(NotFound):
        store.read_bytes(sha)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../../etc/passwd",
        "ab/../../../etc/passwd",
        "A" * 64,  # upper case is not how names are written
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "/" + "a" * 63,
        "a" * 64 + "\n",
    ],
)
def test_invalid_sha_names_are_refused(store: ArtifactStore, name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        store.read_bytes(name)
    assert err.value.field == "sha256"
    with pytest.raises(InvalidInput):
        store.exists(name)


class _FailingStream(io.RawIOBase):
    """Yields a chunk of data, then fails like a dropped upload or a full disk."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads == 1:
            return b"x" * CHUNK
        raise OSError("connection reset half way")


def test_crash_mid_write_leaves_no_object_and_no_temp_file(store: ArtifactStore) -> None:
    stream = _FailingStream()
    with pytest.raises(OSError, match="half way"):
        store.put_stream(stream)  # type: ignore[arg-type]
    assert stream.reads == 2  # it really failed after writing a chunk
    assert _objects(store) == []
    assert _tmp_files(store) == []
    partial = hashlib.sha256(b"x" * CHUNK).hexdigest()
    assert not store.exists(partial)
