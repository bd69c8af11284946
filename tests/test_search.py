"""The run search language: parsing, errors, and what a filter selects.

The parser is pure and tested on its own (with a hypothesis round trip:
random trees rendered to text parse back to the same tree). What a filter
selects is checked against a real database and a brute-force Python
evaluation of the same tree over random runs, so SQL's three-valued logic,
LIKE vs ILIKE and numeric vs text comparison are pinned down.
"""

from __future__ import annotations

import math
import os
import random
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from mlbox.store import ArtifactStore, Database
from mlbox.store.errors import InvalidInput
from mlbox.tracking import search
from mlbox.tracking.search import BoolOp, Compare, Ident, Node, Not, parse
from mlbox.tracking.series import Chunk
from mlbox.tracking.service import TrackingService

# Hypothesis caches (unicode tables, constants) go to the temp folder, never
# into the working folder; examples are not saved (database=None below).
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "mlbox-tests-hypothesis")


def C(kind: str, name: str, op: str, *values: float | str, negate_in: bool = False) -> Compare:
    return Compare(Ident(kind, name), op, tuple(values), negate_in)


# -- parsing ---------------------------------------------------------------------------

acc_gt = C("metric", "acc", ">", 0.9)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("metrics.acc > 0.9", acc_gt),
        ("  metrics.acc>0.9  ", acc_gt),
        ("metric.acc > .9e0", acc_gt),
        (
            "metrics.val_acc > 0.9 and params.lr = '0.01'",
            BoolOp("AND", (C("metric", "val_acc", ">", 0.9), C("param", "lr", "=", "0.01"))),
        ),
        (
            "metrics.acc > 0.9 AND metrics.loss < 1 OR status = 'failed'",
            BoolOp(
                "OR",
                (
                    BoolOp("AND", (acc_gt, C("metric", "loss", "<", 1.0))),
                    C("attr", "status", "=", "failed"),
                ),
            ),
        ),
        (
            "metrics.acc > 0.9 and (metrics.loss < 1 or status = 'failed')",
            BoolOp(
                "AND",
                (acc_gt, BoolOp("OR", (C("metric", "loss", "<", 1.0), C("attr", "status", "=", "failed")))),
            ),
        ),
        ("not metrics.acc > 0.9", Not(acc_gt)),
        ("NOT NOT (metrics.acc > 0.9)", Not(Not(acc_gt))),
        ("((metrics.acc > 0.9))", acc_gt),
        ("metrics.`val/acc` >= 1e-3", C("metric", "val/acc", ">=", 0.001)),
        ('metrics."val acc" <= -2', C("metric", "val acc", "<=", -2.0)),
        ("metrics.val/acc != 1", C("metric", "val/acc", "!=", 1.0)),
        ("metrics.a.b <> 1", C("metric", "a.b", "!=", 1.0)),
        ("metrics.acc == 1", C("metric", "acc", "=", 1.0)),
        ("params.opt IN ('adam', 'sgd')", C("param", "opt", "IN", "adam", "sgd")),
        ("tags.team not in (1, 'b')", C("tag", "team", "IN", 1.0, "b", negate_in=True)),
        ("params.depth in (3)", C("param", "depth", "IN", 3.0)),
        ("name LIKE 'run-%'", C("attr", "name", "LIKE", "run-%")),
        ("run_name ilike 'RUN%'", C("attr", "run_name", "ILIKE", "RUN%")),
        ("attributes.status = 'running'", C("attr", "status", "=", "running")),
        ("Status = 'running'", C("attr", "status", "=", "running")),
        ("experiment = 'digits'", C("attr", "experiment", "=", "digits")),
        ("start_time > 1700000000", C("attr", "start_time", ">", 1.7e9)),
        ("params.note = 'it''s'", C("param", "note", "=", "it's")),
        ("params.note = 'a\\'b'", C("param", "note", "=", "a'b")),
        ('params.note = "say \\"hi\\""', C("param", "note", "=", 'say "hi"')),
        ("params.note = 'and or not'", C("param", "note", "=", "and or not")),
        ("", None),
        ("   ", None),
    ],
)
def test_parse(text: str, tree: Node | None) -> None:
    assert parse(text) == tree


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("foo.bar > 1", "unknown prefix 'foo' at position 0"),
        ("metrics.acc > 1 and colour = 'red'", "unknown attribute 'colour' at position 20"),
        ("metrics.acc 0.9", "expected an operator (=, !=, <, <=, >, >=, like) at position 12 ('0.9')"),
        ("metrics.acc", "expression ends too early at the end"),
        ("(metrics.acc > 1", "expected ')' at the end"),
        ("(metrics.acc > 1 x", "expected ')' at position 17 ('x')"),
        ("params.lr = '0.01", 'unexpected character "\'" at position 12'),
        ('params.lr = "0.01', "unexpected character '\"' at position 12"),
        ("tags.`team = 'a'", "unexpected character '`' at position 5"),
        ("metrics.acc > 1 garbage", "expected 'and', 'or' or the end at position 16 ('garbage')"),
        ("metrics.acc > 1)", "at position 15 (')')"),
        ("metrics.acc > 'high'", "metrics.acc compares with numbers only; got 'high' at position 14"),
        ("metrics.acc in (1, 'x')", "metrics.acc compares with numbers only; got 'x' at position 19"),
        ("metrics.acc > 1 and", "expression ends too early at the end"),
        ("metrics.acc in 1", "expected '(' after 'in' at position 15 ('1')"),
        ("metrics.acc in (1 2)", "expected ',' or ')' in the list at position 18 ('2')"),
        ("metrics.acc in (1,", "expression ends too early"),
        ("metrics.acc not = 1", "expected 'in' after 'not' at position 16 ('=')"),
        ("metrics.acc = = 1", "expected a number or a quoted string at position 14 ('=')"),
        ("name like 3", "like needs a quoted pattern at position 10 ('3')"),
        ("metrics.`` > 1", "empty name at position 8"),
        ("status = 'a'; DROP TABLE runs", "unexpected character ';' at position 12"),
        ("()", "expected a name such as metrics.acc at position 1 (')')"),
        ("params. > 1", "unexpected character '.' at position 6"),
    ],
)
def test_invalid_filters_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse(text)
    assert err.value.field == "filter"
    assert err.value.message.startswith("filter: ")
    assert fragment in err.value.message


