"""Searcher bookkeeping overhead: what each searcher of the registry costs the driver per
trial, as the number of trials told to it grows.

    python benchmarks/searcher_overhead.py [--trials 200] [--gp-trials 1000] [--budget-s 300] [--searchers ...]

Each searcher is built through the registry from a Hartmann-6 study (what `harness run` does)
and driven as Ray Tune drives it, without running trials: ask for a configuration, evaluate
Hartmann-6 on it (not timed), report the result and complete the trial. Model-based searchers
(`tpe`, `gp`, `cmaes`, `bohb`) go through the Searcher API: `suggest`, `on_trial_result`,
`on_trial_complete`. `random` and `grid` are Ray's `BasicVariantGenerator`, which is a search
algorithm with no `suggest`: its equivalent is `next_trial` (which also builds Tune's `Trial`
object) and `on_trial_complete`, so their numbers are an upper bound on the searcher's part.

The searchers advance side by side, one trial each in turn with the order rotated, so that
drift in machine load falls on all of them alike. Times are CPU seconds of this process with
torch limited to one thread (Optuna's GP runs on torch), which leaves out time other
processes hold the cores. After `--trials`, the GP searcher goes on alone to `--gp-trials`
(or until it has spent `--budget-s` seconds of wall time), with its suggestion split into the
GP fit (`optuna._gp.gp.fit_kernel_params`: kernel hyperparameters by marginal likelihood, a
Cholesky factorization of the n x n kernel matrix per step) and the acquisition optimization
(`GPSampler._optimize_acqf`: 2048 quasi-random candidates and 10 local searches on log EI).

`gp-sequential` is the same GP searcher with its local searches run one after another, as
Optuna runs them when the `greenlet` package is missing (it batches them with greenlet
otherwise): the cost of leaving that dependency out, measured side by side.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from common import machine, markdown_table

from harness.objectives.functions import hartmann6
from harness.search import SEARCHERS
from harness.search.space import to_tune_space
from harness.study import StudySpec, spec_from_dict

METRIC = "objective/value"
UNIT = {f"objective.x{i}": {"uniform": [0.0, 1.0]} for i in range(1, 7)}
# The grid searcher needs finite values: 3 per input is 729 points, more than any run here asks.
GRID = {f"objective.x{i}": {"grid": [0.2, 0.5, 0.8]} for i in range(1, 7)}
BOHB_BUDGET = 3  # BOHB models results by budget: every trial reports the full one


def study(searcher: str, trials: int, seed: int) -> StudySpec:
    """A Hartmann-6 study whose strategy uses `searcher` (with the scheduler it needs)."""
    bohb = searcher == "bohb"
    return spec_from_dict(
        {
            "name": f"overhead-{searcher}",
            "seed": seed,
            "objective": {"name": "hartmann6"},
            "train": {"max_epochs": BOHB_BUDGET if bohb else 1},
            "search": {
                "searcher": searcher,
                "scheduler": "bohb" if bohb else "fifo",
                "num_trials": trials,
                "metric": METRIC,
                "space": GRID if SEARCHERS.get(searcher).grid else UNIT,
            },
        }
    )


SEQUENTIAL_GP = "gp-sequential"


class _NoGreenlet:
    """Stands in for Optuna's record of a successful greenlet import."""

    def is_successful(self) -> bool:
        return False


