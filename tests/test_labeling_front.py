"""``mlbox label`` and ``/api/v1/labeling`` over a home under tmp_path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.services import Services
from tests.helpers import error, ok, run_main

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:5151"
PREFIX = "/api/v1/labeling"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as client:
        client.headers.update(AUTH)
        yield client


def test_api_label_a_project_end_to_end(client: TestClient[Litestar], tmp_path: Path) -> None:
    r = client.post(
        f"{PREFIX}/projects", json={"name": "pets", "label_schema": {"choices": ["cat", "dog"]}, "overlap": 2}
    )
    assert r.status_code == 201, r.text
    r = client.post(f"{PREFIX}/projects/pets/tasks", json={"tasks": [{"text": "a"}, {"text": "b"}]})
    assert r.json()["imported"] == 2
    for who, label in (("ann", "cat"), ("bob", "dog")):
        (task,) = client.post(f"{PREFIX}/projects/pets/next", json={"annotator": who}).json()
        assert task["data"] == {"text": "a"}
        r = client.post(
            f"{PREFIX}/tasks/{task['id']}/annotations", json={"annotator": who, "value": {"label": label}}
        )
        assert r.status_code == 201, r.text
    (review,) = client.get(f"{PREFIX}/projects/pets/reviews").json()
    assert review["reason"] == "disagreement"
    r = client.post(
        f"{PREFIX}/reviews/{review['id']}/resolve", json={"reviewer": "rita", "value": {"label": "cat"}}
    )
    assert r.status_code == 200, r.text
    assert client.get(f"{PREFIX}/projects/pets/consensus").json() == [
        {"task_id": review["task_id"], "value": {"label": "cat"}, "how": "reviewer"}
    ]
    stats = client.get(f"{PREFIX}/projects/pets/agreement").json()
    assert stats["tasks"] == 1 and stats["cohen"] == 0.0 and stats["alpha"] is not None
    out = tmp_path / "labels.parquet"
    r = client.post(f"{PREFIX}/projects/pets/export", json={"path": str(out)})
    assert r.status_code == 201 and r.json()["rows"] == 1
    error(client.post(f"{PREFIX}/projects/pets/export", json={"path": str(out)}), 409, "path")
    progress = client.get(f"{PREFIX}/projects/pets/progress", params={"annotator": "ann"}).json()
    assert progress["mine"] == 1 and progress["tasks"] == 2
    projects = client.get(f"{PREFIX}/projects").json()
    assert [p["name"] for p in projects] == ["pets"] and projects[0]["labels"] == 2


def test_api_errors_name_the_field(client: TestClient[Litestar], tmp_path: Path) -> None:
    client.post(f"{PREFIX}/projects", json={"name": "pets", "label_schema": {"choices": ["cat"]}})
    error(
        client.post(
            f"{PREFIX}/projects", json={"name": "x", "label_schema": {"choices": ["a"]}, "colour": 1}
        ),
        400,
    )
    error(client.get(f"{PREFIX}/projects/nope"), 404, "project")
    assert client.post(f"{PREFIX}/projects/pets/tasks", json={"tasks": [{"text": "a"}]}).status_code == 201
    t = client.post(f"{PREFIX}/projects/pets/next", json={"annotator": "ann"}).json()[0]
    error(
        client.post(
            f"{PREFIX}/tasks/{t['id']}/annotations", json={"annotator": "ann", "value": {"label": "dog"}}
        ),
        400,
        "value.label",
    )
    error(
        client.post(f"{PREFIX}/projects/pets/tasks", json={"tasks": [{"image": "http://x.org/a.png"}]}),
        400,
        "image",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("text,n\na,1\nb\n")
    body = error(client.post(f"{PREFIX}/projects/pets/tasks", json={"path": str(bad)}), 400, "path")
    assert "line 3" in body["error"] and "bad.csv" in body["error"]
    error(client.get(f"{PREFIX}/tasks/999"), 404, "task_id")


def test_api_needs_the_token(services: Services) -> None:
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as anon:
        assert anon.get(f"{PREFIX}/projects").status_code == 401
        assert anon.post(f"{PREFIX}/projects/x/next", json={"annotator": "a"}).status_code == 401


def test_cli_new_import_ls_stats_export(
    services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = ok(capsys, "label", "ls")
    assert out.splitlines()[0].split()[:2] == ["NAME", "TASKS"] and "no labeling projects" in out
    out = ok(capsys, "label", "new", "pets", "--choices", "cat,dog", "--rating", "1-5", "--overlap", "2")
    assert "choice: cat, dog" in out and "rating 1-5" in out
    f = tmp_path / "t.jsonl"
    f.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert "imported 2 tasks" in ok(capsys, "label", "import", "pets", str(f))
    lab = services.labeling
    for who, label in (("ann", "cat"), ("bob", "cat")):
        for t in lab.next_tasks("pets", who, 2):
            lab.annotate(t.id, who, {"label": label})
    rows = ok(capsys, "label", "ls").splitlines()
    assert rows[1].split()[:4] == ["pets", "2", "2", "4"]
    stats = ok(capsys, "label", "stats", "pets")
    assert "2/2 tasks done" in stats and "ann" in stats
    data = json.loads(ok(capsys, "label", "stats", "pets", "--json"))
    assert data["agreement"]["tasks"] == 2
    out = ok(capsys, "label", "export", "pets", str(tmp_path / "o.csv"))
    assert "exported 2 rows" in out
    code, _, err = run_main(capsys, "label", "export", "pets", str(tmp_path / "o.csv"))
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "label", "new", "x", "--rating", "five")
    assert code == 2 and "--rating" in err
    code, _, err = run_main(capsys, "label", "nope")
    assert code == 2 and "no labeling project 'nope'" in err


def test_cli_weak(services: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ok(capsys, "label", "new", "sent", "--choices", "neg,pos")
    f = tmp_path / "t.jsonl"
    f.write_text('{"text": "good"}\n{"text": "bad"}\n')
    ok(capsys, "label", "import", "sent", str(f))
    lfs = tmp_path / "lfs.py"
    lfs.write_text(
        "from mlbox.labeling.weak import ABSTAIN, labeling_function\n"
        "@labeling_function()\n"
        "def good(d):\n    return 1 if 'good' in d['text'] else ABSTAIN\n"
    )
    out = ok(capsys, "label", "weak", "sent", str(lfs))
    assert out.splitlines()[1].split()[:3] == ["good", "1", "0.5"]
    empty = tmp_path / "none.py"
    empty.write_text("x = 1\n")
    code, _, err = run_main(capsys, "label", "weak", "sent", str(empty))
    assert code == 2 and "no @labeling_function" in err


def test_api_annotator_from_the_header(client: TestClient[Litestar], services: Services) -> None:
    # X-Mlbox-Annotator names who labels; a body that names someone else is refused; the token
    # is still what lets the call in.
    client.post(f"{PREFIX}/projects", json={"name": "pets", "label_schema": {"choices": ["cat", "dog"]}})
    client.post(f"{PREFIX}/projects/pets/tasks", json={"tasks": [{"text": "a"}, {"text": "b"}]})
    ann = {"X-Mlbox-Annotator": "ann"}
    (t,) = client.post(f"{PREFIX}/projects/pets/next", json={}, headers=ann).json()
    r = client.post(f"{PREFIX}/tasks/{t['id']}/annotations", json={"value": {"label": "cat"}}, headers=ann)
    assert r.status_code == 201 and r.json()["annotator"] == "ann"
    body = error(
        client.post(
            f"{PREFIX}/tasks/{t['id']}/annotations",
            json={"annotator": "bob", "value": {"label": "dog"}},
            headers=ann,
        ),
        400,
        "annotator",
    )
    assert "X-Mlbox-Annotator" in body["error"] and "'bob'" in body["error"]
    error(client.post(f"{PREFIX}/projects/pets/next", json={}), 400, "annotator")
    same = client.post(
        f"{PREFIX}/tasks/{t['id']}/skip", json={"annotator": "ann", "comment": "hmm"}, headers=ann
    )
    assert same.status_code == 201 and same.json()["annotator"] == "ann"
    review = client.post(f"{PREFIX}/tasks/{t['id']}/flag", json={"detail": "odd"}, headers=ann).json()
    assert review["created_by"] == "ann"
    r = client.post(
        f"{PREFIX}/reviews/{review['id']}/resolve",
        json={"value": {"label": "cat"}},
        headers={"X-Mlbox-Annotator": "rita"},
    )
    assert r.status_code == 200 and r.json()["resolved_by"] == "rita"
    (mine,) = services.labeling.task(t["id"]).annotations
    assert (mine.annotator, mine.kind, mine.comment) == ("ann", "skip", "hmm")
    with TestClient(create_app(services, token=TOKEN), base_url=BASE) as anon:
        assert anon.post(f"{PREFIX}/projects/pets/next", json={}, headers=ann).status_code == 401