def test_metric_compared_with_text_is_refused_when_compiling_too() -> None:
    """A tree built by hand (not parsed) is checked again when compiled."""
    with pytest.raises(InvalidInput) as err:
        search.to_sql(C("metric", "acc", ">", "high"), [])
    assert err.value.field == "filter"


def test_to_sql_binds_every_value() -> None:
    """User text reaches SQL only as bound parameters, never spliced in."""
    params: list[object] = []
    sql = search.to_sql(parse("params.`x'; DROP TABLE runs; --` = 'y''); --' or name like '%'"), params)
    assert "DROP" not in sql and "--" not in sql
    assert params == ["x'; DROP TABLE runs; --", "y'); --", "*"]


@pytest.mark.parametrize(
    ("order_by", "fragment"),
    [
        (["bogus"], "unknown attribute 'bogus'"),
        (["foo.x DESC"], "unknown prefix 'foo'"),
        (["metrics.acc sideways"], "cannot read 'metrics.acc sideways'"),
        ([""], "ends too early"),
    ],
)
def test_invalid_order_by_names_order_by(order_by: list[str], fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        search.order_sql(order_by, [])
    assert err.value.field == "order_by"
    assert fragment in err.value.message


# -- rendering random trees: the round trip ---------------------------------------------

PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_/:-]*")
PREFIX = {"metric": ["metrics", "metric", "METRICS"], "param": ["params", "param"], "tag": ["tags", "tag"]}
OPS = {
    "=": ["=", "=="],
    "!=": ["!=", "<>"],
    "<": ["<"],
    "<=": ["<="],
    ">": [">"],
    ">=": [">="],
    "LIKE": ["like", "LIKE", "Like"],
    "ILIKE": ["ilike", "ILIKE"],
}
TEXT_ATTRS = ("name", "status", "experiment")
NUMBER_ATTRS = ("id", "start_time", "end_time")


