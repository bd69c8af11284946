"""The labeling service on a real SQLite file: projects, imports, the queue, labels, reviews, exports."""

from __future__ import annotations

import csv
import json
import multiprocessing
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlbox.labeling.service import LabelingService
from mlbox.services import Services
from mlbox.store.errors import Conflict, InvalidInput, NotFound

SCHEMA = {"choices": ["cat", "dog", "bird"], "spans": ["PER"], "rating": [1, 5], "note": True}


@pytest.fixture
def lab(services: Services) -> LabelingService:
    return services.labeling


def _project(lab: LabelingService, n: int = 5, *, overlap: int = 1, name: str = "pets") -> None:
    lab.create_project(name, SCHEMA, instructions="pick the animal", overlap=overlap)
    lab.add_tasks(name, [{"text": f"animal number {i}"} for i in range(n)])


def test_schema_refuses_values_outside_it(lab: LabelingService) -> None:
    _project(lab, 1)
    (task,) = lab.next_tasks("pets", "ann")
    with pytest.raises(InvalidInput) as e:
        lab.annotate(task.id, "ann", {"label": "fish"})
    assert e.value.field == "value.label"
    with pytest.raises(InvalidInput) as e:
        lab.annotate(task.id, "ann", {"boxes": []})
    assert e.value.field == "value.boxes"
    with pytest.raises(InvalidInput) as e:
        lab.annotate(task.id, "ann", {"spans": [{"start": 0, "end": 999, "label": "PER"}]})
    assert e.value.field == "value.spans[0]"
    with pytest.raises(InvalidInput):
        lab.annotate(task.id, "ann", {"rating": 6})
    ok = lab.annotate(
        task.id, "ann", {"label": "dog", "spans": [{"start": 0, "end": 6, "label": "PER"}], "rating": 5}
    )
    assert ok.value == {"label": "dog", "spans": [{"start": 0, "end": 6, "label": "PER"}], "rating": 5}
    with pytest.raises(InvalidInput) as e:
        lab.create_project("bad", {"choices": []})
    assert e.value.field == "schema"
    with pytest.raises(InvalidInput):
        lab.create_project("bad", {"choices": ["a"], "colour": "red"})
    with pytest.raises(Conflict):
        lab.create_project("pets", SCHEMA)


def test_queue_claims_labels_skip_undo(lab: LabelingService) -> None:
    _project(lab, 4)
    first = lab.next_tasks("pets", "ann", 2)
    assert [t.data["text"] for t in first] == ["animal number 0", "animal number 1"]
    # the same annotator asking again gets their claimed tasks back; another gets others
    assert [t.id for t in lab.next_tasks("pets", "ann", 2)] == [t.id for t in first]
    other = lab.next_tasks("pets", "bob", 2)
    assert {t.id for t in other}.isdisjoint(t.id for t in first)
    assert lab.next_tasks("pets", "eve", 1) == []
    lab.annotate(first[0].id, "ann", {"label": "cat"})
    lab.skip(first[1].id, "ann")
    # the skipped task goes to someone else, never back to ann
    assert lab.next_tasks("pets", "ann", 5) == []
    assert [t.id for t in lab.next_tasks("pets", "eve", 1)] == [first[1].id]
    back = lab.undo("pets", "ann")
    assert back is not None and back.id == first[1].id
    assert lab.project("pets").labels == 1
    back = lab.undo("pets", "ann")
    assert back is not None and back.id == first[0].id and lab.project("pets").labels == 0
    assert first[0].id in [t.id for t in lab.next_tasks("pets", "ann", 5)]


def test_claims_expire(lab: LabelingService) -> None:
    _project(lab, 1)
    (t,) = lab.next_tasks("pets", "ann", now=1000.0, claim_s=10)
    assert lab.next_tasks("pets", "bob", now=1005.0) == []
    assert [x.id for x in lab.next_tasks("pets", "bob", now=1011.0)] == [t.id]


def test_overlap_gives_a_task_to_k_annotators_and_queues_disagreement(lab: LabelingService) -> None:
    _project(lab, 2, overlap=2)
    a = lab.next_tasks("pets", "ann", 1)
    b = lab.next_tasks("pets", "bob", 1)
    c = lab.next_tasks("pets", "cid", 1)
    assert a[0].id == b[0].id and c[0].id != a[0].id
    lab.annotate(a[0].id, "ann", {"label": "cat"})
    lab.annotate(a[0].id, "bob", {"label": "dog"})
    (review,) = lab.reviews("pets")
    assert review.reason == "disagreement" and review.task_id == a[0].id
    assert a[0].id not in lab.consensus("pets")
    lab.resolve(review.id, "rita", {"label": "dog"})
    assert lab.consensus("pets")[a[0].id] == ({"label": "dog"}, "reviewer")
    assert lab.reviews("pets") == []
    flagged = lab.flag(c[0].id, "cid", "blurry")
    assert [r.id for r in lab.reviews("pets")] == [flagged.id]


