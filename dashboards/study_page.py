"""The study dashboard (one execution) and the seed-aggregation page (every execution of a
study): optimization history, learning curves, parallel coordinates, importances, slices,
the Pareto front and hypervolume history of a multi-objective study, failures and stops, the
chosen configuration and its sealed-test score."""

from __future__ import annotations

import html
import math
import warnings
from collections import Counter
from typing import Any

import numpy as np
import plotly.graph_objects as go
import yaml

from dashboards.optuna_study import objective_names, optuna_study
from dashboards.page import Section, render, table
from dashboards.statistics import bootstrap_band
from dashboards.study_data import StudyData
from harness.tracking import contract as c

STATUS_STYLE = {
    c.FINISHED: dict(color="#1f77b4", dash="solid"),
    c.KILLED: dict(color="#ff7f0e", dash="dot"),  # stopped early (or interrupted)
    c.FAILED: dict(color="#d62728", dash="dash"),
    c.RUNNING: dict(color="#2ca02c", dash="solid"),
}
# The uncompressed teacher's value of a compression objective, as a trial reports it.
TEACHER_OF = {
    "val/acc": "teacher/val/acc",
    "size/bytes": "size/teacher_bytes",
    "latency/ms": "latency/teacher_ms",
    "latency/ms_batch": "latency/teacher_ms_batch",
}


def learning_curves(data: StudyData) -> go.Figure:
    """Every trial's study metric per epoch, styled by how it ended (legend toggles a status)."""
    fig = go.Figure()
    shown: set[str] = set()
    for trial in data.ordered():
        if not trial.curve:
            continue
        style = STATUS_STYLE.get(trial.status, STATUS_STYLE[c.FINISHED])
        label = {c.KILLED: "stopped early", c.FAILED: "failed", c.FINISHED: "finished"}.get(trial.status, trial.status.lower())
        epochs, values = zip(*trial.curve)
        fig.add_trace(
            go.Scatter(
                x=list(epochs), y=list(values), mode="lines+markers", name=label, legendgroup=label,
                showlegend=label not in shown, line=dict(width=1.5, **style), marker=dict(size=4),
                hovertemplate=f"trial {trial.trial_id}<br>epoch %{{x}}<br>{data.metric} %{{y:.4g}}<br>{html.escape(trial.reason or trial.status)}<extra></extra>",
            )
        )
        shown.add(label)
    fig.update_layout(xaxis_title="epoch", yaxis_title=data.metric)
    return fig


def _optuna_figures(data: StudyData) -> list[Section]:
    import optuna
    import optuna.visualization as vis

    study = optuna_study(data)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    names = objective_names(data)
    sections: list[Section] = []
    multi = len(names) > 1
    target = (lambda t: t.values[0]) if multi else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks some plots experimental
        history = vis.plot_optimization_history(study, target=target, target_name=names[0])
        sections.append(Section(f"Optimization history ({names[0]}, {data.mode})", history,
                                note="every completed trial in the order its result arrived, and the best so far"))
        if data.trials and any(t.curve for t in data.trials):
            sections.append(Section("Learning curves", learning_curves(data),
                                    note="solid: finished; dotted: stopped early (scheduler) or interrupted; dashed: failed"))
        if multi:
            sections.extend(_pareto_sections(data, study, names))
        params = list(study.trials[0].params) if study.trials else []
        if len(complete) >= 2 and params:
            sections.append(Section("Parallel coordinates", vis.plot_parallel_coordinate(study, target=target, target_name=names[0])))
            try:
                importance = vis.plot_param_importances(study, target=target, target_name=names[0])
                ranked = list(optuna.importance.get_param_importances(study, target=target))
                sections.append(Section("Parameter importances", importance,
                                        note="fANOVA (Optuna's default evaluator) over the completed trials"))
            except (RuntimeError, ValueError, ZeroDivisionError) as exc:
                ranked = params
                sections.append(Section("Parameter importances", note=f"not computed: {html.escape(str(exc))}"))
            sections.append(Section(f"Slices of the most important parameters ({names[0]})",
                                    vis.plot_slice(study, params=ranked[:3], target=target, target_name=names[0])))
    return sections


