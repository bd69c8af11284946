"""MLflow's REST vocabulary, translated to and from mlbox's. Pure: no I/O here.

MLflow speaks milliseconds, upper-case statuses, string ids and lists of
``{"key", "value"}``; mlbox speaks seconds, lower-case statuses, integer ids
and mappings. Every conversion lives here so the REST controllers
(`mlbox.api.mlflow_tracking`, `mlbox.api.mlflow_registry`) stay thin and the
rules can be tested without a server.

Ids: an MLflow run id is the mlbox run id as text (``"12"``); an experiment id
likewise, except MLflow's reserved ``"0"``, the experiment its client uses when
none is set, which is mlbox's ``Default`` experiment, whatever its row id: ``"0"``
is both what a client may send for it and what it is answered as
(`experiment_id_out`), so scripts that hard-code ``experiment_ids=["0"]`` agree
with what they read back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec

from mlbox.store.errors import InvalidInput
from mlbox.tracking.validation import check_key

DEFAULT_EXPERIMENT_ID = "0"
"""The id MLflow's client sends when no experiment is set: mlbox's ``Default``."""

TO_MLFLOW_STATUS = {
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "crashed": "FAILED",  # MLflow has no crashed: a run whose process died failed
    "pruned": "KILLED",  # a pruned trial was stopped on purpose
}
FROM_MLFLOW_STATUS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
                      "FAILED": "failed", "KILLED": "killed"}  # fmt: skip

ERROR_STATUS = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "ENDPOINT_NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "INTERNAL_ERROR": 500,
    "BAD_REQUEST": 400,
}
"""MLflow's error codes and the HTTP status its server answers each with (`mlflow.protos.databricks`)."""


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def seconds(millis: object, field: str) -> float | None:
    if millis is None or millis == "":
        return None
    try:
        return float(millis) / 1000.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{field} must be milliseconds since the epoch, got {millis!r}", field=field
        ) from None


def int_id(value: object, field: str) -> int:
    """An mlbox integer id from MLflow's text id; anything else does not exist here."""
    text = str(value if value is not None else "").strip()
    if not text:
        raise InvalidInput(f"{field} is required", field=field)
    if not text.isdigit() or len(text) > 18:
        from mlbox.store.errors import NotFound

        raise NotFound(f"no {field.removesuffix('_id')} with id {text!r}", field=field)
    return int(text)


def experiment_id_out(exp_id: int | str, default_id: int | None) -> str:
    """MLflow's id of an mlbox experiment: ``"0"`` for ``Default`` (row ``default_id``, None
    while it does not exist), else the row id as text."""
    text = str(exp_id)
    return DEFAULT_EXPERIMENT_ID if default_id is not None and text == str(default_id) else text


def status_to_mlflow(status: str) -> str:
    return TO_MLFLOW_STATUS.get(status, "FAILED")


def status_from_mlflow(status: object) -> str:
    text = str(status or "").upper()
    if text not in FROM_MLFLOW_STATUS:
        raise InvalidInput(
            f"status must be one of {', '.join(FROM_MLFLOW_STATUS)}; got {status!r}", field="status"
        )
    return FROM_MLFLOW_STATUS[text]


VIEW_TYPES: dict[str, Literal["active", "deleted", "all"]] = {
    "ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all", "1": "active", "2": "deleted", "3": "all"
}  # fmt: skip
"""MLflow's ``ViewType`` (by name, or its number as the Python client's ``run_view_type=1`` gives it)."""


def lifecycle(view: object, field: str = "run_view_type") -> Literal["active", "deleted", "all"]:
    """MLflow's view type as mlbox's ``lifecycle`` of a listing (active by default)."""
    text = str(view if view not in (None, "") else "ACTIVE_ONLY").upper()
    if text not in VIEW_TYPES:
        raise InvalidInput(f"{field} must be ACTIVE_ONLY, DELETED_ONLY or ALL, got {view!r}", field=field)
    return VIEW_TYPES[text]


def pairs(items: object, field: str) -> dict[str, str]:
    """MLflow's ``[{"key": k, "value": v}, ...]`` as a mapping (the last of a repeated key wins)."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InvalidInput(f"{field} must be a list of {{key, value}}", field=field)
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InvalidInput(f"{field}[{i}] must be an object with a string key", field=f"{field}[{i}]")
        value = item.get("value", "")
        out[item["key"]] = "" if value is None else str(value)
    return out


_NON_FINITE = {"nan": math.nan, "infinity": math.inf, "inf": math.inf, "-infinity": -math.inf,
               "-inf": -math.inf}  # fmt: skip
"""Protobuf's JSON spells NaN and ±inf as strings."""