def _worker(home: str, name: str, n: int, out: list[int] | None) -> list[int]:
    import os

    os.environ["MLBOX_HOME"] = home
    from mlbox.services import Services
    from mlbox.settings import Settings

    lab = Services.open(Settings.from_env()).labeling
    got = []
    while True:
        tasks = lab.next_tasks("pets", name, 3)
        if not tasks:
            break
        for t in tasks:
            lab.annotate(t.id, name, {"label": "cat"})
            got.append(t.id)
    if out is not None:
        out.extend(got)
    return got


def test_concurrent_annotators_lose_nothing_and_never_share(lab: LabelingService, home: Path) -> None:
    _project(lab, 120)
    results: list[list[int]] = [[], []]
    threads = [threading.Thread(target=_worker, args=(str(home), f"t{i}", 0, results[i])) for i in range(2)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        procs = pool.starmap_async(_worker, [(str(home), f"p{i}", 0, None) for i in range(2)])
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = procs.get(timeout=120)
    everyone = results[0] + results[1] + done[0] + done[1]
    assert len(everyone) == 120 and len(set(everyone)) == 120
    assert len(lab.annotations("pets")) == 120
    assert lab.project("pets").done == 120


def test_imports_every_format_and_refuses_bad_ones(lab: LabelingService, tmp_path: Path) -> None:
    lab.create_project("pets", SCHEMA)
    c = tmp_path / "t.csv"
    c.write_text("text,id\nhello,1\n=cmd,2\n")
    assert lab.import_tasks("pets", c).imported == 2
    j = tmp_path / "t.jsonl"
    j.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert lab.import_tasks("pets", j).imported == 2
    import pyarrow as pa

    pq.write_table(pa.table({"text": ["x", "y", "z"]}), tmp_path / "t.parquet")
    assert lab.import_tasks("pets", tmp_path / "t.parquet").imported == 3
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("first doc")
    (folder / "b.txt").write_text("second doc")
    assert lab.import_tasks("pets", folder).imported == 2
    ls = tmp_path / "ls.json"
    ls.write_text(
        json.dumps(
            [
                {
                    "id": 7,
                    "data": {"text": "Alice sleeps"},
                    "predictions": [
                        {
                            "score": 0.8,
                            "result": [
                                {"type": "choices", "value": {"choices": ["cat"]}},
                                {"type": "labels", "value": {"start": 0, "end": 5, "labels": ["PER"]}},
                            ],
                        }
                    ],
                },
            ]
        )
    )
    res = lab.import_tasks("pets", ls)
    assert res.imported == 1 and res.prelabels == 1
    task = lab.task(res.first_id)
    assert task.prelabel is not None and task.prelabel.confidence == 0.8
    assert task.prelabel.value == {"label": "cat", "spans": [{"start": 0, "end": 5, "label": "PER"}]}
    total = lab.project("pets").tasks
    assert total == 10

    bad = {
        "ragged.csv": (b"text,id\nok,1\nbad\n", "line 3"),
        "latin.csv": ("text\nok\ncaf\xe9\n".encode("latin-1"), "line 3"),
        "url.jsonl": (b'{"text": "ok"}\n{"image": "https://example.com/x.png"}\n', "offline"),
        "unknown.json": (json.dumps([{"data": {"text": "x"}, "colour": 1}]).encode(), "colour"),
        "badpred.json": (
            json.dumps(
                [
                    {
                        "data": {"text": "x"},
                        "predictions": [{"result": [{"type": "choices", "value": {"choices": ["fish"]}}]}],
                    }
                ]
            ).encode(),
            "fish",
        ),
    }
    for name, (content, needle) in bad.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(InvalidInput) as e:
            lab.import_tasks("pets", p)
        assert needle in e.value.message and (name in e.value.message or needle == "fish"), e.value.message
    img = tmp_path / "imgs"
    img.mkdir()
    (img / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InvalidInput, match="does not decode"):
        lab.import_tasks("pets", img)
    assert lab.project("pets").tasks == total  # all or nothing
    with pytest.raises(NotFound):
        lab.import_tasks("pets", tmp_path / "missing.csv")


def test_image_folder_import(lab: LabelingService, tmp_path: Path) -> None:
    from PIL import Image

    lab.create_project("boxes", {"boxes": ["car"]})
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (8, 6), (255, 0, 0)).save(folder / "a.png")
    res = lab.import_tasks("boxes", folder)
    t = lab.task(res.first_id)
    assert t.data["width"] == 8 and t.data["height"] == 6 and Path(t.data["image"]).exists()
    lab.annotate(t.id, "ann", {"boxes": [{"x": 1, "y": 1, "w": 3, "h": 2, "label": "car"}]})


