"""``mlbox runs artifacts ID [PATH] [-o DEST]``: list and download a run's artifacts (issue 18)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlbox.services import Services
from tests.helpers import ok, run_main

FILES = {
    "model/weights.bin": bytes(range(256)) * 40,
    "model/config.json": b'{"hidden": 64}\n',
    "report.txt": b"accuracy 0.9\n",
}


@pytest.fixture
def run_id(services: Services) -> int:
    run = services.tracking.create_run("digits", "mlp")
    for path, data in FILES.items():
        services.tracking.log_artifact_bytes(run.id, path, data)
    return run.id


def test_lists_all_or_under_a_folder(capsys: pytest.CaptureFixture[str], run_id: int) -> None:
    out = ok(capsys, "runs", "artifacts", str(run_id))
    lines = out.splitlines()
    assert lines[0].split() == ["PATH", "SIZE", "SHA256"]
    assert [line.split()[0] for line in lines[1:]] == ["model/config.json", "model/weights.bin", "report.txt"]
    assert "10.0 KiB" in out and hashlib.sha256(FILES["report.txt"]).hexdigest()[:16] in out
    listed = json.loads(ok(capsys, "runs", "artifacts", str(run_id), "model/", "--json"))
    assert [a["path"] for a in listed] == ["model/config.json", "model/weights.bin"]
    assert listed[1]["sha256"] == hashlib.sha256(FILES["model/weights.bin"]).hexdigest()


def test_downloads_a_folder_a_file_and_everything(
    capsys: pytest.CaptureFixture[str], run_id: int, tmp_path: Path
) -> None:
    out = ok(capsys, "runs", "artifacts", str(run_id), "model", "-o", str(tmp_path / "m"))
    assert "downloaded 2 files" in out and "sha256 verified" in out
    for path in ("model/config.json", "model/weights.bin"):
        assert (tmp_path / "m" / path).read_bytes() == FILES[path]
    assert not (tmp_path / "m" / "report.txt").exists()
    ok(capsys, "runs", "artifacts", str(run_id), "report.txt", "-o", str(tmp_path / "r.txt"))
    assert (tmp_path / "r.txt").read_bytes() == FILES["report.txt"]
    (tmp_path / "into").mkdir()
    ok(capsys, "runs", "artifacts", str(run_id), "model/config.json", "-o", str(tmp_path / "into"))
    assert (tmp_path / "into" / "config.json").read_bytes() == FILES["model/config.json"]
    # everything: the two already there are kept, the third written
    out = ok(capsys, "runs", "artifacts", str(run_id), "-o", str(tmp_path / "m"))
    assert "downloaded 1 file " in out and "2 already there" in out
    assert sorted(
        p.relative_to(tmp_path / "m").as_posix() for p in (tmp_path / "m").rglob("*") if p.is_file()
    ) == [
        "model/config.json",
        "model/weights.bin",
        "report.txt",
    ]


def test_refuses_to_overwrite_other_content_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], run_id: int, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    (dest / "model").mkdir(parents=True)
    (dest / "model" / "weights.bin").write_bytes(b"mine")
    code, _, err = run_main(capsys, "runs", "artifacts", str(run_id), "-o", str(dest))
    assert code == 2 and "exists with other content" in err and len(err.strip().splitlines()) == 1
    assert (dest / "model" / "weights.bin").read_bytes() == b"mine"
    assert sorted(p.name for p in dest.rglob("*")) == ["model", "weights.bin"]  # nothing else written


def test_bad_input_is_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], run_id: int, tmp_path: Path
) -> None:
    for argv, said in (
        (("runs", "artifacts", "999"), "no run 999"),
        (("runs", "artifacts", "x"), "not a run id"),
        (("runs", "artifacts", str(run_id), "nothing/here"), "no artifact or folder 'nothing/here'"),
    ):
        code, out, err = run_main(capsys, *argv)
        assert code == 2 and said in err and not out, (argv, err)
    (tmp_path / "file").write_text("x")
    code, _, err = run_main(capsys, "runs", "artifacts", str(run_id), "model", "-o", str(tmp_path / "file"))
    assert code == 2 and "is a file" in err


def test_a_damaged_object_is_never_written(
    capsys: pytest.CaptureFixture[str], services: Services, run_id: int, tmp_path: Path
) -> None:
    info = services.tracking.artifact(run_id, "report.txt")
    (obj,) = [p for p in services.home.artifacts.rglob("*") if p.is_file() and info.sha256[4:] in str(p)]
    obj.chmod(0o600)
    obj.write_bytes(b"tampered\n")  # same length or not, the hash differs
    dest = tmp_path / "dest"
    dest.mkdir()
    code, _, err = run_main(capsys, "runs", "artifacts", str(run_id), "report.txt", "-o", str(dest / "r.txt"))
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert list(dest.iterdir()) == []  # no file, no temporary
