"""Reading tasks from files: Parquet, CSV, JSONL, a folder of text files or images, Label Studio JSON.

Everything is read and checked before anything is stored (the service inserts
the whole list in one transaction), so a bad line anywhere leaves the project
as it was. Errors name the file and the line (or the task and field). Data
stay where they are: an image task holds the image's path; a value that is a
URL is refused, since the appliance is offline and fetches nothing.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from mlbox.store.errors import InvalidInput, NotFound

FORMATS = ("parquet", "csv", "jsonl", "folder", "labelstudio")
TEXT_SUFFIXES = {".txt", ".md", ".text"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
LS_TASK_KEYS = {"id", "data", "predictions", "meta"}


class Imported(NamedTuple):
    """One task as read: its data, where it came from, and a pre-label in Label Studio's shape if any.

    A named tuple, not a frozen dataclass: a million of them are built per import, and a frozen
    dataclass's ``__init__`` alone cost a second of it."""

    data: dict[str, Any]
    source: str
    predictions: tuple[dict[str, Any], ...] = ()
    raw: str | None = None
    """``data`` as the JSON text it was read from, stored as it is (a million lines are not re-encoded)."""


CHUNK_BYTES = 32 << 20
"""How much JSON one INSERT reads (SQLite refuses a string over 1 GB; a bound also keeps memory flat)."""


class TaskArray(NamedTuple):
    """Tasks already checked, all from one file, as JSON arrays of objects (``chunks``, each under
    about `CHUNK_BYTES`): the service inserts each chunk with one ``INSERT ... SELECT`` over SQLite's
    ``json_each`` inside the one transaction, so a million tasks never become a million Python
    objects on their way into the table. What the JSONL reader gives for plain objects and the
    columnar CSV reader for a clean file."""

    chunks: list[str]
    rows: int
    """How many tasks the chunks hold."""
    source: str


def guess_format(path: Path) -> str:
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "labelstudio"
    raise InvalidInput(
        f"{path}: cannot tell the format from its name; pass one of {', '.join(FORMATS)}", field="format"
    )


def read_tasks(path: Path, fmt: str | None = None) -> list[Imported] | TaskArray:
    """Every task in ``path``; `InvalidInput` naming the file and line at the first bad one."""
    if _URL.match(str(path)):
        raise InvalidInput(f"{path}: a URL; the appliance is offline and fetches nothing", field="path")
    if not path.exists():
        raise NotFound(f"{path}: no such file or folder", field="path")
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise InvalidInput(f"format {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
    reader = {
        "parquet": _parquet,
        "csv": _csv,
        "jsonl": _jsonl,
        "folder": _folder,
        "labelstudio": _labelstudio,
    }[fmt]
    tasks: list[Imported] | TaskArray = reader(path)
    if not (tasks.rows if isinstance(tasks, TaskArray) else tasks):
        raise InvalidInput(f"{path}: no tasks in it", field="path")
    return tasks


def refuse_urls(data: dict[str, Any], where: str) -> None:
    """`InvalidInput` when a value of ``data`` is a URL (nothing is fetched: the appliance is offline)."""
    for key, value in data.items():
        if isinstance(value, str) and "://" in value[:40] and _URL.match(value):
            raise InvalidInput(
                f"{where}: field {key!r} is a URL ({value[:60]}); the appliance is offline and fetches"
                " nothing: give the data itself or a local path",
                field=key,
            )


def _parquet(path: Path) -> list[Imported]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InvalidInput(f"{path}: not a readable Parquet file ({exc})", field="path") from None
    src = str(path)
    out = []
    for i, row in enumerate(table.to_pylist()):
        if any(isinstance(v, str) and "://" in v for v in row.values()):
            refuse_urls(row, f"{path}: row {i + 1}")
        out.append(Imported(row, src))
    return out


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"{path}: line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}); save it as UTF-8",
            field="path",
        ) from None