def test_exports(lab: LabelingService, services: Services, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    _project(lab, 3)
    lab.add_tasks("pets", [{"text": '=HYPERLINK("x")'}])
    for t in lab.next_tasks("pets", "ann", 4):
        lab.annotate(t.id, "ann", {"label": "dog"}, comment="ok")
    res = lab.export("pets", tmp_path / "out.parquet")
    assert res.rows == 4 and res.run_id is not None
    table = pq.read_table(res.path).to_pylist()
    assert [r["label"] for r in table] == ["dog"] * 4 and table[0]["text"] == "animal number 0"
    (ds,) = services.tracking.list_datasets(res.run_id)
    assert ds.digest == res.digest and ds.context == "labeled"
    # a training run that reads the file shows the same data version
    from mlbox.tracking.datasets import version_of

    assert version_of(Path(res.path)).digest == res.digest
    with pytest.raises(Conflict, match="exists"):
        lab.export("pets", tmp_path / "out.parquet")
    lab.export("pets", tmp_path / "out.csv")
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert rows[3]["text"] == '\'=HYPERLINK("x")'
    lab.export("pets", tmp_path / "ls.json", "json")
    doc = json.loads((tmp_path / "ls.json").read_text())
    assert doc[0]["annotations"][0]["result"][0]["value"] == {"choices": ["dog"]}
    lab.export("pets", tmp_path / "min.json", "json_min")
    mini = json.loads((tmp_path / "min.json").read_text())
    assert mini[0]["label"] == "dog" and mini[0]["annotator"] == "ann"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ls.json", "min.json", "out.csv", "out.parquet"]


def test_next_task_is_fast_with_100k_tasks(lab: LabelingService) -> None:
    import time

    lab.create_project("big", {"choices": ["a", "b"]})
    lab.add_tasks("big", [{"text": f"t{i}"} for i in range(100_000)])
    lab.set_priorities("big", [(i, float(i % 97)) for i in range(1, 100_001, 7)])
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        (task,) = lab.next_tasks("big", "ann")
        lab.annotate(task.id, "ann", {"label": "a"})
        times.append(time.perf_counter() - t0)
    times.sort()
    assert times[int(len(times) * 0.99)] < 0.05, times[-5:]


def test_annotate_many_is_all_or_nothing(lab: LabelingService) -> None:
    _project(lab, 3)
    (claimed,) = lab.next_tasks("pets", "ann")
    with pytest.raises(InvalidInput):
        lab.annotate_many("pets", "ann", [(1, {"label": "cat"}), (2, {"label": "fish"})])
    with pytest.raises(NotFound):
        lab.annotate_many("pets", "ann", [(1, {"label": "cat"}), (99, {"label": "cat"})])
    assert lab.annotations("pets") == []
    assert lab.annotate_many("pets", "ann", [(1, {"label": "cat"}), (2, {"label": "dog"})]) == 2
    assert claimed.id == 1
    p = lab.project("pets")
    assert (p.labels, p.done) == (2, 2)
    assert [t.id for t in lab.next_tasks("pets", "bob", 5)] == [3]


def test_jsonl_errors_name_the_line(lab: LabelingService, tmp_path: Path) -> None:
    lab.create_project("pets", SCHEMA)
    p = tmp_path / "t.jsonl"
    p.write_text('{"text": "a"}\n\n{"text": "b"\n[1]\n')
    with pytest.raises(InvalidInput, match=r"t\.jsonl: line 3: not JSON"):
        lab.import_tasks("pets", p)
    p.write_text('{"text": "a"}\n[1]\n')
    with pytest.raises(InvalidInput, match="line 2: a task is a JSON object"):
        lab.import_tasks("pets", p)
    p.write_text('{"text": "a"}\n{"text": "b"},{"text": "c"}\n')  # two values on a line
    with pytest.raises(InvalidInput, match="line 2: not JSON"):
        lab.import_tasks("pets", p)
    assert lab.project("pets").tasks == 0
    # plain objects are stored as the lines they are; wrapped Label Studio tasks keep their data
    p.write_text('  {"text": "a", "n": 1}  \n\n{"data": {"text": "b"}}\n')
    res = lab.import_tasks("pets", p)
    assert [lab.task(i).data for i in (res.first_id, res.last_id)] == [{"text": "a", "n": 1}, {"text": "b"}]


def test_columnar_export_matches_the_row_by_row_one(lab: LabelingService, tmp_path: Path) -> None:
    # Arrow reads the stored data texts in one go; tasks whose fields differ in type across rows
    # cannot be one Arrow table and take the row-by-row path. Both give the same rows.
    lab.create_project("even", SCHEMA)
    lab.create_project("mixed", SCHEMA)
    even = [{"text": f"t{i}", "meta": {"n": i}, "extra": "=1+1" if i == 2 else None} for i in range(4)]
    mixed = [{"text": f"t{i}", "meta": {"n": i}, "extra": i if i % 2 else "=1+1"} for i in range(4)]
    for name, tasks in (("even", even), ("mixed", mixed)):
        res = lab.add_tasks(name, tasks)
        assert (res.last_id - res.first_id + 1) == res.imported == 4
        for t in lab.next_tasks(name, "ann", 3):
            lab.annotate(t.id, "ann", {"label": "cat"})
        lab.export(name, tmp_path / f"{name}.parquet")
        lab.export(name, tmp_path / f"{name}.csv")
        rows = pq.read_table(tmp_path / f"{name}.parquet").to_pylist()
        assert [r["text"] for r in rows] == ["t0", "t1", "t2"]
        assert [r["label"] for r in rows] == ["cat"] * 3 and rows[1]["consensus"] == "single"
        assert json.loads(rows[0]["value"]) == {"label": "cat"}
        got = list(csv.DictReader((tmp_path / f"{name}.csv").open()))
        assert (
            next(iter(got[0])) == "task_id"
            and "text" in got[0]
            and list(got[0])[-3:] == ["label", "value", "consensus"]
        )
        assert json.loads(got[1]["meta"]) == {"n": 1}
    assert [r["extra"] for r in csv.DictReader((tmp_path / "even.csv").open())] == ["", "", "'=1+1"]
    assert [r["extra"] for r in csv.DictReader((tmp_path / "mixed.csv").open())] == ["'=1+1", "1", "'=1+1"]


def test_columnar_csv_reads_what_the_csv_module_reads(lab: LabelingService, tmp_path: Path) -> None:
    # Arrow reads a clean CSV and its kernels write the JSON texts; the csv module is the reference.
    from mlbox.labeling.imports import TaskArray, read_tasks

    path = tmp_path / "t.csv"
    path.write_text(
        'text,id,q\r\n"hello, ""w""\nline\\x",1,é\r\n\ttab\\,2,\r\n\r\n"=x",3,"z ✓"\r\n', encoding="utf-8"
    )
    got = read_tasks(path)
    assert isinstance(got, TaskArray) and got.source == str(path) and got.rows == 3
    with path.open(newline="", encoding="utf-8") as f:
        assert [t for chunk in got.chunks for t in json.loads(chunk)] == list(csv.DictReader(f))
    lab.create_project("csv", SCHEMA)
    res = lab.import_tasks("csv", path)
    assert res.imported == 3
    assert lab.task(res.first_id).data == {"id": "1", "q": "é", "text": 'hello, "w"\nline\\x'}
    # what Arrow cannot vouch for goes row by row, which names the line
    path.write_text("text,id\na,1\nb,2,3\n")
    with pytest.raises(InvalidInput, match="line 3: 3 fields"):
        lab.import_tasks("csv", path)
    path.write_text("text,id\na\x01,1\n")
    assert not isinstance(read_tasks(path), TaskArray)
    assert lab.import_tasks("csv", path).imported == 1
    assert lab.project("csv").tasks == 4


def test_bulk_imports_go_in_chunks_in_file_order_all_or_nothing(
    lab: LabelingService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clean file is inserted by SQLite from JSON arrays (json_each), a chunk per INSERT, all
    # in one transaction; a small chunk size here makes many chunks of a small file.
    from mlbox.labeling import imports

    monkeypatch.setattr(imports, "CHUNK_BYTES", 300)
    path = tmp_path / "t.jsonl"
    lines = [f'{{"text": "task {i} \\u00e9\\"", "n": {i}, "x": [1.50, null]}}\n' for i in range(40)]
    path.write_text("".join(lines))
    got = imports.read_tasks(path)
    assert isinstance(got, imports.TaskArray) and got.rows == 40 and len(got.chunks) > 3
    lab.create_project("bulk", SCHEMA)
    res = lab.import_tasks("bulk", path)
    assert (res.imported, res.prelabels, res.last_id - res.first_id) == (40, 0, 39)
    tasks = lab.tasks("bulk", limit=100)
    assert [t.data for t in tasks] == [json.loads(line) for line in lines]  # in the file's order
    assert {t.source for t in tasks} == {str(path)}
    # a bad line in the last chunk: the chunks before it leave nothing behind, the line is named
    path.write_text("".join(lines) + '{"text": oops}\n')
    with pytest.raises(InvalidInput, match="line 41: not JSON"):
        lab.import_tasks("bulk", path)
    assert lab.project("bulk").tasks == 40
    # what SQLite itself refuses (a reader's mistake) rolls the whole import back and names the file
    with pytest.raises(InvalidInput, match="hand-made: not JSON") as exc:
        lab.add_tasks("bulk", imports.TaskArray(['[{"a": 1}]', '[{"a": ]'], 2, "hand-made"))
    assert exc.value.field == "path"
    with pytest.raises(InvalidInput, match="2 tasks read but 1 are JSON objects"):
        lab.add_tasks("bulk", imports.TaskArray(['[{"a": 1}]', "[3]"], 2, "hand-made"))
    assert lab.project("bulk").tasks == 40
    # Windows line ends, a blank line, a "data" that is no Label Studio wrapper: the same tasks
    # whichever reader takes them
    for text in ('{"a": 1}\r\n{"data": null}\r\n', '{"a": 1}\n\n{"data": null}\n'):
        path.write_text(text, newline="")
        res = lab.import_tasks("bulk", path)
        assert [lab.task(i).data for i in (res.first_id, res.last_id)] == [{"a": 1}, {"data": None}]


def test_columnar_export_takes_majority_ties_and_reviewers_from_the_consensus(
    lab: LabelingService, tmp_path: Path
) -> None:
    # SQLite writes the labeled tasks' lines and Arrow reads them; tasks with several labels or a
    # reviewer's value are patched in: the export's rows are exactly `consensus`.
    lab.create_project("votes", SCHEMA, overlap=3)
    lab.add_tasks("votes", [{"text": f"t{i}", "i": i} for i in range(6)])
    ids = [t.id for t in lab.tasks("votes")]
    votes = {
        ids[0]: ["cat", "cat", "dog"],  # majority
        ids[1]: ["cat", "dog"],  # a tie: no consensus label
        ids[2]: ["bird"],  # single
        ids[3]: ["cat", "dog"],  # a tie a reviewer settles
        ids[5]: ["dog", "dog", "dog"],
    }
    for task_id, labels in votes.items():
        for who, label in zip(("ann", "bob", "cy"), labels, strict=False):
            lab.annotate(task_id, who, {"label": label})
    lab.resolve(lab.flag(ids[3], "ann", "a tie").id, "rita", {"label": "bird"})
    lab.export("votes", tmp_path / "votes.parquet")
    rows = pq.read_table(tmp_path / "votes.parquet").to_pylist()
    consensus = lab.consensus("votes")
    assert [(r["task_id"], json.loads(r["value"]), r["consensus"]) for r in rows] == [
        (t, v, how) for t, (v, how) in sorted(consensus.items())
    ]
    assert [(r["text"], r["i"], r["label"]) for r in rows] == [
        ("t0", 0, "cat"),
        ("t2", 2, "bird"),
        ("t3", 3, "bird"),
        ("t5", 5, "dog"),
    ]
    assert [r["consensus"] for r in rows] == ["majority", "single", "reviewer", "majority"]
    # a reviewer settling a task nobody labeled: that row too (the row-by-row path)
    flagged = lab.flag(ids[4], "ann", "look")
    lab.resolve(flagged.id, "rita", {"label": "cat"})
    lab.export("votes", tmp_path / "votes2.parquet")
    rows = pq.read_table(tmp_path / "votes2.parquet").to_pylist()
    assert [(r["task_id"], r["label"], r["consensus"]) for r in rows][3] == (ids[4], "cat", "reviewer")
    assert len(rows) == 5