def _pareto_sections(data: StudyData, study: Any, names: list[str]) -> list[Section]:
    import optuna.visualization as vis

    sections = []
    if len(names) in (2, 3):
        front = vis.plot_pareto_front(study, target_names=names, include_dominated_trials=True)
        teacher = [next((t.metrics[TEACHER_OF[n]] for t in data.trials if TEACHER_OF.get(n) in t.metrics), None) for n in names]
        if all(v is not None for v in teacher):
            point = dict(mode="markers", name="teacher (uncompressed)", marker=dict(symbol="star", size=16, color="black"))
            if len(names) == 2:
                front.add_trace(go.Scatter(x=[teacher[0]], y=[teacher[1]], **point))
            else:
                front.add_trace(go.Scatter3d(x=[teacher[0]], y=[teacher[1]], z=[teacher[2]], **point))
        sections.append(Section(f"Pareto front ({', '.join(names)})", front,
                                note="front trials highlighted; hover a point for its parameters"))
    pareto = data.report.get("pareto", {})
    reference = pareto.get("reference")
    if reference and all(n in reference for n in names):
        history = vis.plot_hypervolume_history(study, reference_point=[float(reference[n]) for n in names])
        sections.append(Section("Hypervolume history", history,
                                note=f"reference point: {html.escape(', '.join(f'{n} {reference[n]:.4g}' for n in names))}"))
    return sections


def _stages(data: StudyData) -> list[Section]:
    """A compression study's chosen trial, stage by stage: accuracy of the teacher, after each
    fine-tuning stage (its last epoch) and of the shipped artifact, with what shipping bought."""
    chosen = next((t for t in data.trials if t.trial_id == data.best_trial_id), None)
    if chosen is None or "teacher/val/acc" not in chosen.metrics:
        return []
    stages = [("teacher", chosen.metrics["teacher/val/acc"])]
    stages += [
        (key.removesuffix("/val/acc"), value) for key, value in chosen.metrics.items()
        if key.endswith("/val/acc") and key not in ("teacher/val/acc",) and key.count("/") >= 2
    ]
    stages.append(("shipped artifact", chosen.metrics.get("val/acc", math.nan)))
    fig = go.Figure(go.Bar(x=[s for s, _ in stages], y=[v for _, v in stages], text=[f"{v:.4f}" for _, v in stages],
                           marker_color=["#7f7f7f"] + ["#1f77b4"] * (len(stages) - 2) + ["#2ca02c"]))
    low = min(v for _, v in stages if math.isfinite(v))
    fig.update_layout(yaxis_title="val/acc", yaxis_range=[max(0.0, low - 0.05), 1.0])
    keys = ["size/ratio", "size/gzip_ratio", "sparsity", "latency/speedup", "latency/speedup_batch", "size/bytes"]
    shipped = [{"measure": k, "value": chosen.metrics[k]} for k in keys if k in chosen.metrics]
    return [Section(f"Compression stages of the chosen trial ({chosen.trial_id})", fig,
                    note="validation accuracy after each stage's last epoch, and of the shipped artifact in its runtime",
                    html=table(shipped, ("measure",)))]


# Final metrics a complexity curve shows, where the trials report them.
CAPACITY_METRICS = (
    ("train/loss", "train error", "#1f77b4", "solid"),
    ("val/loss", "validation error", "#ff7f0e", "solid"),
    ("bv/expected_error", "expected error (true)", "#000000", "dash"),
    ("bv/bias2", "bias\u00b2", "#2ca02c", "dot"),
    ("bv/variance", "variance", "#d62728", "dot"),
    ("bv/noise", "noise", "#7f7f7f", "dot"),
)


def _parsed(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def capacity_axis(data: StudyData) -> tuple[str, list[Any]] | None:
    """The one parameter the finished trials vary, when its values are numbers or lists of
    numbers (a width per layer), in ascending order: the complexity axis of a capacity study.
    None when the trials vary none, several, or something else (a whole pipeline, a name)."""
    finished = [t for t in data.trials if t.status == c.FINISHED]
    varied = [k for k in sorted({k for t in finished for k in t.params}) if len({t.params.get(k) for t in finished}) > 1]
    if len(varied) != 1 or len(finished) < 3:
        return None
    values = [_parsed(t.params[varied[0]]) for t in finished if varied[0] in t.params]
    if not all(_numeric(v) for v in values):
        return None
    unique = {repr(v): v for v in values}
    return varied[0], sorted(unique.values(), key=lambda v: [v] if not isinstance(v, list) else v)


def _numeric(value: Any) -> bool:
    number = (int, float)
    return (isinstance(value, number) and not isinstance(value, bool)) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, number) and not isinstance(v, bool) for v in value)
    )


