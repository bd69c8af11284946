"""Sweep benchmark: a cheap objective searched by mlbox (trials as real jobs) and by plain Optuna.

The objective is a curve over steps whose floor depends on the parameters::

    loss(step) = (x - 1)^2 + (y + 2)^2 / 4 + 0.1 * |log10(lr) + 2.5| + 5 / (step + 1)

Each step sleeps ``step_s`` (the "training"). Both sides use TPE with the same
seed and successive halving (ASHA) with the same settings:

* plain Optuna: ``study.optimize`` in this process, reporting every step and
  asking ``should_prune``;
* mlbox: a sweep in a temporary ``MLBOX_HOME`` whose trials are jobs running a
  small script (``mlbox.trial_params`` in, ``mlbox.log_metric`` out), driven
  by an in-process scheduler loop (scheduler pass + sweep pass every tick).

With ``parallel=1`` both sides make the same decisions whenever each prune is
seen before the trial's job ends, so the sampled parameters match trial by
trial (counted in ``same_params``); with more parallel trials mlbox trades
that identity for wall time. Figures: best value, wall time, pruned trials.

``scripts/bench/scheduler.py`` calls `bench_sweep`; run alone with
``.venv/bin/python scripts/bench/_sweep_bench.py [--trials 50] [--parallel 1 4] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SPACE: dict[str, Any] = {
    "x": {"type": "float", "low": -5.0, "high": 5.0},
    "y": {"type": "float", "low": -5.0, "high": 5.0},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
}
STEPS = 12
PRUNER_ARGS: dict[str, Any] = {"min_resource": 1, "reduction_factor": 3}

TRIAL_SCRIPT = """\
import math, sys, time
import mlbox

steps, step_s = int(sys.argv[1]), float(sys.argv[2])
p = mlbox.trial_params()
floor = (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2 / 4 + 0.1 * abs(math.log10(p["lr"]) + 2.5)
with mlbox.start_run(log_code=False, log_environment=False):
    for step in range(steps):
        time.sleep(step_s)
        mlbox.log_metric("loss", floor + 5 / (step + 1), step=step)
        mlbox.flush()
"""


def loss(params: dict[str, float], step: int) -> float:
    """The same curve the trial script logs (pure)."""
    floor = (params["x"] - 1) ** 2 + (params["y"] + 2) ** 2 / 4 + 0.1 * abs(math.log10(params["lr"]) + 2.5)
    return floor + 5 / (step + 1)


def plain_optuna(trials: int, seed: int, step_s: float) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="plain",
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(**PRUNER_ARGS),
    )

    def objective(trial: optuna.Trial) -> float:
        p = {
            "x": trial.suggest_float("x", -5.0, 5.0),
            "y": trial.suggest_float("y", -5.0, 5.0),
            "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        }
        value = math.inf
        for step in range(STEPS):
            time.sleep(step_s)
            value = loss(p, step)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - t0
    states = [t.state.name for t in study.trials]
    return {
        "best_value": study.best_value,
        "best_params": study.best_params,
        "wall_s": wall,
        "pruned": states.count("PRUNED"),
        "complete": states.count("COMPLETE"),
        "params": [t.params for t in study.trials],
    }


def mlbox_sweep(trials: int, seed: int, step_s: float, parallel: int, root: Path) -> dict[str, Any]:
    from mlbox.scheduler.config import SchedulerSettings
    from mlbox.services import Services
    from mlbox.settings import Settings
    from mlbox.sweeps.schemas import SweepSpec

    home = root / f"home-p{parallel}"
    script = root / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    tick = 0.05
    settings = replace(
        Settings(home=home), scheduler=SchedulerSettings(gpus="0", cpus=float(max(parallel, 1)), tick_s=tick)
    )
    services = Services.open(settings)
    spec = SweepSpec(
        metric="loss",
        command=[sys.executable, str(script), str(STEPS), str(step_s)],
        space=SPACE,
        name=f"bench-p{parallel}",
        direction="minimize",
        n_trials=trials,
        parallel=parallel,
        sampler="tpe",
        pruner="asha",
        seed=seed,
        pruner_args=PRUNER_ARGS,
        workdir=str(root),
    )
    t0 = time.perf_counter()
    sweep = services.sweeps.create(spec)
    while services.sweeps.get(sweep.id).state in ("running", "stopping"):
        services.scheduler.reconcile_once()
        services.sweeps.reconcile_once()
        services.scheduler.wait_for_work(tick)
    wall = time.perf_counter() - t0
    # let cancelled (pruned) jobs finish, so the temporary home can be removed
    deadline = time.monotonic() + 60
    while services.scheduler.list_jobs(states=["queued", "running"]) and time.monotonic() < deadline:
        services.scheduler.reconcile_once()
        time.sleep(tick)
    done = services.sweeps.get(sweep.id)
    found = services.sweeps.trials(sweep.id)
    jobs = services.scheduler.list_jobs(owner=f"sweep:{sweep.id}", limit=10_000)
    return {
        "best_value": done.best_value,
        "best_params": done.best_params,
        "wall_s": wall,
        "pruned": done.counts.get("pruned", 0),
        "complete": done.counts.get("complete", 0),
        "failed": done.counts.get("failed", 0),
        "jobs": len(jobs),
        "params": [t.params for t in found],
    }


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    return sum(
        1
        for p, q in zip(a, b, strict=False)
        if p.keys() == q.keys() and all(math.isclose(p[k], q[k], rel_tol=1e-12) for k in p)
    )


def bench_sweep(
    trials: int = 50, *, parallel: tuple[int, ...] = (1, 4), seed: int = 7, step_s: float = 0.03
) -> dict[str, Any]:
    """The figures as a dict: plain Optuna, and mlbox at each ``parallel``."""
    root = Path(tempfile.mkdtemp(prefix="mlbox-sweep-bench-"))
    try:
        plain = plain_optuna(trials, seed, step_s)
        out: dict[str, Any] = {
            "trials": trials,
            "steps": STEPS,
            "step_s": step_s,
            "sampler": "tpe",
            "pruner": "asha",
            "seed": seed,
            "optuna": {k: v for k, v in plain.items() if k != "params"},
            "mlbox": {},
        }
        for p in parallel:
            run = mlbox_sweep(trials, seed, step_s, p, root)
            run["same_params"] = _same(run.pop("params"), plain["params"])
            out["mlbox"][f"parallel={p}"] = run
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"sweep: {figures['trials']} trials of {figures['steps']} steps ({figures['step_s'] * 1000:g} ms each),"
        f" TPE seed {figures['seed']}, ASHA",
        f"{'':<22} {'best value':>12} {'wall s':>8} {'pruned':>7} {'complete':>9} {'same params':>12}",
    ]
    o = figures["optuna"]
    lines.append(
        f"{'plain Optuna':<22} {o['best_value']:>12.5f} {o['wall_s']:>8.2f} {o['pruned']:>7} {o['complete']:>9} {'-':>12}"
    )
    for name, m in figures["mlbox"].items():
        best = "-" if m["best_value"] is None else f"{m['best_value']:.5f}"
        lines.append(
            f"{'mlbox ' + name:<22} {best:>12} {m['wall_s']:>8.2f} {m['pruned']:>7} {m['complete']:>9}"
            f" {m['same_params']:>9}/{figures['trials']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--step-s", type=float, default=0.03)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    figures = bench_sweep(args.trials, parallel=tuple(args.parallel), seed=args.seed, step_s=args.step_s)
    print(json.dumps(figures, indent=2, default=str) if args.json else report(figures))


if __name__ == "__main__":
    main()
