"""Search strategies compared over seeds, study by study: regret, rank and a test against the
baseline on one budget, and the compute each strategy needs to reach the baseline's result.

    python benchmarks/strategy_regret.py COMPARISON.yaml [--strategies S ...] [--seeds N ...] [--grid-levels K]
                                         [--set study.path=value ...] [--home DIR]
    python benchmarks/strategy_regret.py COMPARISON.yaml --report

COMPARISON.yaml is a `harness compare` file (docs/compare.md): the base study, strategies,
seeds, budget, baseline. Each (strategy, seed) runs as a study execution through
`harness.run.execute.run_study`, derived exactly as `harness compare` derives it, into a local
MLflow store under `--home` (progress off). Its trials are read back from MLflow and saved as
one JSON file per execution, so that a comparison can be run in parts (`--strategies`,
`--seeds`) and executions already saved are not run again. `--report` reads every saved
execution and computes the statistics with `dashboards.comparison.summarize`, as the compare
report does.

A trial's result counts when it became known: its last reported value at the time of its last
report (the timestamp MLflow recorded for it), and the budget spent then is the trials and
epochs of every trial whose result was known by then.

`--set search.max_concurrent_trials=1` changes the base study (a variant of the comparison:
give it its own `--home`, and the same `--set` to `--report`).

`--grid-levels K` adds the `grid` searcher on a grid of K evenly spaced values per searched
range (the centres of K equal bins). A comparison cannot list `grid` over continuous ranges,
and the grid ignores the seed, so it runs once (seed of the first execution) and the report
pairs that one result with every seed. With a trial budget, the grid's trials beyond the
budget are left out, in the order they ended.

Multi-fidelity report (budget in epochs): the target is the baseline's median final best over
seeds; for each strategy, the epochs it spent until its best-so-far first reached that target,
as a fraction of the baseline's epochs (the budget), over the seeds that reached it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import ROOT, markdown_table

GRID = "grid"


def grid_study(raw: dict[str, Any], levels: int) -> dict[str, Any]:
    """The study with every range of its space replaced by `levels` evenly spaced values."""
    space = {}
    for path, dist in raw["search"]["space"].items():
        ((kind, args),) = dist.items()
        if kind not in ("uniform", "loguniform"):
            space[path] = dist
            continue
        low, high = float(args[0]), float(args[1])
        centres = [(i + 0.5) / levels for i in range(levels)]
        if kind == "uniform":
            values = [low + c * (high - low) for c in centres]
        else:
            values = [float(np.exp(np.log(low) + c * (np.log(high) - np.log(low)))) for c in centres]
        space[path] = {"grid": [round(v, 6) for v in values]}
    search = {**raw["search"], "strategy": GRID, "searcher": None, "scheduler": None, "space": space}
    search["num_trials"] = 1  # a grid runs each point once
    search.pop("budget_epochs", None)
    search.pop("time_budget_s", None)
    return {**raw, "search": search}


def study_for(comparison: Any, strategy: str, seed: int, levels: int) -> Any:
    from harness.compare import derive_study
    from harness.study import spec_from_dict

    if strategy != GRID:
        return comparison.study_for(strategy, seed)
    return spec_from_dict(grid_study(derive_study(comparison, comparison.baseline, seed), levels))


def trial_rows(client: Any, study_run_id: str, metric: str) -> list[dict[str, Any]]:
    """Each trial of a study execution: last value and regret, epochs, and when its last
    result was reported (ms), from the child runs' metric histories."""
    from harness.objectives import REGRET_METRIC

    runs = client.search_runs(
        [client.get_run(study_run_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{study_run_id}'",
        max_results=50000,
    )
    rows = []
    for run in runs:
        history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: (m.step, m.timestamp))
        if not history:
            continue  # queued, never ran an epoch
        regret = sorted(client.get_metric_history(run.info.run_id, REGRET_METRIC), key=lambda m: m.step)
        failed = run.info.status == "FAILED"
        rows.append(
            {
                "trial_id": run.data.tags.get("trial_id", run.info.run_id),
                "status": run.info.status,
                "value": float("nan") if failed else history[-1].value,
                "regret": float("nan") if failed or not regret else regret[-1].value,
                "epochs": int(run.data.metrics.get("epoch", history[-1].step)),
                "start_ms": run.info.start_time,
                "end_ms": max(m.timestamp for m in history),
            }
        )
    return rows


def run_execution(comparison: Any, strategy: str, seed: int, levels: int, out: Path, limit_s: float) -> None:
    """Run one execution and save its trials; one that passes `limit_s` is stopped (as by
    Ctrl-C) and not saved, so that the next call runs it again."""
    from mlflow.tracking import MlflowClient

    from harness.paths import default_tracking_uri
    from harness.run.execute import run_study

    spec = study_for(comparison, strategy, seed, levels)
    start = time.perf_counter()
    # Ray Tune stops cleanly on SIGINT; a timer sends one to this process if the study hangs
    # (Ray's synchronous HyperBand can wait forever on trials it paused).
    watchdog = threading.Timer(limit_s, os.kill, (os.getpid(), signal.SIGINT))
    watchdog.start()
    try:
        outcome = run_study(spec, progress=False, run_tags={"strategy": strategy})
    except KeyboardInterrupt:
        outcome = None
    finally:
        watchdog.cancel()
    wall = time.perf_counter() - start
    if outcome is None or wall >= limit_s:
        print(f"  {strategy} seed {seed}: stopped after {wall:.0f} s (limit {limit_s:g} s); not saved", flush=True)
        return
    rows = trial_rows(MlflowClient(default_tracking_uri()), outcome.study.parent_run_id, spec.search.metric)
    record = {
        "strategy": strategy,
        "seed": seed,
        "study_run_id": outcome.study.parent_run_id,
        "counts": outcome.counts,
        "interrupted": outcome.interrupted,
        "wall_s": wall,
        "trials": rows,
    }
    out.write_text(json.dumps(record, indent=1))
    print(
        f"  {strategy} seed {seed}: {len(rows)} trials, {sum(r['epochs'] for r in rows)} epochs, "
        f"{wall:.0f} s, {outcome.counts}{' (flagged interrupted)' if outcome.interrupted else ''}",
        flush=True,
    )


def load_frame(folder: Path, comparison: Any) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every saved execution's trials as one frame with the budget spent at each result."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    seeds = comparison.seed_list()
    frames = []
    for record in records:
        frame = pd.DataFrame(record["trials"]).sort_values(["end_ms", "trial_id"])
        frame["study_run_id"] = record["study_run_id"]
        frame["spent_trials"] = np.arange(1, len(frame) + 1)
        frame["spent_epochs"] = frame["epochs"].cumsum()
        frame["spent_seconds"] = (frame["end_ms"] - frame["start_ms"].min()) / 1000.0
        for seed in seeds if record["strategy"] == GRID else [record["seed"]]:
            frames.append(frame.assign(strategy=record["strategy"], seed=seed))
    trials = pd.concat(frames, ignore_index=True).drop(columns=["start_ms", "end_ms"])
    if comparison.budget.trials is not None:  # a grid larger than the budget: its first trials
        trials = trials[trials["spent_trials"] <= comparison.budget.trials].reset_index(drop=True)
    return trials, records


def regret_table(summary: pd.DataFrame, baseline: str) -> str:
    """Final result per strategy: regret where the optimum is known, the best value otherwise."""
    exact = "median_regret" in summary.columns
    rows = []
    for _, row in summary.iterrows():
        p = "baseline" if row["strategy"] == baseline else f"{row['p_value']:.3g}"
        rows.append(
            [
                row["strategy"],
                int(row["seeds"]),
                f"{row['median_regret']:.3f}" if exact else f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]",
                f"{row['final_best']:.4f}",
                f"{row['mean_rank']:.2f}",
                p,
                f"{row['spent_epochs']:.0f}",
            ]
        )
    headers = [
        "strategy",
        "seeds",
        "median final regret" if exact else "95% CI of final best",
        "mean final best",
        "mean rank",
        f"p vs {baseline}",
        "epochs spent (mean)",
    ]
    return markdown_table(headers, rows)


