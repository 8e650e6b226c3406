"""`harness`: run, validate, resume and reproduce studies; compare strategies; list studies; open the MLflow UI."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import SpecError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from harness.study import parse_override

    values = dict(parse_override(text) for text in args.set or [])
    if args.strategy is not None:
        values["search.strategy"] = args.strategy
    if args.seed is not None:
        values["seed"] = args.seed
    if args.num_trials is not None:
        values["search.num_trials"] = args.num_trials
    return values


def _study_file(given: str) -> Any:
    """A study file's path, or the shipped study of that name (`quickstart`), read once here
    for what makes a file unreadable (size, encoding, nesting, duplicate keys, alias bombs):
    that fails in a moment, before the schema and its registries are imported."""
    from harness.study.library import resolve_study_file
    from harness.study.reading import read_yaml_mapping

    path = resolve_study_file(given)
    read_yaml_mapping(path, "study file")
    return path


def _load(args: argparse.Namespace) -> Any:
    path = _study_file(args.file)
    from harness.run.preflight import load_study

    notes: list[str] = []
    spec = load_study(path, _overrides(args), notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return spec


def cmd_validate(args: argparse.Namespace) -> int:
    import yaml

    path = _study_file(args.file)
    from harness.compare import is_comparison_file, load_comparison

    if is_comparison_file(path):
        comparison = load_comparison(path)
        executions = len(comparison.strategies) * len(comparison.seed_list())
        print(yaml.safe_dump(comparison.model_dump(mode="json"), sort_keys=False), end="")
        print(
            f"# {args.file}: valid comparison '{comparison.name}': {executions} executions "
            f"({', '.join(comparison.strategies)} x seeds {comparison.seed_list()}), "
            f"budget {comparison.budget.label()} each"
        )
        return EXIT_OK
    spec = _load(args)
    from harness.run.plan import StudyPlan

    plan = StudyPlan.of(spec)
    # The resolved study, every default filled in: what a run of it records as spec.yaml.
    print(spec.to_yaml(), end="")
    print(
        f"# {args.file}: valid study '{spec.name}' (spec hash {spec.spec_hash()}): "
        f"{plan.expected_trials} {plan.kind_name} trials, searcher {plan.searcher_name}, "
        f"scheduler {plan.scheduler_name}, {len(spec.search.space)} searched fields"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, _load(args))


def _run(args: argparse.Namespace, spec: Any) -> int:
    from harness.run.execute import run_study

    def announce(folder: Any) -> None:
        print(f"study folder: {folder}\n(if the driver stops, continue with: harness resume {folder})", flush=True)

    _stop_on_sigterm()
    outcome = run_study(
        spec,
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        progress=not args.quiet,
        announce=announce,
        refresh=_live_dashboard,
    )
    _print_outcome(outcome)
    _study_dashboard(outcome)
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def cmd_compress(args: argparse.Namespace) -> int:
    """`harness run` for a study with a `compress:` section (and only for one)."""
    spec = _load(args)
    if spec.compress is None:
        print(f"error: {args.file}: no `compress:` section; `harness run` runs a study without one", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, spec)


def cmd_resume(args: argparse.Namespace) -> int:
    from harness.compare import is_comparison_folder
    from harness.run.execute import resume_study

    _stop_on_sigterm()
    if is_comparison_folder(args.path):
        from harness.compare import resume_comparison

        return _comparison_done(resume_comparison(args.path, address=args.address, report=_report_comparison))
    outcome = resume_study(args.path, address=args.address)
    _print_outcome(outcome)
    _study_dashboard(outcome)
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    path = _study_file(args.file)
    from harness.compare import load_comparison, run_comparison

    spec = load_comparison(path)  # every derived study is checked before anything starts
    if args.parallel is not None:
        if not 1 <= args.parallel <= 1000:
            raise SpecError(f"--parallel: between 1 and 1000 (given {args.parallel})")
        spec = spec.model_copy(update={"parallel": args.parallel})

    def announce(folder: Any) -> None:
        print(f"comparison folder: {folder}\n(if the driver stops, continue with: harness resume {folder})", flush=True)

    _stop_on_sigterm()
    outcome = run_comparison(
        spec, address=args.address, tracking_uri=args.tracking_uri, storage=args.storage,
        progress=not args.quiet, announce=announce, report=_report_comparison,
    )
    return _comparison_done(outcome)


def cmd_claims(args: argparse.Namespace) -> int:
    from harness.claims import load_claims

    if args.seeds is not None and not 1 <= args.seeds <= 100:
        raise SpecError(f"--seeds: between 1 and 100 (given {args.seeds})")
    if args.parallel is not None and not 1 <= args.parallel <= 1000:
        raise SpecError(f"--parallel: between 1 and 1000 (given {args.parallel})")
    claims = load_claims(args.names or None)  # every arm of every claim is checked first
    if args.list:
        for claim in claims:
            print(f"{claim.topic:<15} {claim.name:<40} {claim.source:<22} {claim.statement}")
        return 0
    from harness.claims.execute import run_claims
    from harness.claims.table import claims_table

    def announce(folder: Any) -> None:
        again = " ".join(["harness claims", *args.names, *(["--quick"] if args.quick else []), "--resume", str(folder)])
        print(f"claims folder: {folder}\n(if the driver stops, continue with: {again})", flush=True)

    _stop_on_sigterm()
    folder, state = run_claims(
        claims, quick=args.quick, seeds=args.seeds, address=args.address, tracking_uri=args.tracking_uri,
        storage=args.storage, resume=args.resume, reuse=args.reuse, announce=announce,
        progress=(lambda line: None) if args.quiet else (lambda line: print(line, flush=True)), parallel=args.parallel,
    )
    command = "harness claims" + (f" {' '.join(args.names)}" if args.names else "") + (" --quick" if args.quick else "") + (
        f" --seeds {args.seeds}" if args.seeds else "") + (f" --out {args.out}" if args.out else "")
    text = claims_table(claims, state, command)
    (folder / "claims.md").write_text(text)
    if args.out:
        Path(args.out).write_text(text)
    for claim in claims:
        verdict = state.results[claim.name].verdict or {}
        print(f"{claim.name:<40} {verdict.get('verdict', 'not run'):<14} {verdict.get('reason', '')}")
    print(f"table: {folder / 'claims.md'}" + (f" and {args.out}" if args.out else ""))
    return 0


def _report_comparison(outcome: Any, folder: Any) -> tuple[list[Any], dict[str, float]]:
    """Read the finished comparison back from MLflow, print its table, write its report files."""
    from mlflow.tracking import MlflowClient

    from dashboards.report import ReportSettings, comparison_report, summary_notes, summary_table

    spec = outcome.spec
    settings = ReportSettings(
        spec.name, outcome.metric, outcome.mode, spec.budget.axis, spec.budget.amount, spec.baseline,
        spec.target, outcome.optimum, list(spec.strategies), outcome.objectives, outcome.reference,
    )
    report = comparison_report(
        MlflowClient(outcome.tracking_uri), [outcome.experiment_id], outcome.comparison_id, settings, folder
    )
    console = _console()
    console.print(summary_table(report.summary, report.settings))
    for note in summary_notes(report.summary, report.settings):
        console.print(f"  {note}", highlight=False)
    return report.files, report.metrics


def _console() -> Any:
    from rich.console import Console

    # Piped output (a log, CI) gets a width that fits the comparison table on one line per row.
    return Console() if sys.stdout.isatty() else Console(width=140)


def _comparison_done(outcome: Any) -> int:
    console = _console()
    if outcome.interrupted:
        console.print(f"[yellow]interrupted; continue with: harness resume {outcome.folder}[/yellow]", soft_wrap=True)
        return EXIT_INTERRUPTED
    if outcome.already_reported and outcome.ran == 0:
        console.print("the comparison was already complete: nothing was run again")
    console.print(f"report:  {outcome.folder / 'report' / 'report.html'}", soft_wrap=True)
    console.print(f"MLflow:  experiment {outcome.experiment_id}, comparison run {outcome.run_id}")
    console.print(f"look:    harness ui --tracking-uri {outcome.tracking_uri}", soft_wrap=True)
    return EXIT_OK


def _stop_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`, `timeout`) stops like Ctrl-C; see harness.run.signals."""
    from harness.run.signals import stop_on_sigterm

    stop_on_sigterm()