def _capacity(data: StudyData) -> list[Section]:
    """Train and validation error (and, for a bias-variance study, bias^2, variance, noise and
    the true expected error) against the one parameter the trials vary, with the sweet spot the
    validation error finds and, where known, the true one."""
    axis = capacity_axis(data)
    if axis is None:
        return []
    name, values = axis
    finished = [t for t in data.trials if t.status == c.FINISHED]
    by_value = {v: [t for t in finished if _parsed(t.params.get(name, "")) == v] for v in values}
    labels = [str(v) for v in values]
    fig = go.Figure()
    shown = [m for m in CAPACITY_METRICS if any(m[0] in t.metrics for t in finished)]
    if not any(key.startswith("bv/") for key, *_ in shown) and "val/loss" not in {k for k, *_ in shown}:
        return []
    rows = []
    for value, label in zip(values, labels):
        row: dict[str, Any] = {name: label}
        for key, *_ in shown:
            got = [t.metrics[key] for t in by_value[value] if key in t.metrics]
            row[key] = float(np.mean(got)) if got else math.nan
        rows.append(row)
    for key, title, color, dash in shown:
        fig.add_trace(go.Scatter(x=labels, y=[r[key] for r in rows], mode="lines+markers", name=title,
                                 line=dict(color=color, dash=dash, width=2)))
    capacity = any(key.startswith("bv/") for key, *_ in shown)
    notes = []
    for key, who in (("val/loss", "validation"), ("bv/expected_error", "true")):
        scored = [r for r in rows if key in r and math.isfinite(r[key])]
        if scored:
            best = min(scored, key=lambda r: r[key])
            where = f"{html.escape(name)} = {html.escape(str(best[name]))} ({key} {best[key]:.4g})"
            notes.append(f"{who} sweet spot: {where}" if capacity else f"lowest validation error: {where}")
            fig.add_vline(x=labels.index(best[name]), line=dict(color="#ff7f0e" if who == "validation" else "#000000", dash="dash", width=1))
    fig.update_layout(xaxis_title=name, yaxis_title="error at the final epoch", xaxis_type="category", yaxis_type="log")
    title = "Error against capacity" if capacity else f"Final train and validation error against {html.escape(name)}"
    return [Section(title, fig, note="; ".join(notes) + " (log scale; the final epoch of each trial)",
                    html=table(rows, (name,)))]


def reliability_rows(test: dict[str, float]) -> list[dict[str, Any]]:
    """`test/reliability/bin_<lower>/<measure>` metrics as one row per confidence bin."""
    rows: dict[str, dict[str, Any]] = {}
    for key, value in test.items():
        if key.startswith("test/reliability/"):
            _, _, bin_name, measure = key.split("/")
            rows.setdefault(bin_name, {"bin": bin_name})[measure] = value
    return [rows[k] for k in sorted(rows)]


def _reliability(data: StudyData) -> list[Section]:
    """The chosen trial's reliability diagram on the sealed test split: accuracy against
    confidence per bin, the diagonal being perfect calibration."""
    rows = reliability_rows(data.test)
    if not rows:
        return []
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(color="#7f7f7f", dash="dash")))
    fig.add_trace(go.Scatter(
        x=[r.get("confidence") for r in rows], y=[r.get("accuracy") for r in rows], mode="markers+lines", name="model",
        marker=dict(size=[6 + 40 * math.sqrt(r.get("share", 0.0)) for r in rows]),
        text=[f"{r['bin']}: {r.get('share', 0):.1%} of predictions" for r in rows], hovertemplate="%{text}<br>confidence %{x:.3f}<br>accuracy %{y:.3f}<extra></extra>",
    ))
    fig.update_layout(xaxis_title="mean confidence in bin", yaxis_title="accuracy in bin", xaxis_range=[0, 1.02], yaxis_range=[0, 1.02])
    ece = data.test.get("test/ece")
    note = (f"expected calibration error {ece:.4f}; " if ece is not None else "") + "marker area: share of predictions"
    return [Section("Calibration of the chosen trial (sealed test split)", fig, note=note, html=table(rows, ("bin",)))]


def _outcome_tables(data: StudyData) -> list[Section]:
    counts = Counter(t.status for t in data.trials)
    reasons = Counter((t.status, t.reason) for t in data.trials if t.status != c.FINISHED)
    rows = [{"status": s, "trials": n} for s, n in sorted(counts.items())]
    reason_rows = [{"status": s, "reason": r or "-", "trials": n} for (s, r), n in reasons.most_common()]
    reasons_html = table(reason_rows, ("reason",)) if reason_rows else "<p class='note'>every trial finished</p>"
    sections = [Section("Trials and how they ended", html=table(rows) + reasons_html)]
    chosen = next((t for t in data.trials if t.trial_id == data.best_trial_id), None)
    if chosen is not None:
        overall = {k: v for k, v in data.test.items() if k.count("/") == 1 or k.startswith("test/snapshot_ensemble/")}
        config = [{"parameter": k, "value": v} for k, v in sorted(chosen.params.items())]
        test_rows = [{"metric": k, "value": v} for k, v in sorted(overall.items())]
        sections.append(Section(
            f"Chosen configuration (trial {chosen.trial_id}) and its sealed-test score",
            html=table(config, ("parameter", "value")) + table(test_rows, ("metric",)),
        ))
    regimes = _regime_rows(data.test)
    if regimes:
        sections.append(Section("Test score by operating regime", html=table(regimes, ("regime",))))
    if data.objectives:
        members = [t for t in data.trials if t.pareto]
        rows = [{"trial": t.trial_id, **{n: t.metrics.get(n) for n in objective_names(data)},
                 **{k: v for k, v in t.params.items()}} for t in members]
        sections.append(Section(f"Pareto front members ({len(members)})", html=table(rows)))
    return sections