def compute_table(trials: pd.DataFrame, comparison: Any, mode: str) -> str:
    """Epochs each strategy needs to reach the baseline's median final best, relative to the
    baseline's epochs."""
    from dashboards.statistics import best_so_far, time_to_target

    baseline = comparison.baseline
    finals = {}
    for seed, run in trials[trials["strategy"] == baseline].groupby("seed"):
        finals[seed] = best_so_far(run["value"].to_numpy(), mode)[-1]
    target = float(np.median(list(finals.values())))
    base_epochs = float(trials[trials["strategy"] == baseline].groupby("seed")["spent_epochs"].max().median())
    rows = []
    for strategy in comparison.strategies:
        hits, trials_seen, total = [], [], []
        for seed in comparison.seed_list():
            run = trials[(trials["strategy"] == strategy) & (trials["seed"] == seed)]
            if run.empty:
                continue
            best = best_so_far(run["value"].to_numpy(), mode)
            hit = time_to_target(run["spent_epochs"].to_numpy(), best, target, mode)
            total.append(run["spent_epochs"].max())
            trials_seen.append(len(run))
            if hit is not None:
                hits.append(hit)
        median = float(np.median(hits)) if hits else float("nan")
        rows.append(
            [
                strategy,
                f"{len(hits)}/{len(total)}",
                f"{median:.0f}" if hits else "-",
                f"{median / base_epochs:.2f}" if hits else "-",
                f"{np.median(trials_seen):.0f}",
                f"{np.median(total):.0f}",
            ]
        )
    headers = [
        "strategy",
        "seeds reaching target",
        "epochs to target (median)",
        "compute ratio",
        "trials (median)",
        "epochs spent (median)",
    ]
    note = f"target: {baseline}'s median final best over seeds, {target:.4f}; {baseline}'s epochs: {base_epochs:.0f}"
    return note + "\n\n" + markdown_table(headers, rows)