def render_literal(v: float | str, rnd: random.Random) -> str:
    if isinstance(v, float):
        return repr(v)
    if rnd.random() < 0.5:
        return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_ident(ident: Ident, rnd: random.Random) -> str:
    if ident.kind == "attr":
        name = ident.name.upper() if rnd.random() < 0.3 else ident.name
        return f"attributes.{name}" if rnd.random() < 0.5 else name
    prefix = rnd.choice(PREFIX[ident.kind])
    if PLAIN.fullmatch(ident.name) and rnd.random() < 0.5:
        return f"{prefix}.{ident.name}"
    return f"{prefix}.`{ident.name}`"


def render(node: Node, rnd: random.Random) -> str:
    if isinstance(node, Compare):
        ident = render_ident(node.ident, rnd)
        if node.op == "IN":
            values = ", ".join(render_literal(v, rnd) for v in node.values)
            return f"{ident} {'not in' if node.negate_in else 'IN'} ({values})"
        text = f"{ident} {rnd.choice(OPS[node.op])} {render_literal(node.values[0], rnd)}"
        return f"({text})" if rnd.random() < 0.1 else text
    if isinstance(node, Not):
        inner = render(node.part, rnd)
        return f"{rnd.choice(['not', 'NOT'])} {'(' + inner + ')' if isinstance(node.part, BoolOp) else inner}"
    joiner = f" {node.op.lower() if rnd.random() < 0.5 else node.op} "
    return joiner.join(f"({render(p, rnd)})" if isinstance(p, BoolOp) else render(p, rnd) for p in node.parts)


names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="`"), min_size=1, max_size=10)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
numbers = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def any_compare(draw: st.DrawFn) -> Compare:
    kind = draw(st.sampled_from(["metric", "param", "tag", "attr"]))
    if kind == "attr":
        name = draw(st.sampled_from(sorted(search.ATTRIBUTES)))
        literal: st.SearchStrategy[float | str] = st.one_of(numbers, texts)
    else:
        name = draw(names)
        literal = numbers if kind == "metric" else st.one_of(numbers, texts)
    op = draw(st.sampled_from([*OPS, "IN"]))
    if op in ("LIKE", "ILIKE"):
        if kind == "metric":
            op = ">"
        else:
            return Compare(Ident(kind, name), op, (draw(texts),))
    if op == "IN":
        values = tuple(draw(st.lists(literal, min_size=1, max_size=4)))
        return Compare(Ident(kind, name), "IN", values, draw(st.booleans()))
    return Compare(Ident(kind, name), op, (draw(literal),))


def trees(leaf: st.SearchStrategy[Compare]) -> st.SearchStrategy[Node]:
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.builds(Not, children),
            st.builds(
                BoolOp, st.sampled_from(["AND", "OR"]), st.lists(children, min_size=2, max_size=3).map(tuple)
            ),
        ),
        max_leaves=8,
    )


@settings(max_examples=300, database=None, deadline=None)
@given(tree=trees(any_compare()), rnd=st.randoms(use_true_random=False))
def test_rendered_trees_parse_back(tree: Node, rnd: random.Random) -> None:
    text = render(tree, rnd)
    assert parse(text) == tree, text
    search.to_sql(parse(text), [])  # every parsed tree compiles


# -- semantics: the database against a brute-force evaluation -----------------------------

STATUSES = ("running", "finished", "failed", "killed", "crashed")
PARAM_VALUES = {
    "lr": ["0.01", "0.1", "1e-05", "-2", "adam", "007"],
    "depth": ["3", "10", "x", "3.5"],
    "opt": ["adam", "Adam", "sgd", "a%b", "a_b", "ab"],
}
TAG_VALUES = {"team": ["vision", "NLP", "nlp", "n_p", "10"], "stage": ["dev", "prod"]}
METRIC_VALUES = [0.0, 0.5, 0.9, 1.0, -1.0, 3.5, math.nan, math.inf, -math.inf]
RUN_NAMES = ["run-1", "Run-2", "base_a", "baseXa", "x", "RUN%", "ünï"]
TEXT_LITERALS = [
    *{v for vs in PARAM_VALUES.values() for v in vs},
    *{v for vs in TAG_VALUES.values() for v in vs},
    *RUN_NAMES,
    *STATUSES,
    "e1",
    "e2",
    "%",
    "_",
    "a%",
    "%a%",
    "run-%",
    "RUN-%",
    "n_p",
    "N%",
    "",
    "zzz",
]
NUMBER_LITERALS = [0.0, 0.01, 0.1, 1e-05, -2.0, 3.0, 3.5, 10.0, 0.5, 0.9, 1.0, -1.0, 7.0]