def _csv(path: Path) -> list[Imported] | TaskArray:
    text = _decode(path)
    urls = "://" in text
    if not urls:
        fast = _csv_columnar(text, path)
        if fast is not None:
            return fast
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ","
    )
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{path}: empty, no header line", field="path") from None
    except csv.Error as exc:
        raise InvalidInput(f"{path}: line 1: {exc}", field="path") from None
    if len(set(header)) != len(header) or any(not h for h in header):
        raise InvalidInput(f"{path}: line 1: the header needs distinct, non-empty column names", field="path")
    src = str(path)
    out = []
    n = len(header)
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != n:
                raise InvalidInput(
                    f"{path}: line {reader.line_num}: {len(row)} fields where the header has {n}",
                    field="path",
                )
            data = dict(zip(header, row, strict=True))
            if urls:
                refuse_urls(data, f"{path}: line {reader.line_num}")
            out.append(Imported(data, src))
    except csv.Error as exc:
        raise InvalidInput(f"{path}: line {reader.line_num}: {exc}", field="path") from None
    return out


_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _csv_columnar(text: str, path: Path) -> TaskArray | None:
    """A CSV read by Arrow and turned into JSON texts by Arrow's string kernels (no Python call per
    row). None where this path cannot vouch for the result (a ragged row, a bad header, a control
    character other than tab or newline): the row-by-row reader then reads it and names the line."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        header = next(
            csv.reader(io.StringIO(text[: text.find("\n") + 1 or len(text)], newline=""), delimiter=delimiter)
        )
    except (StopIteration, csv.Error):
        return None
    if not header or len(set(header)) != len(header) or any(not h for h in header):
        return None
    try:
        table = pacsv.read_csv(
            pa.BufferReader(text.encode()),
            read_options=pacsv.ReadOptions(use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if table.column_names != header:
        return None
    parts: list[Any] = []
    for i, name in enumerate(sorted(header)):
        col = table.column(name)
        # One pass finds whether the column needs escaping at all (most text columns do not);
        # only then the control characters are looked for and each escape made.
        if pc.any(pc.match_substring_regex(col, r'[\x00-\x1f"\\]')).as_py():
            if pc.any(pc.match_substring_regex(col, r"[\x00-\x08\x0b\x0c\x0e-\x1f]")).as_py():
                return None
            for old, new in _ESCAPES:
                col = pc.replace_substring(col, old, new)
        key = ("{" if i == 0 else ",") + msgspec.json.encode(name).decode() + ':"'
        parts.extend((key, col, '"'))
    parts.append("}")
    joined = pc.binary_join_element_wise(*parts, "")
    return TaskArray(_arrow_chunks(joined), len(joined), str(path))


def _arrow_chunks(texts: Any) -> list[str]:
    """An Arrow column of JSON object texts as JSON arrays of about `CHUNK_BYTES`, joined by
    Arrow's kernel per record batch (a Python string per batch, not per row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[str] = []
    group: list[str] = []
    size = 0
    for part in texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]:
        if not len(part):
            continue
        one_list = pa.ListArray.from_arrays(pa.array([0, len(part)], pa.int32()), part)
        joined = pc.binary_join(one_list, ",")[0].as_py()
        if group and size + len(joined) > CHUNK_BYTES:
            out.append("[" + ",".join(group) + "]")
            group, size = [], 0
        group.append(joined)
        size += len(joined)
    if group:
        out.append("[" + ",".join(group) + "]")
    return out


class _Probe(msgspec.Struct, gc=False):
    """What the check of a plain JSONL line keeps of it: its ``data`` field if it has one (a Label
    Studio task wraps its data there), nothing else; decoding into it checks the line is one JSON
    object without building a dict."""

    data: msgspec.Raw | None = None


_probes = msgspec.json.Decoder(list[_Probe])


def _jsonl_arrays(text: str, src: str) -> TaskArray | None:
    """A JSONL file of plain objects as JSON arrays: its newlines become commas, the text cut at a
    newline about every `CHUNK_BYTES`; each chunk must decode as exactly one object per line, none
    with a ``data`` field. None where that does not hold (a bad or blank line, a line of two values,
    a Label Studio task): the line-by-line reader then reads the file and names a bad line."""
    body = text.strip()
    chunks: list[str] = []
    rows = start = 0
    while start < len(body):
        end = body.find("\n", start + CHUNK_BYTES)
        end = len(body) if end < 0 else end
        piece = body[start:end]
        chunk = "[" + piece.replace("\n", ",") + "]"
        try:
            probes = _probes.decode(chunk)
        except msgspec.DecodeError:  # a validation error (not an object) is one too
            return None
        lines = piece.count("\n") + 1
        if len(probes) != lines or any(p.data is not None for p in probes):
            return None
        chunks.append(chunk)
        rows += lines
        start = end + 1
    return TaskArray(chunks, rows, src) if rows else None