def report(comparison: Any, folder: Path, levels: int) -> None:
    from dashboards.comparison import summarize

    base = comparison.study_for(comparison.baseline, comparison.seed_list()[0])
    metric, mode = base.search.metric, base.search.mode
    trials, records = load_frame(folder, comparison)
    axis, limit = comparison.budget.axis, comparison.budget.amount
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = summarize(trials, mode, axis=axis, limit=limit, baseline=comparison.baseline)
    flagged = sorted({f"{r['strategy']}" for r in records if r["interrupted"]})
    print(
        f"{comparison.name}: {metric} ({mode}), budget {comparison.budget.label()}, "
        f"{len(records)} executions, seeds {comparison.seed_list()}\n"
    )
    print(regret_table(summary, comparison.baseline))
    if axis == "epochs":
        print()
        print(compute_table(within_budget_frame(trials, axis, limit), comparison, mode))
    wall = pd.DataFrame([(r["strategy"], r["wall_s"]) for r in records], columns=["strategy", "wall_s"])
    print(
        "\nwall seconds per execution (median): "
        + ", ".join(f"{s} {w:.0f}" for s, w in wall.groupby("strategy")["wall_s"].median().items())
    )
    if flagged:
        print(f"executions the runner flagged interrupted though every trial ended: {', '.join(flagged)}")


def within_budget_frame(trials: pd.DataFrame, axis: str, limit: float) -> pd.DataFrame:
    from dashboards.comparison import within_budget

    return within_budget(trials, axis, limit)


def with_overrides(comparison: Any, overrides: list[str]) -> Any:
    """The comparison with `path=value` set in its base study (values read as YAML)."""
    from harness.compare import comparison_problems
    from harness.errors import SpecError
    from harness.study import parse_override

    study = copy.deepcopy(comparison.base_study())
    for text in overrides:
        path, value = parse_override(text)
        node = study
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    changed = comparison.model_copy(update={"study": study})
    problems = comparison_problems(changed)
    if problems:
        raise SpecError("\n".join(problems))
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comparison", help="a harness compare file, e.g. studies/compare_hartmann.yaml")
    parser.add_argument("--strategies", nargs="*", help="run only these (default: all, plus grid with --grid-levels)")
    parser.add_argument("--seeds", nargs="*", type=int, help="run only these seeds (default: the comparison's)")
    parser.add_argument("--grid-levels", type=int, default=0, help="add the grid searcher, K values per range")
    parser.add_argument("--set", nargs="*", default=[], metavar="PATH=VALUE", help="override the base study")
    parser.add_argument("--home", help="HARNESS_HOME for the executions (default: harness-runs/bench-NAME)")
    parser.add_argument("--limit-s", type=float, default=300.0, help="stop an execution that runs longer")
    parser.add_argument("--report", action="store_true", help="only report what is saved")
    args = parser.parse_args()

    from harness.compare import load_comparison

    comparison = with_overrides(load_comparison(args.comparison), args.set)
    home = Path(args.home or ROOT / "harness-runs" / f"bench-{comparison.name}").resolve()
    os.environ["HARNESS_HOME"] = str(home)
    folder = home / "executions"
    folder.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(comparison, folder, args.grid_levels)
        return
    strategies = args.strategies or comparison.strategies + ([GRID] if args.grid_levels else [])
    seeds = args.seeds if args.seeds is not None else comparison.seed_list()
    for strategy in strategies:
        for seed in [comparison.seed_list()[0]] if strategy == GRID else seeds:
            out = folder / f"{strategy}-seed{seed}.json"
            if out.exists():
                continue
            run_execution(comparison, strategy, seed, args.grid_levels, out, args.limit_s)
    print(f"saved under {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