@dataclass
class RunSpec:
    experiment: str
    name: str
    status: str
    start: float
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Stored:
    """A run as the brute force sees it: every attribute a filter can name."""

    id: int
    spec: RunSpec
    end_time: float | None


def _subset(draw: st.DrawFn, values: dict[str, list[str]]) -> dict[str, str]:
    keys = draw(st.lists(st.sampled_from(sorted(values)), unique=True))
    return {k: draw(st.sampled_from(values[k])) for k in keys}


@st.composite
def run_specs(draw: st.DrawFn) -> RunSpec:
    metric_keys = draw(st.lists(st.sampled_from(["acc", "loss", "val/acc"]), unique=True))
    return RunSpec(
        experiment=draw(st.sampled_from(["e1", "e2"])),
        name=draw(st.sampled_from(RUN_NAMES)),
        status=draw(st.sampled_from(STATUSES)),
        start=float(draw(st.integers(0, 20))),
        params=_subset(draw, PARAM_VALUES),
        tags=_subset(draw, TAG_VALUES),
        metrics={k: draw(st.sampled_from(METRIC_VALUES)) for k in metric_keys},
    )


def store_runs(svc: TrackingService, specs: list[RunSpec]) -> list[Stored]:
    stored = []
    for spec in specs:
        run = svc.create_run(spec.experiment, spec.name, tags=dict(spec.tags), now=spec.start)
        if spec.params:
            svc.log_params(run.id, dict(spec.params))
        if spec.metrics:
            svc.log_metrics(run.id, {k: _one_point(v) for k, v in spec.metrics.items()})
        end = None
        if spec.status != "running":
            end = spec.start + 5
            svc.end_run(run.id, spec.status, now=end)
        stored.append(Stored(run.id, spec, end))
    return stored


def _one_point(value: float) -> Chunk:
    c = Chunk()
    c.append(0, 0.0, value)
    return c


_JSON_NUMBER = re.compile(r"[ \t\n\r]*-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?[ \t\n\r]*")


def _like(pattern: str, text: str, *, fold: bool) -> bool:
    if fold:  # SQLite's LIKE folds ASCII letters only
        pattern, text = _ascii_lower(pattern), _ascii_lower(text)
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _ascii_lower(s: str) -> str:
    return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in s)


def _cmp(left: float | str, op: str, right: float | str) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    if op == ">=":
        return left >= right  # type: ignore[operator]
    if op == "LIKE":
        return _like(str(right), str(left), fold=False)
    if op == "ILIKE":
        return _like(str(right), str(left), fold=True)
    raise AssertionError(op)


def _match(value: float | str, node: Compare) -> bool:
    if node.op == "IN":
        return (value in node.values) != node.negate_in
    return _cmp(value, node.op, node.values[0])


def _as_text(v: float | str) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return v