def _regime_rows(test: dict[str, float]) -> list[dict[str, Any]]:
    """`test/<metric>/<regime bin>` keys as one row per bin."""
    rows: dict[str, dict[str, Any]] = {}
    for key, value in test.items():
        parts = key.split("/", 2)
        if len(parts) == 3 and parts[1] in ("loss", "acc", "rmse"):
            rows.setdefault(parts[2], {"regime": parts[2]})[parts[1]] = value
    return list(rows.values())


def study_page(data: StudyData) -> str:
    """The dashboard of one execution."""
    done = sum(t.end_ms is not None for t in data.trials)
    subtitle = (
        f"experiment {html.escape(data.experiment)}, parent run {data.run_id} ({data.status.lower()}), "
        f"{len(data.trials)} trials ({done} ended), metric {html.escape(data.metric)} ({data.mode})"
        + (f"; objectives {html.escape(', '.join(f'{m} {d}' for m, d in data.objectives))}" if data.objectives else "")
        + (f". {html.escape(data.description)}" if data.description else "")
    )
    sections = _optuna_figures(data) if data.trials else [Section("No trials yet", note="nothing has ended")]
    sections += _stages(data) + _capacity(data) + _reliability(data)
    return render(f"{data.name}: study dashboard", subtitle, sections + _outcome_tables(data))


def seeds_page(studies: list[StudyData]) -> str:
    """Several executions of one study (different seeds): the mean best-so-far curve with its
    95% bootstrap confidence band over executions, and each execution's final result."""
    first = studies[0]
    curves = [s.best_so_far() for s in studies]
    length = max(len(cv) for cv in curves)
    # An execution's curve ends at its last trial; it is not carried past it.
    matrix = np.full((len(curves), length), np.nan)
    for i, cv in enumerate(curves):
        matrix[i, : len(cv)] = cv
    x = np.arange(1, length + 1)
    counts = np.isfinite(matrix).sum(axis=0)
    fig = go.Figure()
    for study, curve in zip(studies, curves):
        fig.add_trace(go.Scatter(x=x[: len(curve)], y=curve, mode="lines", name=f"seed {study.seed}",
                                 line=dict(width=1, color="rgba(120,120,120,0.5)"), legendgroup="seeds"))
    enough = counts >= 2
    if enough.any():
        band = bootstrap_band(matrix[:, enough])
        fig.add_trace(go.Scatter(x=x[enough], y=band.high, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x[enough], y=band.low, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor="rgba(31,119,180,0.2)", name="95% CI of the mean"))
        fig.add_trace(go.Scatter(x=x[enough], y=band.mean, mode="lines", line=dict(width=3, color="#1f77b4"), name="mean"))
    fig.update_layout(xaxis_title="trials", yaxis_title=f"best {first.metric} so far ({first.mode})")
    rows = []
    for study, curve in zip(studies, curves):
        finite = curve[np.isfinite(curve)]
        rows.append({"seed": study.seed, "parent run": study.run_id, "trials": len(study.trials),
                     f"best {first.metric}": float(finite[-1]) if len(finite) else math.nan,
                     **{k: v for k, v in study.test.items() if k.count("/") == 1}})
    finals = np.array([[r[f"best {first.metric}"]] for r in rows], dtype=float)
    final = bootstrap_band(finals) if len(rows) >= 2 else None
    warning = ""
    if len(studies) < 5:
        warning = (f"<p class='warn'>{len(studies)} executions: a confidence interval over so few seeds is wide and "
                   "unreliable; run more seeds (5 or more) before reading differences into it.</p>")
    summary = (f"<p>mean final best {final.mean[0]:.4g}, 95% CI [{final.low[0]:.4g}, {final.high[0]:.4g}] over "
               f"{len(rows)} executions</p>") if final is not None else ""
    subtitle = f"experiment {html.escape(first.experiment)}: {len(studies)} finished executions"
    sections = [
        Section("Best so far, every execution and their mean", fig, note="bands: 95% bootstrap CI of the mean over the executions that reached that trial"),
        Section("Final results per execution", html=warning + summary + table(rows, ("parent run",))),
    ]
    return render(f"{first.name}: executions over seeds", subtitle, sections)