def _sequential_lbfgsb(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with Optuna's acquisition local searches run sequentially (as without greenlet)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from optuna._gp import batched_lbfgsb

        saved = batched_lbfgsb._greenlet_imports
        batched_lbfgsb._greenlet_imports = _NoGreenlet()
        try:
            return func(*args, **kwargs)
        finally:
            batched_lbfgsb._greenlet_imports = saved

    return wrapper


def _noop(config: dict) -> None:
    """A trainable for building Tune's trials; never run."""


@dataclass
class Driver:
    """One searcher told trials one at a time; `ask` and `tell` are the timed halves."""

    name: str
    ask: Callable[[int], tuple[str, dict[str, Any]]]
    tell: Callable[[str, dict[str, Any]], None]
    limit: int
    suggest_s: list[float] = field(default_factory=list)
    complete_s: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)  # named parts of each trial's time
    wall_s: float = 0.0
    stopped: bool = False

    def step(self, index: int) -> None:
        PARTS.clear()
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        trial_id, config = self.ask(index)
        mid_cpu = time.process_time()
        x = [config[f"objective.x{i}"] for i in range(1, 7)]
        result = {METRIC: hartmann6(x), "training_iteration": 1, "hyperband_info": {"budget": BOHB_BUDGET}}
        paused_cpu = time.process_time()
        self.tell(trial_id, result)
        end_cpu = time.process_time()
        self.suggest_s.append(mid_cpu - start_cpu)
        self.complete_s.append(end_cpu - paused_cpu)
        self.wall_s += time.perf_counter() - start_wall
        for name, seconds in PARTS.items():
            self.parts.setdefault(name, []).append(seconds)

    @property
    def per_trial_s(self) -> np.ndarray:
        return np.asarray(self.suggest_s) + np.asarray(self.complete_s)


# Seconds spent in named parts of the current trial, filled by `time_gp_parts`' wrappers.
PARTS: dict[str, float] = {}


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            PARTS[name] = PARTS.get(name, 0.0) + time.process_time() - start

    return wrapper


def time_gp_parts() -> None:
    """Time Optuna GPSampler's two stages; the sampler calls both through these names."""
    from optuna._gp import gp
    from optuna.samplers._gp.sampler import GPSampler

    gp.fit_kernel_params = _timed("gp fit", gp.fit_kernel_params)
    GPSampler._optimize_acqf = _timed("acquisition", GPSampler._optimize_acqf)


def driver(name: str, trials: int, seed: int) -> Driver:
    """A fresh searcher built through the registry, as the runner builds it."""
    from ray.tune.experiment import Experiment
    from ray.tune.search import Searcher

    if name == SEQUENTIAL_GP:
        gp = driver("gp", trials, seed)
        return Driver(SEQUENTIAL_GP, _sequential_lbfgsb(gp.ask), gp.tell, trials)

    spec = study(name, trials, seed)
    entry = SEARCHERS.get(name)
    algorithm = entry.build(spec)
    space = to_tune_space(spec.search.space, as_grid=entry.grid)
    if isinstance(algorithm, Searcher):
        algorithm.set_search_properties(METRIC, "min", space)

        def ask(index: int) -> tuple[str, dict[str, Any]]:
            trial_id = f"t{index}"
            return trial_id, algorithm.suggest(trial_id)

        def tell(trial_id: str, result: dict[str, Any]) -> None:
            algorithm.on_trial_result(trial_id, result)
            algorithm.on_trial_complete(trial_id, result)

        return Driver(name, ask, tell, trials)

    algorithm.add_configurations([Experiment("e", run=_noop, config=space, num_samples=1 if entry.grid else trials)])

    def ask_variant(index: int) -> tuple[str, dict[str, Any]]:
        trial = algorithm.next_trial()
        return trial.trial_id, trial.config

    def tell_variant(trial_id: str, result: dict[str, Any]) -> None:
        algorithm.on_trial_result(trial_id, result)
        algorithm.on_trial_complete(trial_id, result)

    return Driver(name, ask_variant, tell_variant, trials)


def growth_exponent(per_trial_s: np.ndarray, start: int) -> float:
    """k in time ~ n^k, least squares on log-log over trials `start`.. (1-based)."""
    n = np.arange(1, len(per_trial_s) + 1)
    keep = (n >= start) & (per_trial_s > 0)
    if keep.sum() < 3:
        return math.nan
    slope, _ = np.polyfit(np.log(n[keep]), np.log(per_trial_s[keep]), 1)
    return float(slope)


def run(names: list[str], trials: int, gp_trials: int, budget_s: float, seed: int) -> list[Driver]:
    drivers = [driver(name, max(trials, gp_trials) if name == "gp" else trials, seed) for name in names]
    for index in range(max(d.limit for d in drivers)):
        shift = index % len(drivers)
        for d in drivers[shift:] + drivers[:shift]:
            if d.stopped or index >= d.limit:
                continue
            d.step(index)
            if d.wall_s > budget_s:
                d.stopped = True
                print(f"  {d.name}: stopped at {index + 1} trials, {d.wall_s:.0f} s", file=sys.stderr)
        if (index + 1) % 25 == 0:
            done = ", ".join(f"{d.name} {sum(d.per_trial_s):.1f}s" for d in drivers)
            print(f"  {index + 1} trials: {done}", file=sys.stderr)
    return drivers