def evaluate(node: Node, run: Stored) -> bool | None:
    """SQL semantics in Python: None is SQL's unknown (NULL)."""
    if isinstance(node, Not):
        inner = evaluate(node.part, run)
        return None if inner is None else not inner
    if isinstance(node, BoolOp):
        results = [evaluate(p, run) for p in node.parts]
        if node.op == "AND":
            return False if False in results else (None if None in results else True)
        return True if True in results else (None if None in results else False)
    kind, name = node.ident.kind, node.ident.name
    if kind == "metric":  # EXISTS over the latest value: missing or NaN never matches
        value = run.spec.metrics.get(name)
        return value is not None and not math.isnan(value) and _match(value, node)
    if kind in ("param", "tag"):
        text = (run.spec.params if kind == "param" else run.spec.tags).get(name)
        if text is None:
            return False
        if node.op in ("<", "<=", ">", ">=") and isinstance(node.values[0], float):
            return _JSON_NUMBER.fullmatch(text) is not None and _match(float(text), node)
        return _match(text, Compare(node.ident, node.op, tuple(map(_as_text, node.values)), node.negate_in))
    attrs: dict[str, float | str | None] = {
        "id": float(run.id),
        "name": run.spec.name,
        "status": run.spec.status,
        "experiment": run.spec.experiment,
        "start_time": run.spec.start,
        "end_time": run.end_time,
    }
    attr = attrs[name]
    if attr is None:
        return None
    return _match(attr, node)


@st.composite
def known_compare(draw: st.DrawFn) -> Compare:
    """Comparisons over the names and values the stored runs use (so some match)."""
    kind = draw(st.sampled_from(["metric", "param", "tag", "attr"]))
    text_lit = st.sampled_from(TEXT_LITERALS)
    num_lit = st.one_of(st.sampled_from(NUMBER_LITERALS), st.floats(-5, 25, allow_nan=False))
    if kind == "metric":
        name = draw(st.sampled_from(["acc", "loss", "val/acc", "missing"]))
        lit: st.SearchStrategy[float | str] = num_lit
        ops = ["=", "!=", "<", "<=", ">", ">=", "IN"]
    elif kind in ("param", "tag"):
        name = draw(st.sampled_from([*(PARAM_VALUES if kind == "param" else TAG_VALUES), "missing"]))
        lit = st.one_of(text_lit, num_lit)
        ops = [*OPS, "IN"]
    else:
        name = draw(st.sampled_from([*TEXT_ATTRS, *NUMBER_ATTRS]))
        if name in TEXT_ATTRS:
            lit, ops = text_lit, [*OPS, "IN"]
        else:
            lit, ops = num_lit, ["=", "!=", "<", "<=", ">", ">=", "IN"]
    op = draw(st.sampled_from(ops))
    if op in ("LIKE", "ILIKE"):
        return Compare(Ident(kind, name), op, (draw(text_lit),))
    if op == "IN":
        return Compare(
            Ident(kind, name), "IN", tuple(draw(st.lists(lit, min_size=1, max_size=3))), draw(st.booleans())
        )
    return Compare(Ident(kind, name), op, (draw(lit),))


@pytest.fixture
def fresh_service() -> Iterator[TrackingService]:
    with tempfile.TemporaryDirectory() as tmp:
        yield _service(Path(tmp))


def _service(root: Path) -> TrackingService:
    db = Database(root / "mlbox.db")
    # Durability is not under test here; skipping fsync keeps many examples fast.
    db.conn.execute("PRAGMA synchronous = OFF")
    return TrackingService(db, ArtifactStore(root / "artifacts"))


def _check(svc: TrackingService, stored: list[Stored], tree: Node, rnd: random.Random) -> None:
    text = render(tree, rnd)
    expected = sorted((r.id for r in stored if evaluate(tree, r) is True), reverse=True)
    page = svc.search_runs(text, limit=1000)
    assert [r.id for r in page.runs] == expected, text
    assert page.total == len(expected)


@settings(
    max_examples=25,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(run_specs(), min_size=1, max_size=8),
    filters=st.lists(trees(known_compare()), min_size=1, max_size=12),
    rnd=st.randoms(use_true_random=False),
)
def test_search_matches_brute_force_on_random_runs(
    specs: list[RunSpec], filters: list[Node], rnd: random.Random
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        svc = _service(Path(tmp))
        stored = store_runs(svc, specs)
        for tree in filters:
            _check(svc, stored, tree, rnd)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrackingService, list[Stored]]:
    """Forty runs covering every value in the vocabularies, for many filters."""
    rnd = random.Random(7)
    specs = []
    for i in range(40):
        specs.append(
            RunSpec(
                experiment=rnd.choice(["e1", "e2"]),
                name=RUN_NAMES[i % len(RUN_NAMES)],
                status=STATUSES[i % len(STATUSES)],
                start=float(i % 21),
                params={k: rnd.choice(v) for k, v in PARAM_VALUES.items() if rnd.random() < 0.8},
                tags={k: rnd.choice(v) for k, v in TAG_VALUES.items() if rnd.random() < 0.7},
                metrics={
                    k: METRIC_VALUES[(i + j) % len(METRIC_VALUES)] for j, k in enumerate(["acc", "loss"])
                }
                if i % 6
                else {},
            )
        )
    svc = _service(tmp_path_factory.mktemp("seeded"))
    return svc, store_runs(svc, specs)


