"""A strategy comparison read back from MLflow: every (strategy, seed) study execution's trials
as a table, best-so-far curves against trials, epochs and seconds, and the summary statistics.

Reads only what MLflow stored; never re-runs anything.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from dashboards.statistics import (
    best_so_far,
    bootstrap_band,
    compare_to_baseline,
    mean_ranks,
    on_grid,
    time_to_target,
)
from harness.tracking import contract as c

AXES = ("trials", "epochs", "seconds")
REGRET_METRIC = c.OBJECTIVE_REGRET  # what objective studies log: exact, noise-free regret
COLUMNS = ["strategy", "seed", "study_run_id", "trial_id", "status", "value", "regret", "epochs", "start_ms", "end_ms"]


def _search_all(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def load_trials(
    client: MlflowClient, experiment_ids: list[str], comparison_id: str, metric: str, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    """One row per trial of every finished study execution tagged with `comparison_id`.

    Columns: strategy, seed, study_run_id, trial_id, status, value (the trial's last reported
    `metric`; NaN for a failed trial), regret (its last `objective/regret`, NaN if not logged),
    epochs, then the budget each study had spent when the trial's result became known:
    spent_trials, spent_epochs (of all trials ended by then; in-flight epochs of concurrent
    trials count when they end) and spent_seconds (from the study's first trial start).
    Trials that never ran an epoch and were stopped (queued when a budget ran out) spent
    nothing and are left out. An execution that was abandoned or never finished is left out.
    `extra` metrics (a multi-objective study's objectives) get a column each.
    """
    studies = {
        run.info.run_id: run
        for run in _search_all(
            client,
            experiment_ids,
            f"tags.`{c.COMPARISON_ID}` = '{comparison_id}' and tags.`{c.KIND}` = '{c.KIND_STUDY}'",
        )
        if run.info.status == c.FINISHED
    }
    rows = []
    for study in studies.values():
        trials = _search_all(client, [study.info.experiment_id], f"tags.`{c.PARENT_RUN_ID}` = '{study.info.run_id}'")
        for run in trials:
            if run.data.tags.get(c.KIND) != c.KIND_TRIAL or run.info.end_time is None:
                continue
            epochs = int(run.data.metrics.get(c.EPOCH, 0))
            if epochs == 0 and run.info.status == c.KILLED:
                continue
            failed = run.info.status == c.FAILED
            rows.append(
                {
                    "strategy": study.data.tags[c.STRATEGY],
                    "seed": int(study.data.tags[c.SEED]),
                    "study_run_id": study.info.run_id,
                    "trial_id": run.data.tags.get(c.TRIAL_ID, run.info.run_id),
                    "status": run.info.status,
                    "value": np.nan if failed else float(run.data.metrics.get(metric, np.nan)),
                    "regret": np.nan if failed else float(run.data.metrics.get(REGRET_METRIC, np.nan)),
                    "epochs": epochs,
                    "start_ms": run.info.start_time,
                    "end_ms": run.info.end_time,
                    **{key: np.nan if failed else float(run.data.metrics.get(key, np.nan)) for key in extra},
                }
            )
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *extra]).sort_values(["strategy", "seed", "end_ms", "trial_id"])
    grouped = frame.groupby(["strategy", "seed"], sort=False)
    frame["spent_trials"] = grouped.cumcount() + 1
    frame["spent_epochs"] = grouped["epochs"].cumsum()
    frame["spent_seconds"] = (frame["end_ms"] - grouped["start_ms"].transform("min")) / 1000.0
    return frame.drop(columns=["start_ms", "end_ms"]).reset_index(drop=True)


def hypervolume_so_far(
    trials: pd.DataFrame, objectives: list[tuple[str, str]], reference: dict[str, float] | None = None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Each trial's `value` replaced by the hypervolume of its execution's Pareto front over
    the trials known by then (its `spent_trials` order), against one reference point shared by
    every strategy and seed: `reference` where given, else the worst value of each objective
    over all trials of the comparison. Returns the frame and the reference used. A strategy's
    best-so-far of this value is its front's quality as the budget is spent (mode max)."""
    import moocore

    metrics, modes = [m for m, _ in objectives], [mode for _, mode in objectives]
    signs = np.array([1.0 if mode == "min" else -1.0 for mode in modes])
    values = trials[metrics].to_numpy(dtype=float)
    complete = np.isfinite(values).all(axis=1)
    worst = np.where(signs > 0, np.nanmax(values[complete], axis=0), np.nanmin(values[complete], axis=0)) if complete.any() else np.zeros(len(metrics))
    ref = {m: float((reference or {}).get(m, w)) for m, w in zip(metrics, worst)}
    ref_point = np.array([ref[m] for m in metrics]) * signs
    out = trials.copy()
    volumes = np.full(len(out), np.nan)
    for _, group in out.groupby(["strategy", "seed"], sort=False):
        seen: list[np.ndarray] = []
        for index in group.sort_values("spent_trials").index:
            point = out.loc[index, metrics].to_numpy(dtype=float)
            if np.isfinite(point).all():
                seen.append(point * signs)
            volumes[out.index.get_loc(index)] = float(moocore.hypervolume(np.array(seen), ref=ref_point)) if seen else 0.0
    out["value"] = volumes
    return out, ref


def within_budget(trials: pd.DataFrame, axis: str, limit: float | None) -> pd.DataFrame:
    """The trials whose results were known once at most `limit` of the budget axis was spent:
    what each strategy found within the budget (concurrent trials may run a little past it)."""
    if limit is None:
        return trials
    return trials[trials[f"spent_{axis}"] <= limit + 1e-9].reset_index(drop=True)


@dataclass(frozen=True)
class Curves:
    """Best-so-far values on one budget axis: `values[strategy]` is (seeds x grid points)."""

    axis: str
    grid: np.ndarray
    seeds: list[int]
    values: dict[str, np.ndarray]


def budget_grid(axis: str, top: float, points: int = 50) -> np.ndarray:
    """Budget points to read curves at: every whole trial or epoch when there are few, else
    `points` evenly spaced ones up to `top`."""
    if axis in ("trials", "epochs") and top <= 500:
        return np.arange(1, int(top) + 1, dtype=float)
    return np.linspace(top / points, top, points)


def budget_curves(trials: pd.DataFrame, axis: str, mode: str, top: float | None = None) -> Curves:
    """Every (strategy, seed) best-so-far curve read on one grid shared by all strategies, up
    to `top` (default: the most any execution spent)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES} (given {axis!r})")
    column = f"spent_{axis}"
    if top is None:
        top = float(trials[column].max()) if len(trials) else 1.0
    grid = budget_grid(axis, top)
    seeds = sorted(trials["seed"].unique().tolist())
    values: dict[str, np.ndarray] = {}
    for strategy, group in trials.groupby("strategy", sort=True):
        rows = []
        for seed in seeds:
            run = group[group["seed"] == seed]
            if run.empty:
                rows.append(np.full(len(grid), np.nan))
                continue
            best = best_so_far(run["value"].to_numpy(), mode)
            rows.append(on_grid(run[column].to_numpy(), best, grid))
        values[str(strategy)] = np.vstack(rows)
    return Curves(axis, grid, seeds, values)


def curves_table(curves: Curves) -> pd.DataFrame:
    """Long format (axis, budget, strategy, seed, best) for CSV / parquet export."""
    frames = []
    for strategy, matrix in curves.values.items():
        for i, seed in enumerate(curves.seeds):
            frames.append(
                pd.DataFrame(
                    {"axis": curves.axis, "budget": curves.grid, "strategy": strategy, "seed": seed, "best": matrix[i]}
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _incumbent_regret(run: pd.DataFrame, mode: str) -> float:
    """The exact regret of the trial with the best observed value (what the strategy would
    choose; with a noisy objective its observed value may be luckier than its true one)."""
    values = run["value"].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return float("nan")
    pick = np.nanargmin(values) if mode == "min" else np.nanargmax(values)
    return float(run["regret"].to_numpy(dtype=float)[pick])


def summarize(
    trials: pd.DataFrame,
    mode: str,
    *,
    axis: str = "trials",
    limit: float | None = None,
    baseline: str = "random",
    target: float | None = None,
) -> pd.DataFrame:
    """One row per strategy, over the trials within `limit` on the budget `axis`:

    - final_best, ci_low, ci_high: mean over seeds of the best value found, 95% bootstrap CI;
    - median_regret: median over seeds of the chosen trial's exact regret (objective studies);
    - mean_rank: rank among strategies (1 = best) within each seed at each budget point,
      averaged over seeds and the budget;
    - spent_trials, spent_epochs, spent_seconds: mean over seeds of what was spent;
    - to_target_trials / _epochs / _seconds: median over the seeds that reached `target` of the
      budget spent when they first did; never_reached: how many seeds did not;
    - p_value, test: one-sided test that the strategy ends better than the baseline (Wilcoxon
      signed-rank over paired seeds, Mann-Whitney U when unpaired); empty for the baseline.
    """
    with warnings.catch_warnings():
        # Budget points where no seed has a value yet are NaN, as they should be.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _summarize(within_budget(trials, axis, limit), mode, axis, limit, baseline, target)


def _summarize(
    trials: pd.DataFrame, mode: str, axis: str, limit: float | None, baseline: str, target: float | None
) -> pd.DataFrame:
    curves = budget_curves(trials, axis, mode, top=limit)
    ranks = mean_ranks(curves.values, mode)
    finals = {s: m[:, -1] for s, m in curves.values.items()}
    rows = []
    for strategy, final in finals.items():
        band = bootstrap_band(final[:, None])
        runs = [trials[(trials["strategy"] == strategy) & (trials["seed"] == seed)] for seed in curves.seeds]
        row: dict[str, object] = {
            "strategy": strategy,
            "seeds": int(np.isfinite(final).sum()),
            "final_best": band.mean[0],
            "ci_low": band.low[0],
            "ci_high": band.high[0],
            "mean_rank": ranks[strategy],
        }
        regrets = [_incumbent_regret(run, mode) for run in runs if not run.empty]
        if regrets and np.isfinite(regrets).any():
            row["median_regret"] = float(np.nanmedian(regrets))
        for spent in AXES:
            row[f"spent_{spent}"] = float(np.mean([run[f"spent_{spent}"].max() for run in runs if not run.empty]))
        if target is not None:
            reached = {a: [] for a in AXES}
            never = 0
            for run in runs:
                best = best_so_far(run["value"].to_numpy(), mode)
                hits = {a: time_to_target(run[f"spent_{a}"].to_numpy(), best, target, mode) for a in AXES}
                if hits[axis] is None:
                    never += 1
                    continue
                for a in AXES:
                    reached[a].append(hits[a])
            for a in AXES:
                row[f"to_target_{a}"] = float(np.median(reached[a])) if reached[a] else np.nan
            row["never_reached"] = never
        if strategy != baseline and baseline in finals:
            test = compare_to_baseline(final, finals[baseline], mode)
            row["p_value"], row["test"] = test.p_value, test.test
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["mean_rank", "strategy"]).reset_index(drop=True)
