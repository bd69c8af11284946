"""Pipelines: definition checks before anything runs, the state machine, retries and the cache,
on real SQLite and the real artifact store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlbox
from mlbox.pipelines import machine
from mlbox.pipelines.define import topo_order
from mlbox.services import Services
from mlbox.store.errors import Conflict, InvalidInput
from tests import test_pipelines_defs as defs
from tests.helpers import run_main


@pytest.fixture(autouse=True)
def _reset() -> None:
    defs.FAIL.clear()
    defs.CALLS.clear()


def states(run: Any) -> dict[str, str]:
    return {s.node: s.state for s in run.steps}


# -- defining -------------------------------------------------------------------------------


def test_graph_is_traced_from_calls() -> None:
    graph = defs.small.trace()
    assert graph.order()[0] == "load"
    assert graph.nodes["featurize"].deps == ["load"]
    assert graph.nodes["report"].deps == ["count", "summarize"]
    assert graph.nodes["featurize"].bindings["scale"].kind == "param"
    # outside a pipeline a step is the plain function
    assert defs.plus_one(1) == 2


def test_output_type_mismatch_names_the_step() -> None:
    @mlbox.pipeline
    def bad() -> None:
        defs.count(defs.plus_one(1))

    with pytest.raises(InvalidInput) as err:
        bad.trace()
    assert err.value.field == "count.frame"
    assert "expects DataFrame" in str(err.value) and "'plus_one' outputs int" in str(err.value)


def test_missing_input_and_unknown_argument_are_refused() -> None:
    @mlbox.pipeline
    def missing() -> None:
        defs.featurize(defs.load(3))

    with pytest.raises(InvalidInput, match="featurize") as err:
        missing.trace()
    assert err.value.field == "featurize"

    @mlbox.pipeline
    def unknown() -> None:
        defs.load(3, colour="red")

    with pytest.raises(InvalidInput, match="colour"):
        unknown.trace()


def test_unknown_and_missing_parameters(services: Services) -> None:
    with pytest.raises(InvalidInput) as err:
        services.pipelines.submit(defs.small, {"n": 3, "sacle": 1.0})
    assert err.value.field == "params.sacle"
    with pytest.raises(InvalidInput) as err:
        services.pipelines.submit(defs.retrying, {})
    assert err.value.field == "params.marker"
    with pytest.raises(InvalidInput) as err:
        services.pipelines.submit(defs.small, {"n": "ten"})
    assert err.value.field == "params.n"
    assert services.pipelines.list_runs() == []  # nothing was written


def test_cycle_is_refused_naming_a_step() -> None:
    with pytest.raises(InvalidInput, match=r"cycle \(each step needs the next\): a -> c -> b -> a"):
        topo_order({"a": ["c"], "b": ["a"], "c": ["b"], "d": []})
    with pytest.raises(InvalidInput, match="unknown step 'zz'"):
        topo_order({"a": ["zz"]})


def test_a_constant_that_is_not_json_is_refused() -> None:
    @mlbox.pipeline
    def bad() -> None:
        defs.count(object())

    with pytest.raises(InvalidInput, match="constant must be JSON"):
        bad.trace()


# -- running --------------------------------------------------------------------------------


def test_run_passes_frames_as_parquet_and_caches(services: Services) -> None:
    p = services.pipelines
    run = p.wait(p.submit(defs.small, {"n": 10}).id, timeout_s=30)
    assert run.state == "succeeded", run
    assert set(states(run).values()) == {"succeeded"}
    frame = p.output(run.id, "featurize")
    assert isinstance(frame, pd.DataFrame) and list(frame["x2"])[:3] == [0.0, 2.0, 4.0]
    step = next(s for s in run.steps if s.node == "load")
    assert step.out_kind == "frame" and services.tracking.artifacts.exists(step.out_hash or "")
    assert p.output(run.id, "report") == "10 rows, 10 counted"

    # same code, inputs and params: every cacheable step is reused; report asks for no cache
    again = p.wait(p.submit(defs.small, {"n": 10}).id, timeout_s=30)
    assert states(again) == {
        "load": "cached",
        "featurize": "cached",
        "summarize": "cached",
        "count": "cached",
        "report": "succeeded",
    }
    assert next(s for s in again.steps if s.node == "load").cached_from == step.id
    assert defs.CALLS["load"] == 1 and defs.CALLS["report"] == 2

    # a changed parameter misses for the steps it reaches, not for the others
    third = p.wait(p.submit(defs.small, {"n": 10, "scale": 3.0}).id, timeout_s=30)
    assert states(third)["load"] == "cached" and states(third)["count"] == "cached"
    assert states(third)["featurize"] == "succeeded" and states(third)["summarize"] == "succeeded"

    # bypassed per run and per step
    fourth = p.wait(p.submit(defs.small, {"n": 10}, no_cache=True).id, timeout_s=30)
    assert "cached" not in states(fourth).values()
    fifth = p.wait(p.submit(defs.small, {"n": 10}, no_cache_steps=["count"]).id, timeout_s=30)
    assert states(fifth)["count"] == "succeeded" and states(fifth)["load"] == "cached"
    with pytest.raises(InvalidInput, match="no step 'nope'"):
        p.submit(defs.small, {"n": 10}, no_cache_steps=["nope"])


def _pipeline_of(body: str) -> Any:
    namespace: dict[str, Any] = {"mlbox": mlbox}
    source = f"@mlbox.step\ndef twice(n: int) -> int:\n    return {body}\n\n@mlbox.pipeline\ndef p(n: int = 2) -> None:\n    twice(n)\n"
    exec(compile(source, "<pipeline>", "exec"), namespace)
    return namespace["p"]


def test_changed_code_misses_the_cache(services: Services) -> None:
    p = services.pipelines
    first = p.wait(p.submit(_pipeline_of("n * 2")).id, timeout_s=30)
    assert states(first) == {"twice": "succeeded"}
    changed = p.wait(p.submit(_pipeline_of("n + n")).id, timeout_s=30)
    assert states(changed) == {"twice": "succeeded"}  # same inputs, other code: a miss
    same = p.wait(p.submit(_pipeline_of("n * 2")).id, timeout_s=30)
    assert states(same) == {"twice": "cached"}
    assert p.output(same.id, "twice") == 4


def test_a_failed_step_stops_only_its_dependants_and_retry_runs_the_rest(services: Services) -> None:
    p = services.pipelines
    defs.FAIL.add("summarize")
    run = p.wait(p.submit(defs.small, {"n": 5}).id, timeout_s=30)
    assert run.state == "failed" and run.message == "failed: summarize"
    assert states(run) == {
        "load": "succeeded",
        "featurize": "succeeded",
        "summarize": "failed",
        "count": "succeeded",
        "report": "skipped",
    }
    assert "summarize was told to fail" in p.step_log(run.id, "summarize")
    with pytest.raises(Conflict):
        p.retry(run.id, "load")  # it has its value
    defs.FAIL.clear()
    p.retry(run.id)
    done = p.wait(run.id, timeout_s=30)
    assert done.state == "succeeded"
    assert defs.CALLS["load"] == 1 and defs.CALLS["featurize"] == 1 and defs.CALLS["count"] == 1
    assert defs.CALLS["summarize"] == 2 and defs.CALLS["report"] == 1
    assert next(s for s in done.steps if s.node == "summarize").attempt == 2


def test_retries_with_backoff(services: Services, tmp_path: Path) -> None:
    p = services.pipelines
    run = p.wait(p.submit(defs.retrying, {"marker": str(tmp_path / "m")}).id, timeout_s=30)
    assert run.state == "succeeded"
    (step,) = run.steps
    assert step.attempt == 3
    log = p.step_log(run.id, "flaky")
    assert "attempt 1: failed" in log and "attempt 2: failed" in log and "attempt 3: succeeded" in log


def test_an_output_of_the_wrong_type_fails_the_step(services: Services) -> None:
    p = services.pipelines
    run = p.wait(p.submit(defs.liar).id, timeout_s=30)
    assert run.state == "failed"
    assert "returned str, but declares int" in (run.steps[0].message or "")


def test_cancel_stops_what_has_not_started(services: Services, tmp_path: Path) -> None:
    p = services.pipelines
    run = p.submit(defs.marks, {"folder": str(tmp_path), "seconds": 0.3})
    p.advance()
    cancelled = p.cancel(run.id)
    assert cancelled.state == "cancelled"
    assert states(cancelled)["both"] == "cancelled"
    with pytest.raises(Conflict):
        p.cancel(run.id)
    p.retry(run.id)
    assert p.wait(run.id, timeout_s=30).state == "succeeded"


# -- the state machine over random graphs and failure points -----------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, list[str]], set[str]]:
    n = draw(st.integers(1, 12))
    deps: dict[str, list[str]] = {}
    for i in range(n):
        ups = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        deps[f"s{i}"] = sorted(f"s{j}" for j in ups)
    failing = draw(st.sets(st.sampled_from(sorted(deps)), max_size=n))
    return deps, failing


def _simulate(deps: dict[str, list[str]], states: dict[str, str], failing: set[str], ran: list[str]) -> None:
    order = topo_order(deps)
    while True:
        for n, s in machine.propagate(order, deps, states).items():
            assert states[n] == "pending"
            states[n] = s
        ready = [n for n in order if states[n] == "ready"]
        if not ready:
            return
        n = ready[-1]
        assert all(states[d] in machine.OK for d in deps[n])  # never runs without its inputs
        ran.append(n)
        states[n] = "failed" if n in failing else "succeeded"


def _ancestors(deps: dict[str, list[str]], n: str) -> set[str]:
    out: set[str] = set()
    stack = list(deps[n])
    while stack:
        d = stack.pop()
        if d not in out:
            out.add(d)
            stack.extend(deps[d])
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_transitions_over_random_dags(case: tuple[dict[str, list[str]], set[str]]) -> None:
    deps, failing = case
    states = {n: "pending" for n in deps}
    ran: list[str] = []
    _simulate(deps, states, failing, ran)
    assert all(s in machine.TERMINAL for s in states.values())
    assert len(ran) == len(set(ran))  # no step ran twice
    for n, s in states.items():
        blocked = _ancestors(deps, n) & failing
        if blocked:
            assert s == "skipped"
        elif n in failing:
            assert s == "failed"
        else:
            assert s == "succeeded"  # a failure elsewhere does not stop it
    expected = "succeeded" if not any(s == "failed" for s in states.values()) else "failed"
    assert machine.run_state(states.values()) == expected

    # retrying the failed part (the failures fixed) runs exactly what had no value, once
    before = dict(states)
    for n in machine.to_retry(deps, states):
        states[n] = "pending"
    again: list[str] = []
    _simulate(deps, states, set(), again)
    assert set(again) == {n for n, s in before.items() if s in machine.DEAD}
    assert machine.run_state(states.values()) == "succeeded"


def test_calling_a_pipeline_runs_it_here(home: Path) -> None:
    run = defs.small(n=3)
    assert run.state == "succeeded" and run.params == {"n": 3, "scale": 2.0}
    with pytest.raises(InvalidInput):
        defs.small(m=3)


def test_the_jobs_loop_advances_runs_under_keys_of_its_own(services: Services) -> None:
    run = services.pipelines.submit(defs.small, {"n": 2})
    changed = services.reconcile("jobs")
    assert changed["pipeline_steps_started"] == [run.steps[0].id]
    assert "started" not in changed or changed["started"] != changed["pipeline_steps_started"]
    assert services.pipelines.wait(run.id, timeout_s=30).state == "succeeded"


_EXAMPLE = [0]


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(dags())
def test_the_service_over_random_dags_and_failure_points(
    services: Services, case: tuple[dict[str, list[str]], set[str]]
) -> None:
    """The persisted state machine: a failure stops only its dependants; retrying the failed
    part (fixed) runs each step without a value once, and never a step that has one."""
    deps, failing = case
    _EXAMPLE[0] += 1
    prefix = f"x{_EXAMPLE[0]}-"

    @mlbox.pipeline(name=f"random{_EXAMPLE[0]}")
    def random_dag() -> None:
        out: dict[str, Any] = {}
        for n in topo_order(deps):
            ups = dict(zip("abc", (out[d] for d in deps[n]), strict=False))
            out[n] = defs.node(prefix + n, **ups)

    defs.FAIL.update(prefix + n for n in failing)
    p = services.pipelines
    run = p.wait(p.submit(random_dag, no_cache=True).id, timeout_s=60)
    by_tag = {s.node: s.state for s in run.steps}
    # node names follow call order: node, node_2, ...; map them back to the graph's names
    names = {n: "node" if i == 0 else f"node_{i + 1}" for i, n in enumerate(topo_order(deps))}
    expected: dict[str, str] = {}
    for n in deps:
        if _ancestors(deps, n) & failing:
            expected[n] = "skipped"
        else:
            expected[n] = "failed" if n in failing else "succeeded"
    assert {n: by_tag[names[n]] for n in deps} == expected
    assert all(defs.CALLS[prefix + n] == (0 if s == "skipped" else 1) for n, s in expected.items())
    if "failed" in expected.values():
        defs.FAIL.difference_update(prefix + n for n in failing)
        p.retry(run.id)
        done = p.wait(run.id, timeout_s=60)
        assert done.state == "succeeded"
        assert all(defs.CALLS[prefix + n] == (2 if s == "failed" else 1) for n, s in expected.items())
    else:
        assert run.state == "succeeded"


def test_what_each_in_process_step_prints_and_logs_lands_in_its_own_log(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    p = services.pipelines
    run = p.wait(p.submit(defs.two_chatty, {"seconds": 0.05}).id, timeout_s=30)
    assert run.state == "succeeded"
    left, right = (s.node for s in run.steps)
    for node, tag, other in ((left, "left", "right"), (right, "right", "left")):
        log = p.step_log(run.id, node)
        assert [f"{tag} line {i}" in log for i in range(3)] == [True] * 3
        assert f"{tag} warns" in log and f"WARNING chatty: {tag} logged" in log
        assert other not in log  # the two ran at once in the pool, each kept its own
    print("the test's own line")
    out, err = capsys.readouterr()
    assert "the test's own line" in out and "left line" not in out + err
    code, out, _ = run_main(capsys, "pipelines", "show", str(run.id), "--logs")
    assert code == 0 and f"--- {left} (succeeded) ---" in out and "right line 2" in out
    defs.FAIL.add("left")
    failed = p.wait(p.submit(defs.two_chatty, {"seconds": 0.0}, no_cache=True).id, timeout_s=30)
    assert failed.state == "failed"
    log = p.step_log(failed.id, left)
    assert log.index("left line 2") < log.index("RuntimeError: left was told to fail")


def test_an_in_process_step_past_its_timeout_fails_and_its_late_result_is_dropped(
    services: Services,
) -> None:
    import time

    p = services.pipelines
    quick = p.wait(p.submit(defs.with_timeout, {"seconds": 0.0}).id, timeout_s=30)
    assert quick.state == "succeeded" and not quick.steps[0].as_job  # a timeout alone is no job
    t0 = time.monotonic()
    slow = p.wait(p.submit(defs.with_timeout, {"seconds": 2.0}).id, timeout_s=30)
    assert time.monotonic() - t0 < 1.8  # failed at its timeout, not when the thread ended
    (step,) = slow.steps
    assert slow.state == "failed" and step.state == "failed"
    assert step.message is not None and step.message.startswith("timed out after 0.5s")
    log = p.step_log(slow.id, "bounded")
    assert "bounded started" in log and "timed out after 0.5s" in log
    deadline = time.monotonic() + 10
    while defs.CALLS["bounded"] < 2:  # the thread ends late ...
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.1)
    p.advance()
    again = p.get_run(slow.id)  # ... and its result is ignored
    assert again.state == "failed" and again.steps[0].state == "failed" and again.steps[0].out_kind is None