@settings(max_examples=250, database=None, deadline=None)
@given(tree=trees(known_compare()), rnd=st.randoms(use_true_random=False))
def test_search_matches_brute_force_on_seeded_runs(
    seeded: tuple[TrackingService, list[Stored]], tree: Node, rnd: random.Random
) -> None:
    svc, stored = seeded
    _check(svc, stored, tree, rnd)


# -- a few semantics spelled out ----------------------------------------------------------


def _ids(svc: TrackingService, text: str, **kwargs: object) -> list[int]:
    return [r.id for r in svc.search_runs(text, **kwargs).runs]  # type: ignore[arg-type]


@pytest.fixture
def three(fresh_service: TrackingService) -> tuple[TrackingService, list[Stored]]:
    specs = [
        RunSpec("e1", "Alpha", "finished", 1.0, {"lr": "0.01", "opt": "adam"}, {"team": "NLP"}, {"acc": 0.5}),
        RunSpec(
            "e1", "alpha", "failed", 2.0, {"lr": "0.1", "opt": "Adam"}, {"team": "nlp"}, {"acc": math.nan}
        ),
        RunSpec("e2", "beta", "running", 3.0, {"lr": "1e-05", "opt": "sgd"}, {}, {"acc": 0.9, "loss": 1.0}),
    ]
    return fresh_service, store_runs(fresh_service, specs)


def test_like_is_case_sensitive_and_ilike_is_not(three: tuple[TrackingService, list[Stored]]) -> None:
    svc, (a, b, _c) = three
    assert _ids(svc, "name LIKE 'alpha'") == [b.id]
    assert _ids(svc, "name LIKE 'A%'") == [a.id]
    assert _ids(svc, "name ILIKE 'ALPHA'") == [b.id, a.id]
    assert _ids(svc, "params.opt like 'adam'") == [a.id]
    assert _ids(svc, "params.opt ilike 'ADAM'") == [b.id, a.id]
    assert _ids(svc, "tags.team like '_LP'") == [a.id]
    assert _ids(svc, "name like '*'") == []  # GLOB characters are literal in LIKE


def test_params_compare_as_numbers_or_text(three: tuple[TrackingService, list[Stored]]) -> None:
    svc, (a, b, c) = three
    assert _ids(svc, "params.lr < 0.05") == [c.id, a.id]  # 1e-05 and 0.01, numerically
    assert _ids(svc, "params.lr < '0.05'") == [a.id]  # as text, '1e-05' > '0.05'
    assert _ids(svc, "params.lr = 0.01") == [a.id]
    assert _ids(svc, "params.lr = '0.1'") == [b.id]
    assert _ids(svc, "params.lr in (0.1, 0.01)") == [b.id, a.id]
    assert _ids(svc, "params.opt > -1") == []  # text is not a number: no numeric order
    assert _ids(svc, "params.missing != 'x'") == []
    assert _ids(svc, "not params.missing = 'x'") == [c.id, b.id, a.id]


def test_metrics_nan_and_missing_match_nothing(three: tuple[TrackingService, list[Stored]]) -> None:
    svc, (a, b, c) = three
    assert _ids(svc, "metrics.acc >= 0") == [c.id, a.id]
    assert _ids(svc, "metrics.acc != 0.5") == [c.id]
    assert _ids(svc, "not metrics.acc >= 0") == [b.id]
    assert _ids(svc, "metrics.loss = 1 or metrics.acc = 0.5") == [c.id, a.id]
    assert _ids(svc, "metrics.acc in (0.5, 0.9) and not metrics.loss > 0") == [a.id]