Step = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class MetricIn(msgspec.Struct):
    """One of MLflow's metrics as its client sends it (``timestamp`` in milliseconds). Fields
    this does not name are ignored, as MLflow's own server ignores them."""

    key: str
    value: float | str
    timestamp: int | None = None
    step: Step | None = 0


class LogMetricIn(MetricIn):
    """The body of ``runs/log-metric``."""

    run_id: str | None = None
    run_uuid: str | None = None


class LogBatchIn(msgspec.Struct):
    """The body of ``runs/log-batch`` (params and tags are read by `pairs`)."""

    run_id: str | None = None
    run_uuid: str | None = None
    metrics: list[MetricIn] = []
    params: list[Any] = []
    tags: list[Any] = []


_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.DOTALL)
_MISSING = re.compile(r"missing required field `(\w+)`")


def metric_items(items: object) -> list[MetricIn]:
    """Parsed JSON (a list of objects) as `MetricIn`; `InvalidInput` naming ``metrics[i].<field>``."""
    try:
        return msgspec.convert(items, list[MetricIn])
    except msgspec.ValidationError as exc:
        message, where = _AT.match(str(exc)).groups()  # type: ignore[union-attr]
        field = f"metrics{where or ''}"
        missing = _MISSING.search(message)
        if missing:
            field = f"{field}.{missing.group(1)}"
        raise InvalidInput(f"{field}: {message}", field=field) from None


def metric_points(items: Sequence[MetricIn], now: float) -> list[tuple[str, int, float, float]]:
    """MLflow's metrics as mlbox's validated (key, step, seconds, value) points, ``now`` where a
    timestamp is left out; `InvalidInput` naming ``metrics[i].<field>`` otherwise.

    The one reading of them: the Litestar handlers pass what `metric_items` made of the parsed
    body, the fast path (`mlbox.api.mlflow_fast`) what msgspec decoded from the bytes into the
    same structs. A key is checked once per call; NaN and ±inf come as strings.
    """
    out: list[tuple[str, int, float, float]] = []
    keys: set[str] = set()
    append = out.append
    for i, m in enumerate(items):
        key = m.key
        if key not in keys:
            check_key(key, f"metrics[{i}].key")
            keys.add(key)
        value = m.value
        if type(value) is str:
            number = _NON_FINITE.get(value.strip().lower())
            if number is None:
                raise InvalidInput(
                    f"metrics[{i}].value must be a number, got {value!r}", field=f"metrics[{i}].value"
                )
            value = number
        ts = m.timestamp
        append((key, m.step or 0, now if ts is None else ts / 1000.0, value))  # type: ignore[arg-type]
    return out


def kv(mapping: Mapping[str, object]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in sorted(mapping.items())]


# -- search ------------------------------------------------------------------------

_STATUS_COMPARE = re.compile(
    r"((?:attributes?\.|attr\.)?status\s*(?:=|==|!=|<>)\s*)(['\"])(\w+)\2", re.IGNORECASE
)
_STATUS_IN = re.compile(r"((?:attributes?\.|attr\.)?status\s+(?:not\s+)?in\s*\()([^)]*)(\))", re.IGNORECASE)
_TIME_COMPARE = re.compile(
    r"((?:attributes?\.|attr\.)?(?:start_time|end_time)\s*(?:=|==|!=|<>|<=|>=|<|>)\s*)(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_RUN_NAME_TAG = re.compile(r"tags\.(?:`mlflow\.runName`|\"mlflow\.runName\"|mlflow\.runName)(?![\w.])")
_RUN_ID_ATTR = re.compile(r"attributes\.run_?(?:id|uuid)\b", re.IGNORECASE)
_QUOTED_IDS = re.compile(r"(attributes\.id\s+(?:not\s+)?in\s*\()([^)]*)(\))", re.IGNORECASE)
_ATTR = r"(?:attributes?\.|attr\.|run\.)?"


def _created(match: re.Match[str]) -> str:
    """``created`` is MLflow's other name of ``start_time``; `` `Run name` `` of ``run_name``."""
    return "attributes.name" if "`" in match.group(0) else "attributes.start_time"


_RESPELLED: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # MLflow's other spellings of a kind and of attributes, as mlbox's grammar spells them
    (re.compile(r"(?<![\w.`])(?:parameters?)\.(?=[\w`\"])", re.IGNORECASE), "params."),
    (re.compile(r"(?<![\w.`])run\.(?=[\w`\"])", re.IGNORECASE), "attributes."),
    (
        re.compile(r"(?<![\w.`])" + _ATTR + r"(?:`(?:run name|Run name|Run Name)`|created|Created)(?![\w.])"),
        _created,
    ),
    (re.compile(r"(?<![\w.])" + _ATTR + r"user_id(?![\w.])", re.IGNORECASE), "tags.`mlflow.user`"),
]
_EXPERIMENT_COMPARE = re.compile(
    r"((?<![\w.])" + _ATTR + r"experiment_id\s*(?:=|==|!=|<>)\s*)(['\"]?)([^'\"\s)]*)\2", re.IGNORECASE
)
_EXPERIMENT_IN = re.compile(
    r"((?<![\w.])" + _ATTR + r"experiment_id\s+(?:not\s+)?in\s*\()([^)]*)(\))", re.IGNORECASE
)
_IS_NULL = re.compile(
    r"(?<![\w.])((?:params?|parameters?|tags?)\.(?:`[^`]*`|\"[^\"]*\"|[\w\-/:.]+))\s+is\s+(not\s+)?null\b",
    re.IGNORECASE,
)
_UNSUPPORTED = [  # what MLflow's filters name that mlbox's runs cannot answer: refused, named
    (
        re.compile(r"(?<![\w.`'\"])datasets?\.\w*", re.IGNORECASE),
        "dataset filters (dataset.name, .digest, .context)",
    ),
    (re.compile(r"(?<![\w.'\"])" + _ATTR + r"artifact_uri(?![\w.])", re.IGNORECASE), "artifact_uri"),
]