def _jsonl(path: Path) -> list[Imported] | TaskArray:
    text = _decode(path)
    src = str(path)
    if "://" not in text:  # the common case: plain objects, checked here and stored by SQLite
        plain = _jsonl_arrays(text, src)
        if plain is not None:
            return plain
    numbered = [(no, line) for no, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:  # one decode of the whole file as a JSON list: a million lines without a call each
        objs = msgspec.json.decode(("[" + ",".join(line for _, line in numbered) + "]").encode())
    except msgspec.DecodeError:
        objs = None
    if objs is not None and len(objs) != len(numbered):  # a line held more than one value
        objs = None
    decoder = msgspec.json.Decoder()
    out = []
    for i, (no, line) in enumerate(numbered):
        if objs is not None:
            obj = objs[i]
        else:  # find the bad line to name it
            try:
                obj = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise InvalidInput(f"{path}: line {no}: not JSON ({exc})", field="path") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"{path}: line {no}: a task is a JSON object", field="path")
        wrapped = set(obj) <= LS_TASK_KEYS and isinstance(obj.get("data"), dict)
        data = obj["data"] if wrapped else obj
        if "://" in line:
            refuse_urls(data, f"{path}: line {no}")
        out.append(Imported(data, src, raw=None if wrapped else line.strip()))
    return out


def _folder(path: Path) -> list[Imported]:
    out = []
    for f in sorted(path.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        suffix = f.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            out.append(Imported({"text": _decode(f), "file": f.name}, str(f.resolve())))
        elif suffix in IMAGE_SUFFIXES:
            width, height = image_size(f)
            out.append(
                Imported({"image": str(f.resolve()), "width": width, "height": height}, str(f.resolve()))
            )
    return out


def image_size(path: Path) -> tuple[int, int]:
    """The image's size, decoding it whole: an image that does not decode is refused at import."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return int(im.width), int(im.height)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"{path}: the image does not decode ({exc})", field="path") from None


def _labelstudio(path: Path) -> list[Imported]:
    text = _decode(path)
    try:
        obj = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{path}: not JSON ({exc})", field="path") from None
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        raise InvalidInput(f"{path}: Label Studio tasks are a JSON list of objects", field="path")
    src = str(path)
    out = []
    for i, task in enumerate(obj):
        where = f"{path}: task {i}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InvalidInput(f"{where}: a task is an object with a 'data' object", field="data")
        unknown = sorted(set(task) - LS_TASK_KEYS)
        if unknown:
            raise InvalidInput(
                f"{where}: unknown field {unknown[0]!r} (a task has {', '.join(sorted(LS_TASK_KEYS))})",
                field=unknown[0],
            )
        refuse_urls(task["data"], where)
        preds = task.get("predictions") or []
        if not isinstance(preds, list) or any(not isinstance(p, dict) for p in preds):
            raise InvalidInput(f"{where}: predictions must be a list of objects", field="predictions")
        out.append(Imported(task["data"], src, tuple(preds)))
    return out


def from_labelstudio_result(result: list[Any]) -> dict[str, Any]:
    """A Label Studio ``result`` list as an mlbox value (choices, labels, rectanglelabels, rating, textarea)."""
    value: dict[str, Any] = {}
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise InvalidInput("a prediction's result items are objects with a 'value'", field="predictions")
        kind, v = item.get("type"), item["value"]
        if kind == "choices":
            choices = v.get("choices") or []
            if len(choices) == 1:
                value["label"] = choices[0]
            else:
                value["labels"] = list(choices)
        elif kind == "labels":
            for label in v.get("labels") or []:
                value.setdefault("spans", []).append(
                    {"start": v.get("start"), "end": v.get("end"), "label": label}
                )
        elif kind == "rectanglelabels":
            for label in v.get("rectanglelabels") or []:
                value.setdefault("boxes", []).append(
                    {
                        "x": v.get("x"),
                        "y": v.get("y"),
                        "w": v.get("width"),
                        "h": v.get("height"),
                        "label": label,
                    }
                )
        elif kind == "rating":
            value["rating"] = v.get("rating")
        elif kind == "textarea":
            value["note"] = "\n".join(v.get("text") or [])
        else:
            raise InvalidInput(f"prediction result type {kind!r} is not one mlbox reads", field="predictions")
    return value