def _print_outcome(outcome: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = ", ".join(f"{k} {v}" for k, v in outcome.counts.items())
    console.print(f"\n[bold]{counts}[/bold]")
    if outcome.top:
        front = outcome.front
        title = f"best trials by {outcome.metric} ({outcome.mode})"
        if front is not None:
            reference = ", ".join(f"{k} {v:.4g}" for k, v in front.reference.items())
            title = f"Pareto front: {len(outcome.top)} trials, hypervolume {front.hypervolume:.4g} (reference {reference})"
        table = Table(title=title)
        # A compression study also shows what the compression bought; a multi-objective one, every objective.
        objectives = [o for o in (front.reference if front is not None else {}) if o != outcome.metric]
        extra = [k for k in (*objectives, "val/acc", "size/ratio", "latency/speedup_batch", "sparsity")
                 if k != outcome.metric and any(k in row for row in outcome.top)]
        extra = list(dict.fromkeys(extra))
        if "val/acc" not in extra and outcome.metric != "val/acc":
            extra.insert(0, "val/acc")
        for column in ("trial", "epochs", outcome.metric, *extra, "params"):
            table.add_column(column)
        for row in outcome.top:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in row["params"].items())
            shown = ["-" if row.get(k) is None else f"{row[k]:.4f}" for k in extra]
            table.add_row(row["trial_id"], str(row["epochs"]), _with_std(row, outcome.metric), *shown, params)
        console.print(table)
    if outcome.test_metrics:
        overall = {k: v for k, v in outcome.test_metrics.items() if k.count("/") == 1}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in overall.items())
        console.print(f"chosen config on the sealed test split: [bold]{shown}[/bold]")
        extra = {k: v for k, v in outcome.test_metrics.items() if k.count("/") == 2 and k.split("/")[1] in OVERALL_EXTRAS}
        if extra:
            console.print("  and " + ", ".join(f"{k} {v:.4f}" for k, v in extra.items()))
        regimes = _regime_table(outcome.test_metrics)
        if regimes is not None:
            console.print(regimes)
    for note in outcome.notes:
        console.print(note, soft_wrap=True)
    study = outcome.study
    console.print(f"MLflow: experiment {study.experiment_id}, parent run {study.parent_run_id}")
    console.print(f"look:    harness ui --tracking-uri {study.tracking_uri}")
    if outcome.interrupted:
        # soft_wrap: the path must stay one copyable line however narrow the terminal.
        console.print(
            f"[yellow]interrupted; continue with: harness resume {outcome.experiment_path}[/yellow]", soft_wrap=True
        )
    else:
        console.print(f"folder:  {outcome.experiment_path}")