def test_attributes(three: tuple[TrackingService, list[Stored]]) -> None:
    svc, (a, b, c) = three
    assert _ids(svc, "status = 'running'") == [c.id]
    assert _ids(svc, "attributes.status in ('finished', 'failed')") == [b.id, a.id]
    assert _ids(svc, "status not in ('finished', 'failed')") == [c.id]
    assert _ids(svc, "experiment = 'e1'") == [b.id, a.id]
    assert _ids(svc, "start_time >= 2 and start_time < 3") == [b.id]
    assert _ids(svc, "end_time > 0") == [b.id, a.id]  # a running run has no end
    assert _ids(svc, "not end_time > 0") == []  # unknown stays unknown under not
    assert _ids(svc, f"id = {b.id}") == [b.id]
    assert _ids(svc, "duration = 5") == [b.id, a.id]  # ended runs: 5 s each


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_a_page_by_one_metric_read_from_its_index_is_the_page_of_the_general_order(
    seeded: tuple[TrackingService, list[Stored]], direction: str
) -> None:
    """Ordering by one metric alone reads the (key, value) index and then, past the runs with a
    value, the others (`TrackingService._ids_by_metric`); a second key sends the same order down
    the general path (`search.order_sql`). Every page of both agree: filters, offsets inside the
    valued runs, across their end and past it, a metric no run has."""
    svc, _ = seeded
    for key in ("acc", "loss", "val/acc"):
        for text in ("", "experiment = 'e1'", "status != 'running'", "metrics.loss > 0", "params.opt = 'adam'"):
            whole = _ids(svc, text, order_by=[f"metrics.`{key}` {direction}", "id DESC"], limit=100)
            assert _ids(svc, text, order_by=[f"metrics.`{key}` {direction}"], limit=100) == whole
            for limit in (1, 7, 30):
                for offset in (0, 3, 20, 33, 45):
                    one = _ids(svc, text, order_by=[f"metrics.`{key}` {direction}"], limit=limit, offset=offset)
                    assert one == whole[offset : offset + limit], (key, text, limit, offset)


def test_order_by_metric_puts_missing_and_nan_last(fresh_service: TrackingService) -> None:
    specs = [
        RunSpec("e", "n1", "finished", 1.0, metrics={"acc": 0.5}),
        RunSpec("e", "n2", "finished", 2.0, metrics={"acc": math.nan}),
        RunSpec("e", "n3", "finished", 3.0, metrics={"acc": 0.9}),
        RunSpec("e", "n4", "finished", 4.0),
        RunSpec("e", "n5", "finished", 5.0, metrics={"acc": -math.inf}),
        RunSpec("e", "n6", "finished", 6.0, metrics={"acc": 0.5}),
    ]
    svc = fresh_service
    s = {r.spec.name: r.id for r in store_runs(svc, specs)}
    desc = _ids(svc, "", order_by=["metrics.acc DESC"])
    # Ties (n1, n6) and the NULL block (n2, n4) fall back to newest first.
    assert desc == [s["n3"], s["n6"], s["n1"], s["n5"], s["n4"], s["n2"]]
    asc = _ids(svc, "", order_by=["metrics.acc"])
    assert asc == [s["n5"], s["n6"], s["n1"], s["n3"], s["n4"], s["n2"]]
    assert _ids(svc, "", order_by=["metrics.acc asc", "start_time DESC"])[:3] == [s["n5"], s["n6"], s["n1"]]
    assert _ids(svc, "", order_by=["start_time"]) == [s[f"n{i}"] for i in range(1, 7)]
    assert _ids(svc, "", order_by=["name DESC"]) == [s[f"n{i}"] for i in range(6, 0, -1)]
    assert _ids(svc, "metrics.acc > 0", order_by=["metrics.`acc` DESC"], limit=2) == [s["n3"], s["n6"]]
    assert _ids(svc, "") == [s[f"n{i}"] for i in range(6, 0, -1)]  # default: newest first