def table(drivers: list[Driver], trials: int, block: int) -> str:
    starts = list(range(0, trials, block))
    headers = ["searcher", *(f"{s + 1}-{min(s + block, trials)}" for s in starts), "total s", "k (n >= 26)"]
    rows = []
    for d in drivers:
        per = d.per_trial_s[:trials]
        cells = [f"{1e3 * per[s : s + block].mean():.2f}" if len(per) >= s + block else "" for s in starts]
        partial = len(per) % block
        if len(per) < trials and partial:  # a searcher stopped inside a block: show the part it ran
            cells[len(per) // block] = f"{1e3 * per[-partial:].mean():.2f} (to {len(per)})"
        rows.append([d.name, *cells, f"{per.sum():.1f}", f"{growth_exponent(per, 26):.2f}"])
    return markdown_table(headers, rows)


def split_table(drivers: list[Driver], trials: int) -> str:
    """Where the last block's time goes: asking for a configuration vs telling the result."""
    rows = []
    for d in drivers:
        end = min(trials, len(d.suggest_s))
        last = slice(max(0, end - 25), end)
        ask, tell = np.mean(d.suggest_s[last]) * 1e3, np.mean(d.complete_s[last]) * 1e3
        rows.append([d.name, f"{last.start + 1}-{end}", f"{ask:.2f}", f"{tell:.2f}"])
    return markdown_table(["searcher", "trials", "suggest ms", "result + complete ms"], rows)


def gp_table(gp: Driver, block: int) -> str:
    """The GP searcher's time per trial by stage, in blocks of `block` trials, and each stage's
    growth exponent once past the random start-up trials."""
    total = gp.per_trial_s
    n = len(total)
    parts = {name: np.asarray(values) for name, values in gp.parts.items()}
    # The first trials are random (no GP): their parts are absent, so align parts at the end.
    aligned = {name: np.concatenate([np.zeros(n - len(v)), v]) for name, v in parts.items()}
    columns = {"total": total, **aligned}
    rows = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows.append([f"{start + 1}-{stop}", *(f"{1e3 * v[start:stop].mean():.1f}" for v in columns.values())])
    for low in (26, 200):
        if n > low:
            rows.append([f"k (n >= {low})", *(f"{growth_exponent(v, low):.2f}" for v in columns.values())])
    return markdown_table(["trials", *(f"{name} ms" for name in columns)], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--block", type=int, default=25, help="trials per column of the table")
    parser.add_argument("--gp-trials", type=int, default=1000, help="the GP searcher goes on alone to this many")
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop a searcher after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--searchers", nargs="*", default=None, help=f"default: every registered searcher and {SEQUENTIAL_GP}"
    )
    args = parser.parse_args()

    import optuna
    import ray
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # BOHB's KDE and Optuna's experimental flags; not what is measured
    names = args.searchers or [*SEARCHERS.names(), SEQUENTIAL_GP]
    time_gp_parts()
    start = time.perf_counter()
    drivers = run(names, args.trials, args.gp_trials, args.budget_s, args.seed)
    print(f"Mean CPU ms per trial (ask + report + complete) by trials told so far, Hartmann-6, seed {args.seed}:\n")
    print(table(drivers, args.trials, args.block))
    print("\nLast 25 trials of each searcher, split:\n")
    print(split_table(drivers, args.trials))
    for d in drivers:
        if d.name == "gp":
            print(f"\nThe GP searcher by stage, {len(d.suggest_s)} trials in {d.wall_s:.0f} s (CPU ms per trial):\n")
            print(gp_table(d, 100))
    print(
        f"\n{machine()}; ray {ray.__version__}, optuna {optuna.__version__}, torch threads 1; "
        f"{time.perf_counter() - start:.0f} s in all"
    )


if __name__ == "__main__":
    main()