def _lower_status(match: re.Match[str]) -> str:
    word = match.group(3).upper()
    return f"{match.group(1)}'{FROM_MLFLOW_STATUS.get(word, match.group(3).lower())}'"


def _lower_statuses(match: re.Match[str]) -> str:
    words = [w.strip().strip("'\"").upper() for w in match.group(2).split(",") if w.strip()]
    inner = ", ".join(f"'{FROM_MLFLOW_STATUS.get(w, w.lower())}'" for w in words)
    return f"{match.group(1)}{inner}{match.group(3)}"


def _unquote_ids(match: re.Match[str]) -> str:
    ids = [w.strip().strip("'\"") for w in match.group(2).split(",") if w.strip()]
    return f"{match.group(1)}{', '.join(i if i.isdigit() else '-1' for i in ids)}{match.group(3)}"


def _experiment_ids(text: str, default_id: int | None) -> str:
    """MLflow's experiment id as the row id mlbox compares: ``"0"`` is ``Default`` (row
    ``default_id``); anything not a number (or ``"0"`` with no ``Default`` yet) matches none."""
    text = text.strip().strip("'\"")
    if text == DEFAULT_EXPERIMENT_ID:
        return str(default_id if default_id is not None else -1)
    return text if text.isdigit() else "-1"


def translate_filter(text: str | None, default_experiment_id: int | None = None) -> str:
    """An MLflow ``filter_string`` in mlbox's grammar (`mlbox.tracking.search`), which is a superset
    of MLflow's but compares statuses in lower case, times in seconds and ids as integers.

    MLflow's other spellings are mapped (``run.``, ``parameter.``, ``created``, `` `Run name` ``,
    ``user_id`` as the ``mlflow.user`` tag its runs carry, ``IS [NOT] NULL`` as a param or tag
    being there), and ``experiment_id``, which mlbox compares and MLflow's own server refuses,
    takes MLflow's ids (``'0'`` is ``Default``: row ``default_experiment_id``). What mlbox cannot
    answer (``dataset.*``, ``artifact_uri``) is `InvalidInput` naming it, which the API answers as
    MLflow's ``INVALID_PARAMETER_VALUE``; any other error is the search grammar's, naming the place.
    """
    if not text:
        return ""
    for pattern, what in _UNSUPPORTED:
        found = pattern.search(text)
        if found:
            raise InvalidInput(
                f"filter: {found.group(0)!r} at position {found.start()}: {what} cannot be searched in"
                " mlbox's MLflow API",
                field="filter",
            )
    out = _respell(text)
    out = _IS_NULL.sub(lambda m: f"{'' if m.group(2) else 'not '}{m.group(1)} LIKE '%'", out)
    out = _EXPERIMENT_COMPARE.sub(
        lambda m: f"{m.group(1)}{_experiment_ids(m.group(3), default_experiment_id)}", out
    )
    out = _EXPERIMENT_IN.sub(
        lambda m: (
            m.group(1)
            + ", ".join(_experiment_ids(w, default_experiment_id) for w in m.group(2).split(",") if w.strip())
            + m.group(3)
        ),
        out,
    )
    out = _STATUS_COMPARE.sub(_lower_status, out)
    out = _STATUS_IN.sub(_lower_statuses, out)
    out = _TIME_COMPARE.sub(lambda m: f"{m.group(1)}{float(m.group(2)) / 1000.0!r}", out)
    out = _RUN_NAME_TAG.sub("attributes.name", out)
    out = _RUN_ID_ATTR.sub("attributes.id", out)
    out = _QUOTED_IDS.sub(_unquote_ids, out)
    return out


