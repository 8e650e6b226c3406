"""Report files and the terminal table for a strategy comparison: CSV and parquet of every trial
and curve, the summary table, and one self-contained interactive HTML page (plotly.js inlined,
no network), so that it opens anywhere, including as an MLflow artifact."""

from __future__ import annotations

import html
import math
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from dashboards.comparison import (
    AXES,
    Curves,
    budget_curves,
    curves_table,
    hypervolume_so_far,
    load_trials,
    summarize,
    within_budget,
)
from dashboards.page import Section, render, table
from dashboards.statistics import bootstrap_band

AXIS_LABELS = {"trials": "trials", "epochs": "epochs (all trials)", "seconds": "wall-clock seconds"}
TESTS = (
    "one-sided; Wilcoxon signed-rank over paired seeds (Mann-Whitney U when seeds are missing); "
    "not corrected for comparing several strategies"
)


@dataclass(frozen=True)
class ReportSettings:
    """What the report needs to know beyond MLflow: the metric and its direction, the budget
    (its axis and limit), the baseline and target, and the known optimum if any."""

    title: str
    metric: str
    mode: str
    axis: str
    limit: float
    baseline: str
    target: float | None = None
    optimum: float | None = None
    strategies: list[str] = field(default_factory=list)  # the order the comparison lists them in
    # A multi-objective base study: strategies are compared by the hypervolume of their fronts.
    objectives: list[tuple[str, str]] = field(default_factory=list)
    reference: dict[str, float] | None = None

    def budget_label(self) -> str:
        return f"{self.limit:g} {self.axis}"


def curves_figure(curves: Curves, trials: pd.DataFrame, metric: str, mode: str, target: float | None = None) -> Any:
    """Mean best-so-far per strategy with its 95% bootstrap band (interactive): a strategy's
    curve ends where its executions' data ends, so a strategy that ran fewer trials is not
    drawn flat past its last one; the mean starts where every seed has a value."""
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    column = f"spent_{curves.axis}"
    for i, (strategy, matrix) in enumerate(curves.values.items()):
        color = palette[i % len(palette)]
        # Each seed keeps its best after its last trial (that is what it found), up to where the
        # strategy's last seed ended; past that the strategy has no data and is not drawn. The
        # mean starts once every seed has a value, so it does not jump as seeds begin.
        spent = trials[trials["strategy"] == strategy][column]
        masked = matrix.copy()
        if len(spent):
            masked[:, curves.grid > float(spent.max()) + 1e-9] = float("nan")
        masked[:, ~np.isfinite(masked).all(axis=0)] = float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # budget points not every seed reached
            band = bootstrap_band(masked)
        rgb = tuple(int(color[k : k + 2], 16) for k in (1, 3, 5))
        fig.add_trace(go.Scatter(x=curves.grid, y=band.high, mode="lines", line=dict(width=0), legendgroup=strategy,
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=curves.grid, y=band.low, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=f"rgba{rgb + (0.18,)}", legendgroup=strategy, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=curves.grid, y=band.mean, mode="lines", name=strategy, legendgroup=strategy,
                                 line=dict(width=2, color=color)))
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", line_color="#666", annotation_text="target")
    fig.update_layout(xaxis_title=AXIS_LABELS[curves.axis], yaxis_title=f"best {metric} so far ({mode})")
    return fig


def seeds_warning(seeds: int) -> str:
    """A plain warning when so few seeds make the intervals and tests uninformative (with n
    paired seeds a one-sided signed-rank test cannot go below 1/2^n)."""
    if seeds >= 6:
        return ""
    floor = 0.5**seeds
    verdict = (
        "so no difference here can be significant at 0.05" if floor >= 0.05
        else "so only a strategy better on every seed can reach 0.05"
    )
    return (
        f"<p class='warn'>{seeds} seed{'s' * (seeds != 1)}: the 95% intervals are wide and unreliable, and no "
        f"p-value can go below {floor:.3g} (a one-sided signed-rank test over {seeds} paired seeds), {verdict}. "
        "Run 6 or more seeds before reading the tests.</p>"
    )