def _with_std(row: dict[str, Any], metric: str) -> str:
    """`0.1234`, or `0.1234 ± 0.0056` for a k-fold trial (mean ± std over folds)."""
    std = row.get(f"{metric}_std")
    return f"{row[metric]:.4f}" + ("" if std is None else f" ± {std:.4f}")


# Overall test scores of the other models a trial may hold (`test/<model>/<score>`).
OVERALL_EXTRAS = ("snapshot_ensemble", "specialist")
# Per-regime test scores (`test/<score>/<column>_bin_<i>`), the global model's and, in a
# specialists study, the specialists'.
REGIME_SCORES = tuple(f"{who}{score}" for who in ("", "specialist ") for score in ("loss", "acc", "rmse"))


def _regime_table(metrics: dict[str, float]) -> Any:
    """The sealed-test scores per regime bin (`test/<metric>/<column>_bin_<i>` keys), one row per
    bin, so that a good overall score cannot hide a bad regime; None without regimes."""
    from rich.table import Table

    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, rest = key.partition("/")
        if rest.startswith("specialist/"):  # a specialists study: each regime's own model beside the global one
            rest = "specialist " + rest.removeprefix("specialist/")
        metric, _, group = rest.partition("/")
        if split == "test" and group and metric in REGIME_SCORES and not group.startswith("fold_"):
            rows.setdefault(group, {})[metric] = value
    if not rows:
        return None
    columns = list(dict.fromkeys(m for row in rows.values() for m in row))
    table = Table(title="sealed test split per regime (bins of equal train counts, low to high)")
    table.add_column("regime bin")
    for column in columns:
        table.add_column(f"test/{column}", justify="right")
    for group, row in rows.items():
        table.add_row(group, *("-" if c not in row else f"{row[c]:.4f}" for c in columns))
    return table


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from harness.paths import default_tracking_uri
    from harness.run.reproduce import reproduce_run

    rows = reproduce_run(args.run_id, args.tracking_uri or default_tracking_uri())
    worst = max(row.diff for row in rows)
    print(f"{'epoch':>5}  {'metric':<12} {'recorded':>14} {'reproduced':>14} {'|diff|':>10}")
    for row in rows:
        print(f"{row.epoch:>5}  {row.metric:<12} {row.recorded:>14.8g} {row.reproduced:>14.8g} {row.diff:>10.2e}")
    ok = worst <= args.tolerance
    print(f"{'MATCH' if ok else 'MISMATCH'}: largest difference {worst:.3g} (tolerance {args.tolerance:g})")
    return EXIT_OK if ok else EXIT_MISMATCH


