"""Placement, outcomes, inventory parsing and launch lines: pure functions, no processes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbox.scheduler.inventory import parse_gpus
from mlbox.scheduler.launch import job_argv, job_env
from mlbox.scheduler.outcomes import decide
from mlbox.scheduler.placement import Holding, Waiting, place
from mlbox.scheduler.schemas import Gpu, JobSpec, Resources
from mlbox.store.errors import InvalidInput


def gpus(n: int, memory: int | None = None) -> list[Gpu]:
    return [Gpu(index=i, name="sim", memory_mb=memory, simulated=True) for i in range(n)]


# -- a discrete-time simulation of the scheduler loop over `place` ------------------------------


@dataclass
class SimJob:
    id: int
    priority: int
    gpus: int
    duration: int
    arrival: int
    preemptible: bool = False
    left: int = 0
    started: int | None = None
    done: bool = False
    held: tuple[int, ...] = ()
    stopping: bool = False
    starts: int = 0


@dataclass
class Sim:
    n_gpus: int
    jobs: list[SimJob]
    starve_after: float = float("inf")
    t: int = 0
    log: list[str] = field(default_factory=list)

    def step(self) -> None:
        running = [
            j
            for j in self.jobs
            if j.held or (j.started is not None and not j.done and j.gpus == 0 and j.left)
        ]
        # stopping jobs (preempted last tick) end now and wait again
        for j in self.jobs:
            if j.stopping:
                j.stopping, j.held, j.started = False, (), None
        waiting = [
            Waiting(j.id, j.priority, float(j.arrival), float(j.arrival), j.gpus)
            for j in self.jobs
            if j.arrival <= self.t and j.started is None and not j.done
        ]
        running = [j for j in self.jobs if j.started is not None and not j.done]
        holding = [
            Holding(j.id, j.priority, j.held, 0.0, j.preemptible, float(j.started or 0)) for j in running
        ]
        d = place(waiting, holding, gpus(self.n_gpus), now=float(self.t), starve_after_s=self.starve_after)
        held_now = {g for j in running for g in j.held}
        taken: set[int] = set()
        for job_id, picked in d.starts:
            assert len(set(picked)) == len(picked)
            assert not (set(picked) & held_now), "a GPU leased twice (held by a running job)"
            assert not (set(picked) & taken), "a GPU leased twice in one decision"
            taken |= set(picked)
            j = self.jobs[job_id]
            assert len(picked) == j.gpus
            j.started, j.held, j.left = self.t, picked, j.duration
            j.starts += 1
        for victim in d.preempt:
            v = self.jobs[victim]
            assert v.preemptible, "a job that did not allow preemption was preempted"
            assert any(w.priority > v.priority for w in waiting), "preempted without a higher-priority job"
            v.stopping = True
        for j in running:
            if not j.stopping:
                j.left -= 1
                if j.left <= 0:
                    j.done, j.held = True, ()
        self.t += 1

    def run(self, max_ticks: int) -> None:
        while not all(j.done for j in self.jobs) and self.t < max_ticks:
            self.step()


job_lists = st.integers(1, 8).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.tuples(
                st.integers(0, 3), st.integers(0, n), st.integers(1, 5), st.integers(0, 10), st.booleans()
            ),
            min_size=1,
            max_size=30,
        ),
    )
)


@settings(max_examples=150, deadline=None)
@given(job_lists, st.sampled_from([float("inf"), 3.0]))
def test_no_gpu_leased_twice_and_every_job_eventually_runs(case: tuple[int, list], starve: float) -> None:
    n, specs = case
    jobs = [SimJob(i, p, g, d, a, pre) for i, (p, g, d, a, pre) in enumerate(specs)]
    sim = Sim(n, jobs, starve_after=starve)
    sim.run(max_ticks=2000)
    assert all(j.done for j in jobs), [j for j in jobs if not j.done]


def test_backfill_small_jobs_pass_a_blocked_big_one() -> None:
    running = [Holding(100, 0, (0, 1))]
    waiting = [
        Waiting(1, 0, 1.0, 1.0, gpus=4),
        Waiting(2, 0, 2.0, 2.0, gpus=1),
        Waiting(3, 0, 3.0, 3.0, gpus=1),
    ]
    d = place(waiting, running, gpus(4), now=5.0)
    assert d.starts == [(2, (2,)), (3, (3,))]


def test_priority_then_age() -> None:
    waiting = [Waiting(1, 0, 1.0, 1.0, 1), Waiting(2, 5, 9.0, 9.0, 1), Waiting(3, 0, 0.5, 0.5, 1)]
    d = place(waiting, [], gpus(2), now=10.0)
    assert [s[0] for s in d.starts] == [2, 3]


def _stream(starve: float) -> Sim:
    """A 4-GPU job behind an endless stream of 1-GPU jobs that always fill the machine."""
    jobs = [SimJob(0, 0, 4, 1, 0)]
    for i in range(1, 400):
        jobs.append(SimJob(i, 0, 1, 3, i // 2))
    jobs[0].arrival = 1
    return Sim(4, jobs, starve_after=starve)


def test_without_a_reservation_the_big_job_would_starve() -> None:
    sim = _stream(float("inf"))
    sim.run(max_ticks=150)
    assert sim.jobs[0].started is None and not sim.jobs[0].done


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20))
def test_no_starvation_big_job_runs_soon_after_waiting_too_long(starve_after: int) -> None:
    sim = _stream(float(starve_after))
    while not sim.jobs[0].done and sim.t < 200:
        sim.step()
    started = sim.jobs[0].done or sim.jobs[0].started is not None
    assert started
    # reserved after `starve_after` ticks; the running 1-GPU jobs (3 ticks) drain meanwhile
    assert sim.t <= 1 + starve_after + 3 + 2


def test_preemption_of_lower_priority_preemptible_jobs_only() -> None:
    running = [
        Holding(10, 0, (0,), preemptible=True, started_at=1.0),
        Holding(11, 0, (1,), preemptible=False, started_at=1.0),
        Holding(12, 1, (2,), preemptible=True, started_at=2.0),
        Holding(13, 5, (3,), preemptible=True, started_at=2.0),
    ]
    d = place([Waiting(1, 3, 5.0, 5.0, gpus=2)], running, gpus(4), now=6.0)
    assert sorted(d.preempt) == [10, 12]
    assert sorted(d.reserved[1]) == [0, 2]
    assert d.starts == []
    # next tick: the victims are stopping; nothing more is preempted and the GPUs stay kept for job 1
    running2 = [
        Holding(r.id, r.priority, r.gpus, 0.0, r.preemptible, r.started_at, r.id in (10, 12)) for r in running
    ]
    d2 = place([Waiting(1, 3, 5.0, 5.0, 2), Waiting(2, 0, 1.0, 1.0, 1)], running2, gpus(4), now=7.0)
    assert d2.preempt == [] and sorted(d2.reserved[1]) == [0, 2] and d2.starts == []


def test_no_preemption_when_it_would_not_free_enough() -> None:
    running = [Holding(10, 0, (0,), preemptible=True), Holding(11, 0, (1,), preemptible=False)]
    d = place([Waiting(1, 3, 5.0, 5.0, gpus=2)], running, gpus(2), now=6.0)
    assert d.preempt == []


def test_memory_and_impossible_jobs() -> None:
    inv = [Gpu(0, "a", 8000, True), Gpu(1, "b", 24000, True)]
    d = place(
        [Waiting(1, 0, 1.0, 1.0, 1, gpu_memory_mb=16000), Waiting(2, 0, 2.0, 2.0, 2, 16000)], [], inv, now=3.0
    )
    assert d.starts == [(1, (1,))] and d.impossible == [2]


def test_cpu_capacity() -> None:
    waiting = [Waiting(i, 0, float(i), float(i), 0, cpus=1.0) for i in range(5)]
    d = place(waiting, [Holding(99, 0, (), cpus=1.0)], [], now=9.0, cpus_total=3.0)
    assert [s[0] for s in d.starts] == [0, 1]


def test_parse_gpus() -> None:
    assert [g.index for g in parse_gpus("4")] == [0, 1, 2, 3]
    assert [g.index for g in parse_gpus("0,2")] == [0, 2]
    assert [g.index for g in parse_gpus("3,")] == [3]
    assert [(g.index, g.memory_mb) for g in parse_gpus("1:16000, 0:24000")] == [(0, 24000), (1, 16000)]
    assert parse_gpus("0") == [] and parse_gpus("none") == []
    for bad in ("x", "0,0", "0:abc", "-1", "0:-5"):
        with pytest.raises(InvalidInput) as e:
            parse_gpus(bad)
        assert e.value.field == "MLBOX_GPUS"


def test_outcomes() -> None:
    base = dict(attempt=1, retries_used=0, max_retries=1, timeout_s=5.0, started=True)
    assert decide(stop_reason=None, exit_code=0, **base).state == "succeeded"  # type: ignore[arg-type]
    o = decide(stop_reason=None, exit_code=3, **base)  # type: ignore[arg-type]
    assert (o.state, o.retries_used, o.requeued) == ("queued", 1, True)
    o = decide(stop_reason=None, exit_code=3, **{**base, "retries_used": 1})  # type: ignore[arg-type]
    assert o.state == "failed"
    assert decide(stop_reason=None, exit_code=None, **base).outcome == "lost"  # type: ignore[arg-type]
    never = decide(stop_reason=None, exit_code=None, **{**base, "started": False})  # type: ignore[arg-type]
    assert (never.state, never.retries_used) == ("queued", 0)
    assert decide(stop_reason="cancel", exit_code=0, **base).state == "cancelled"  # type: ignore[arg-type]
    assert decide(stop_reason="timeout", exit_code=-15, **base).state == "timed_out"  # type: ignore[arg-type]
    pre = decide(stop_reason="preempt", exit_code=-15, **base)  # type: ignore[arg-type]
    assert (pre.state, pre.retries_used) == ("preempted", 0)


def test_launch_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    py = "/venv/bin/python"
    spec = JobSpec(name="t", command=["python", "train.py", "--lr", "1"], launcher="torchrun")
    assert job_argv(spec, py, 2) == [
        py,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "train.py",
        "--lr",
        "1",
    ]
    spec = JobSpec(name="t", command=["./run.sh"], launcher="torchrun")
    assert "--no-python" in job_argv(spec, py, 1)
    spec = JobSpec(name="t", function="pkg.mod:fn", kwargs={"a": 1}, resources=Resources(gpus=2))
    assert job_argv(spec, py, 2) == [py, "-m", "mlbox.scheduler.entry", "pkg.mod:fn"]
    env = job_env(
        {"MLBOX_RUN_ID": "9", "PATH": "/bin"},
        spec,
        home=tmp_path,
        job_id=3,
        attempt=2,
        run_id=7,
        gpus=[1, 3],
        checkpoint_dir=tmp_path / "c",
    )
    assert (
        env["CUDA_VISIBLE_DEVICES"] == "1,3"
        and env["MLBOX_RUN_ID"] == "7"
        and env["MLBOX_JOB_ATTEMPT"] == "2"
    )
    assert env["MLBOX_JOB_KWARGS"] == '{"a": 1}' and env["PATH"] == "/bin"