def _respell(text: str) -> str:
    """MLflow's other spellings (`_RESPELLED`) as mlbox's grammar spells them."""
    for pattern, replacement in _RESPELLED:
        text = pattern.sub(replacement, text)
    return text


def translate_order_by(items: Iterable[str] | None) -> list[str]:
    out = []
    for item in items or []:
        text = _RUN_NAME_TAG.sub("attributes.name", _respell(str(item)))
        out.append(_RUN_ID_ATTR.sub("attributes.id", text))
    return out


def page_offset(token: object) -> int:
    """MLflow's opaque ``page_token``: here the offset as text."""
    if token in (None, ""):
        return 0
    text = str(token)
    if not text.isdigit():
        raise InvalidInput(f"page_token {text!r} is not one this server gave", field="page_token")
    return int(text)


def max_results(value: object, default: int, field: str = "max_results", limit: int = 50_000) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(str(value))
    except ValueError:
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field) from None
    if not 0 < n <= limit:
        raise InvalidInput(f"{field} must be between 1 and {limit}", field=field)
    return n


def parse_source(source: str, run_id: str | None) -> tuple[int, str]:
    """The (run id, artifact path) a model version's ``source`` names.

    The client sends ``runs:/<run>/<path>``, or the run's artifact location
    resolved: ``mlflow-artifacts:/<run>/<path>`` (or the same as an http URL
    of this server's artifact routes).
    """
    text = source.strip()
    match = re.match(r"^runs:/([^/]+)/(.+)$", text)
    if match is None:
        match = re.match(
            r"^(?:mlflow-artifacts:|https?://[^/]+/api/2\.0/mlflow-artifacts/artifacts)/+(\d+)/(.+)$", text
        )
    if match is None:
        raise InvalidInput(
            f"source {source!r} is not a run's artifact (runs:/RUN/PATH or mlflow-artifacts:/RUN/PATH):"
            " mlbox registers versions from its runs' logged files only",
            field="source",
        )
    rid = int_id(match.group(1), "run_id")
    if run_id and str(run_id) != str(rid):
        raise InvalidInput(f"source names run {rid}, but run_id is {run_id}", field="run_id")
    return rid, match.group(2).strip("/")


def artifact_uri(run_id: int) -> str:
    """A run's artifact root as MLflow's client resolves it: through this server's artifact routes."""
    return f"mlflow-artifacts:/{run_id}"


def experiment_json(
    exp_id: str, name: str, created_at: float, *, deleted: bool, tags: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "experiment_id": exp_id,
        "name": name,
        "artifact_location": f"mlflow-artifacts:/experiments/{exp_id}",
        "lifecycle_stage": "deleted" if deleted else "active",
        "creation_time": ms(created_at),
        "last_update_time": ms(created_at),
        "tags": kv(tags),
    }


def name_matches(name: str, text: str) -> bool:
    """MLflow's filter of experiments and models by name: ``name = 'x'``, ``!=``, ``LIKE``, ``ILIKE``."""
    import fnmatch

    match = re.fullmatch(
        r"\s*(?:attributes\.)?name\s*(=|!=|LIKE|ILIKE)\s*(['\"])(.*)\2\s*", text, re.IGNORECASE
    )
    if match is None:
        raise InvalidInput(f"filter {text!r}: only filters by name are supported here", field="filter")
    op, value = match.group(1).upper(), match.group(3)
    if op == "=":
        return name == value
    if op == "!=":
        return name != value
    pattern = value.replace("%", "*").replace("_", "?")
    if op == "ILIKE":
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return fnmatch.fnmatchcase(name, pattern)


def example_from_mlflow(raw: bytes) -> Any:
    """MLflow's ``input_example.json`` as what signature inference reads (rows, or named columns)."""
    import numpy as np

    data = json.loads(raw)
    if isinstance(data, dict) and "columns" in data and "data" in data:
        rows = data["data"]
        return {c: np.asarray([r[i] for r in rows]) for i, c in enumerate(data["columns"])}
    if isinstance(data, dict) and "inputs" in data:
        inputs = data["inputs"]
        if isinstance(inputs, dict):
            return {k: np.asarray(v) for k, v in inputs.items()}
        return np.asarray(inputs)
    return np.asarray(data)