def cmd_lr_find(args: argparse.Namespace) -> int:
    spec = _load(args)
    from harness.run.lr_find import LRFindSettings, run_lr_find

    settings = LRFindSettings(min_lr=args.min_lr, max_lr=args.max_lr, num_steps=args.steps)
    outcome = run_lr_find(spec, settings, tracking_uri=args.tracking_uri, out=args.out)
    result = outcome.result
    end = "the loss diverged" if result.diverged else f"reached {settings.max_lr:g}"
    print(
        f"LR range test on '{spec.name}' ({spec.train.optimizer.name}, batch {outcome.batch_size}): "
        f"{len(result.lrs)} steps from {settings.min_lr:g} until {end} at {result.lrs[-1]:.3g}"
    )
    print(f"smoothed loss is lowest at lr {result.min_loss_lr:.3g}")
    print(f"suggested lr: {result.suggestion:.3g}  (a tenth of that)")
    if outcome.lr_factor != 1.0:
        print(f"  = train.optimizer.lr {result.suggestion / outcome.lr_factor:.3g} before lr_scaling")
    print(f"curve:   {outcome.folder}/lr_find.csv, {outcome.folder}/lr_find.png")
    print(f"MLflow:  run {outcome.run_id} in experiment '{spec.name}' ({outcome.tracking_uri})")
    return EXIT_OK