def write_report(folder: Path, settings: ReportSettings, trials: pd.DataFrame, summary: pd.DataFrame) -> list[Path]:
    """Write trials.csv, curves.csv, curves.parquet, summary.csv and report.html into `folder`.
    Curves run up to the budget on its own axis and over the same trials on the other two."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = within_budget(trials, settings.axis, settings.limit)
    all_curves = {
        axis: budget_curves(kept, axis, settings.mode, top=settings.limit if axis == settings.axis else None)
        for axis in AXES
    }
    long = pd.concat([curves_table(c) for c in all_curves.values()], ignore_index=True)
    paths = [folder / name for name in ("trials.csv", "curves.csv", "curves.parquet", "summary.csv", "report.html")]
    trials.to_csv(paths[0], index=False)
    long.to_csv(paths[1], index=False)
    long.to_parquet(paths[2], index=False)
    summary.to_csv(paths[3], index=False)
    seeds = sorted(trials["seed"].unique().tolist())
    rows = summary.to_dict("records")
    intro = (
        f"{len(summary)} strategies, {len(seeds)} seeds ({', '.join(map(str, seeds))}), budget {settings.budget_label()} "
        f"per execution, metric {html.escape(settings.metric)} ({settings.mode}){_target_text(settings)}. Bands and CIs: "
        "95% bootstrap confidence interval of the mean over seeds. Ranks: 1 = best, within each seed at each budget "
        f"point, averaged. p-values against {html.escape(settings.baseline)}: {TESTS}."
    )
    sections = [Section("Summary", html=seeds_warning(len(seeds)) + table(rows, ("strategy", "test")))]
    sections += [
        Section(f"best {settings.metric} against {AXIS_LABELS[axis]}", curves_figure(c, kept, settings.metric, settings.mode, settings.target))
        for axis, c in all_curves.items()
    ]
    page = render(settings.title, intro, sections)
    paths[4].write_text(page)
    return paths


def _target_text(settings: ReportSettings) -> str:
    parts = []
    if settings.target is not None:
        parts.append(f"target {settings.target:g}")
    if settings.optimum is not None:
        parts.append(f"known optimum {settings.optimum:.6g}")
    return f"; {', '.join(parts)}" if parts else ""


def metric_key(strategy: str) -> str:
    """An MLflow-safe metric prefix for a strategy name (`tpe+asha` -> `tpe_asha`)."""
    return re.sub(r"[^\w.\- /]", "_", strategy)


def summary_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The summary as flat MLflow metrics: `<strategy>/<statistic>`, finite values only."""
    metrics = {}
    for row in summary.to_dict("records"):
        for key, value in row.items():
            if key in ("strategy", "test") or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            metrics[f"{metric_key(row['strategy'])}/{key}"] = float(value)
    return metrics


@dataclass(frozen=True)
class ComparisonReport:
    trials: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]
    metrics: dict[str, float]
    settings: ReportSettings  # as used: a multi-objective comparison's reference point filled in


def comparison_report(
    client: MlflowClient, experiment_ids: list[str], comparison_id: str, settings: ReportSettings, folder: Path
) -> ComparisonReport:
    """Read a comparison back from MLflow, summarize it and write its files into `folder`."""
    if settings.objectives:
        metrics = tuple(m for m, _ in settings.objectives)
        trials = load_trials(client, experiment_ids, comparison_id, metrics[0], extra=metrics)
        if not trials.empty:
            trials, reference = hypervolume_so_far(trials, settings.objectives, settings.reference)
            settings = replace(settings, reference=reference)
    else:
        trials = load_trials(client, experiment_ids, comparison_id, settings.metric)
    if trials.empty:
        raise ValueError(f"comparison {comparison_id}: MLflow holds no finished trials for it")
    summary = summarize(
        trials,
        settings.mode,
        axis=settings.axis,
        limit=settings.limit,
        baseline=settings.baseline,
        target=settings.target,
    )
    files = write_report(folder, settings, trials, summary)
    return ComparisonReport(trials, summary, files, summary_metrics(summary), settings)


# --- the terminal table ----------------------------------------------------------------------


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def summary_table(summary: pd.DataFrame, settings: ReportSettings) -> Any:
    """A rich Table of the summary; `summary_notes` says what each number is."""
    from rich.table import Table

    table = Table(title=f"{settings.title}: {settings.metric} ({settings.mode}), budget {settings.budget_label()}")
    regret, target = "median_regret" in summary, settings.target is not None
    headers = (
        ["strategy", "seeds", "final best [95% CI]"] + ["median regret"] * regret + [f"mean rank ({settings.axis})"]
    )
    if target:
        headers += [f"to target {settings.target:g}: trials / epochs / s", "missed target"]
    headers.append(f"p vs {settings.baseline}")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=i in (0, 2))
    for row in summary.to_dict("records"):
        cells = [
            str(row["strategy"]),
            str(row["seeds"]),
            f"{_num(row['final_best'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]",
        ]
        if regret:
            cells.append(_num(row.get("median_regret"), 3))
        cells.append(f"{row['mean_rank']:.2f}")
        if target:
            cells.append(" / ".join(_num(row.get(f"to_target_{axis}"), 3) for axis in AXES))
            cells.append(f"{row['never_reached']}/{row['seeds']}")
        if row["strategy"] == settings.baseline:
            cells.append("baseline")
        else:
            cells.append(f"{_num(row.get('p_value'), 2)} {row.get('test', '')}")
        table.add_row(*cells)
    return table


def summary_notes(summary: pd.DataFrame, settings: ReportSettings) -> list[str]:
    """One line per statistic of the table: what it is and how it was computed."""
    notes = [
        "final best: mean over seeds of the best value found within the budget; CI: 95% bootstrap over seeds",
        f"mean rank: 1 = best, ranking the strategies within each seed at each {settings.axis} budget point, averaged",
    ]
    if "median_regret" in summary:
        notes.insert(
            1, f"median regret: of the trial each seed chose, exact (known optimum {_num(settings.optimum, 6)})"
        )
    if settings.target is not None:
        notes.append(
            "to target: median budget spent when the best first reached the target, over the seeds that reached it; "
            "missed target: seeds that never did"
        )
    if settings.objectives:
        reference = ", ".join(f"{m} {v:.4g}" for m, v in (settings.reference or {}).items())
        notes.insert(0, (
            f"value: hypervolume of each execution's Pareto front ({', '.join(f'{m} {d}' for m, d in settings.objectives)}) "
            f"over its trials so far, against one reference point for all: {reference or 'the worst values seen'}"
        ))
    notes.append(f"p: {TESTS}")
    return notes