def cmd_studies(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.study.library import copy_study, shipped_studies

    if args.action == "copy":
        if not args.name:
            raise SpecError("harness studies copy NAME [DEST]: give the name of a shipped study (`harness studies`)")
        for path in copy_study(args.name, Path(args.dest or "."), force=args.force):
            print(f"wrote {path}")
        return EXIT_OK
    for study in shipped_studies():
        print(f"{study.command:<42} {study.summary}")
    print("\ncopy one out to edit it: harness studies copy NAME [DEST]")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Regenerate a study's dashboard (RUN_ID: its parent run) or a seed-aggregation page
    (--experiment: every finished execution of a study) from the tracking store."""
    from pathlib import Path

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from dashboards.write import seeds_dashboard, study_dashboard
    from harness.paths import default_tracking_uri, harness_home

    if (args.run_id is None) == (args.experiment is None):
        print("error: give a study's parent RUN_ID or --experiment NAME (one of them)", file=sys.stderr)
        return EXIT_USAGE
    client = MlflowClient(args.tracking_uri or default_tracking_uri())
    folder = harness_home() / "dashboards"
    try:
        if args.run_id is not None:
            out = Path(args.out) if args.out else folder / f"study-{args.run_id[:8]}.html"
            path = study_dashboard(client, args.run_id, out)
        else:
            out = Path(args.out) if args.out else folder / f"{args.experiment}-seeds.html"
            path = seeds_dashboard(client, args.experiment, out)
    except (MlflowException, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return EXIT_USAGE
    print(f"dashboard: {path.resolve()}")
    return EXIT_OK


def _live_dashboard(study: Any) -> None:
    """Rebuild a running study's dashboard on its parent run (the MLflow UI shows the latest)."""
    import tempfile
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from dashboards.write import study_dashboard

    with tempfile.TemporaryDirectory() as tmp:
        study_dashboard(MlflowClient(study.tracking_uri), study.parent_run_id, Path(tmp) / "dashboard.html")


def _study_dashboard(outcome: Any) -> None:
    """Write the finished study's dashboard, attach it to its parent run, print where it is.
    A page that cannot be built is reported, never a reason to fail the study."""
    from mlflow.tracking import MlflowClient

    from dashboards.write import study_dashboard

    study = outcome.study
    try:
        path = study_dashboard(
            MlflowClient(study.tracking_uri), study.parent_run_id, outcome.experiment_path / "dashboard.html"
        )
    except Exception as exc:  # evidence only: the study's results are already stored
        print(f"warning: the dashboard was not written ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    print(f"dashboard: {path}")


def cmd_ui(args: argparse.Namespace) -> int:
    from harness.paths import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    if not uri.startswith("http"):
        from harness.tracking.store import check_store

        check_store(uri)
    if uri.startswith("http"):
        print(f"the MLflow server at {uri} serves its own UI: open it in a browser")
        return EXIT_OK
    mlflow = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    print(f"serving the MLflow UI at http://{args.host}:{args.port} over {uri}; open it in a browser (Ctrl-C stops it)")
    # The UI only reads runs; MLflow's background job workers would be idle processes.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.call(command, env=env)


def build_parser() -> argparse.ArgumentParser:
    """The command line; choices and defaults in the help come from the registries and settings
    they describe, so the help cannot drift from the code."""
    from harness.paths import default_storage, harness_home
    from harness.search import STRATEGIES

    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark and tune neural networks: Lightning trials, Ray Tune search, MLflow tracking.",
    )
    parser.add_argument("--version", action="version", version=f"nn-harness {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show Ray's and MLflow's own logs and warnings (quiet by default)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    home = harness_home()

    def study_file(p: argparse.ArgumentParser, what: str = "study") -> None:
        p.add_argument("file", help=f"{what} YAML file, or the name of a shipped one (`harness studies`)")

    def override_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE",
            help="override a field by dotted path (repeatable); a searched field set this way is no longer searched",
        )
        p.add_argument("--seed", type=int, help="study seed (seeds the searcher and every trial)")

    def search_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--strategy", choices=STRATEGIES.names(), metavar="NAME",
                       help=f"search strategy preset: {', '.join(STRATEGIES.names())}")
        p.add_argument("--num-trials", type=int, help="number of trials")

    def tracking_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tracking-uri", help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///{home}/mlflow.db)")

    def address_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT of its head (default: a local Ray)")

    def run_args(p: argparse.ArgumentParser, storage: Any) -> None:
        address_arg(p)
        tracking_arg(p)
        p.add_argument("--storage", help=f"folder for Ray results and checkpoints (default: {storage})")
        p.add_argument("--quiet", action="store_true", help="no live progress display")

    p = sub.add_parser("run", help="run a study")
    study_file(p)
    override_args(p)
    search_args(p)
    run_args(p, default_storage())
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compress", help="run a compression study (a study with a `compress:` section)")
    study_file(p, "compression study")
    override_args(p)
    search_args(p)
    run_args(p, default_storage())
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("validate", help="check a study (or comparison) and print it resolved; run nothing")
    study_file(p, "study or comparison")
    override_args(p)
    search_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("compare", help="compare search strategies over seeds on one budget")
    study_file(p, "comparison")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="executions at once, each in a driver process of its own (default: the file's `parallel`, else auto)")
    run_args(p, home / "compare")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("claims", help="re-test the claims of NN practice over seeds; write the verdict table")
    p.add_argument("names", nargs="*", metavar="NAME", help="claims or topics to run (default: all; `harness claims --list`)")
    p.add_argument("--quick", action="store_true", help="reduced settings and one seed: minutes, not the published table")
    p.add_argument("--seeds", type=int, help="seeds per claim (default: each claim's, 5)")
    p.add_argument("--out", help="write the table here too (the published one: docs/claims.md)")
    p.add_argument("--resume", metavar="FOLDER", help="continue a claims run from its folder")
    p.add_argument("--reuse", action="append", metavar="FOLDER",
                   help="take the executions another claims folder measured (same spec and seed) instead of running them again")
    p.add_argument("--list", action="store_true", help="list the claims and their studies; run nothing")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="executions at once, each in a driver process of its own (default: as many as the cluster's CPUs keep busy; one at a time for wall-clock budgets)")
    run_args(p, home / "claims")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("resume", help="continue a study or a comparison whose driver stopped")
    p.add_argument("path", help="the study's or comparison's folder, as printed by `harness run` / `harness compare`")
    address_arg(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("reproduce", help="re-run a trial from its saved config and compare metrics")
    p.add_argument("run_id", metavar="RUN_ID", help="an MLflow child (trial) run id")
    tracking_arg(p)
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest allowed difference (default 1e-6)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("lr-find", help="LR range test on a study's model and data; suggests a learning rate")
    study_file(p)
    override_args(p)
    tracking_arg(p)
    p.add_argument("--out", help=f"folder for lr_find.csv and lr_find.png (default: {home}/lr_find/STUDY-TIME)")
    p.add_argument("--min-lr", type=float, default=1e-7, help="first LR of the sweep (default 1e-7)")
    p.add_argument("--max-lr", type=float, default=10.0, help="last LR of the sweep (default 10)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps in the sweep (default 300)")
    p.set_defaults(func=cmd_lr_find, strategy=None, num_trials=None)

    p = sub.add_parser("studies", help="list the shipped studies, or copy one out to edit it")
    p.add_argument("action", nargs="?", choices=["list", "copy"], default="list", help="list (default) or copy")
    p.add_argument("name", nargs="?", help="copy: the shipped study's name")
    p.add_argument("dest", nargs="?", help="copy: the folder to write it to (default: the current folder)")
    p.add_argument("--force", action="store_true", help="copy: overwrite existing files")
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("dashboard", help="write a study's interactive dashboard (or every execution's, over seeds)")
    p.add_argument("run_id", nargs="?", metavar="RUN_ID", help="a study's parent run (`harness run` prints it)")
    p.add_argument("--experiment", metavar="NAME", help="every finished execution of this study, over seeds")
    p.add_argument("--out", metavar="FILE", help="where to write the page (default: under HARNESS_HOME/dashboards)")
    tracking_arg(p)
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("ui", help="serve the MLflow UI over the tracking store (open the printed address)")
    tracking_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        os.environ["HARNESS_VERBOSE"] = "1"
    else:
        # Before MLflow is imported, which reads these: no INFO lines about creating its tables,
        # no download progress bar in `reproduce`.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if hasattr(args, "address"):
        from harness.run.cluster import prepare_auth

        prepare_auth(args.address)  # before anything imports Ray, which reads it then
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
