"""Harness overhead: the same N trivial trials through the harness's runner and through a
bare `ray.tune.Tuner`, side by side in one process on one local Ray.

    python benchmarks/harness_overhead.py [--quick] [--trials N] [--epochs N] [--repeats N]

The trainable does no training: it reports a few epochs of cheap numbers, so what is timed is
the machinery around trials. The harness side is `harness.run.execute.run_study` (what `harness run`
calls) with only `make_trainable` swapped for the trivial trainable: MLflow parent and child
runs in a local SQLite store, the MLflow and progress callbacks, the state file, `finalize`.
The trivial trainable saves no checkpoint, so `finalize` skips the test-split evaluation of
the best trial; that one evaluation per study is timed separately on a real quickstart
checkpoint. The baseline is a bare `tune.Tuner` with the same trainable, search space,
searcher, scheduler and Tune settings, and nothing else; a third variant is the same Tuner
with Ray's default settings. Ray starts once, before any timing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, Lap, Stopwatch, interleaved, machine, markdown_table, median, spread

QUICKSTART = ROOT / "studies" / "quickstart.yaml"
# Settings `harness.run.cluster.init_ray` puts in the environment for the harness's own Tuner; the
# bare Tuner runs with Ray's defaults for them.
HARNESS_ENV = ("TUNE_GLOBAL_CHECKPOINT_S", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S")


def trivial_trainable(config: dict[str, Any], epochs: int) -> None:
    """Reports `epochs` epochs of numbers shaped by the sampled config; no torch."""
    from ray import tune

    lr = float(config.get("train.optimizer.lr", 1e-3))
    dropout = float(config.get("model.dropout", 0.0))
    for epoch in range(1, epochs + 1):
        loss = 1.0 / (epoch * lr * 1e3 + 1.0) + dropout * 0.1
        tune.report({"epoch": epoch, "train/loss": loss, "val/loss": loss * 1.1, "val/acc": 1.0 - loss / 2, "lr": lr})


class Timer:
    """Wraps functions to add up the seconds spent in each (parts of one harness run)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed


def trainable(spec: Any) -> Any:
    """The trivial trainable with the spec's epochs and per-trial resources, as the harness wraps its own."""
    from ray import tune

    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(trivial_trainable, epochs=spec.train.max_epochs), resources)


def harness_run(spec: Any, parts: list[dict[str, float]], in_loop: bool = False) -> Lap:
    """`run_study` with the trivial trainable; its live view goes to a buffer (the one-line-per-
    trial form it takes when stdout is not a terminal). With `in_loop`, the MLflow writes are
    made where they are queued, inside Ray Tune's loop, as before the background writer."""
    from harness.run import callbacks, execute, tuner
    from harness.tracking import writer

    timer = Timer()
    patches: list[tuple[Any, str, Any]] = [
        (tuner, "make_trainable", lambda plan, prepared=None: trainable(plan.spec)),
        (execute, "start_study_run", timer.wrap("parent run", execute.start_study_run)),
        (execute, "finalize", timer.wrap("finalize", execute.finalize)),
        (writer.Writer, "flush", timer.wrap("flush", writer.Writer.flush)),
        (callbacks.ProgressCallback, "on_step_end", timer.wrap("progress", callbacks.ProgressCallback.on_step_end)),
    ]
    for hook in ("on_trial_start", "on_trial_result", "on_trial_complete"):
        patches.append(
            (callbacks.MlflowTrialCallback, hook, timer.wrap("mlflow", getattr(callbacks.MlflowTrialCallback, hook)))
        )
    if in_loop:  # the calls made where they are queued; the writer process is left idle
        patches.append((writer, "_WRITER", writer.Writer(inline=True)))
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            watch = Stopwatch()
            outcome = execute.run_study(spec, progress=True)
            lap = watch.lap()
    finally:
        for owner, name, value in originals:
            setattr(owner, name, value)
    if outcome.counts["completed"] != spec.search.num_trials:
        raise RuntimeError(f"harness run finished {outcome.counts} trials, expected {spec.search.num_trials}")
    parts.append(timer.seconds)
    return lap


def bare_run(spec: Any, storage: Path, harness_settings: bool) -> Lap:
    """A plain Tuner over the same space, searcher and scheduler; with `harness_settings` it
    also reuses workers and names trial folders as the harness does, otherwise Ray's defaults."""
    from ray import tune

    from harness.run.tuner import trial_dirname
    from harness.search import SCHEDULERS, SEARCHERS, resolve_strategy
    from harness.search.space import to_tune_space

    searcher_name, scheduler_name = resolve_strategy(spec)
    searcher = SEARCHERS.get(searcher_name)
    extra: dict[str, Any] = {"reuse_actors": True, "trial_dirname_creator": trial_dirname} if harness_settings else {}
    saved = {key: os.environ.pop(key) for key in HARNESS_ENV if key in os.environ}
    try:
        watch = Stopwatch()
        tuner = tune.Tuner(
            trainable(spec),
            param_space=to_tune_space(spec.search.space, as_grid=searcher.grid),
            tune_config=tune.TuneConfig(
                metric=spec.search.metric,
                mode=spec.search.mode,
                search_alg=searcher.build(spec),
                scheduler=SCHEDULERS.get(scheduler_name)(spec),
                num_samples=spec.search.num_trials,
                **extra,
            ),
            run_config=tune.RunConfig(name=f"bare-{time.time_ns()}", storage_path=str(storage), verbose=0),
        )
        results = tuner.fit()
        lap = watch.lap()
    finally:
        os.environ.update(saved)
    if results.num_errors or len(results) != spec.search.num_trials:
        raise RuntimeError(f"bare run: {len(results)} trials, {results.num_errors} errors")
    return lap


def test_evaluation_seconds(spec: Any, repeats: int) -> float:
    """Median seconds of `finalize`'s one test-split evaluation, on a real quickstart checkpoint."""
    import lightning as L

    from harness.trial.ray_adapter import CHECKPOINT_FILE
    from harness.trial.training import evaluate_checkpoint, fit_trial

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CHECKPOINT_FILE

        def save(metrics: dict[str, Any], trainer: L.Trainer) -> None:
            trainer.save_checkpoint(path)

        real = spec.with_values({"train.max_epochs": 2})
        fit_trial(real, save)
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            evaluate_checkpoint(real, path)
            times.append(time.perf_counter() - start)
    return median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 trials, 1 repeat: a smoke run")
    parser.add_argument("--trials", type=int, default=None, help="trials per run (default 24)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs each trivial trial reports (default 5)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per variant (default 3)")
    parser.add_argument(
        "--no-wal", action="store_true", help="keep the store in SQLite's rollback-journal mode (what WAL buys)"
    )
    args = parser.parse_args()
    trials = args.trials or (6 if args.quick else 24)
    repeats = args.repeats or (1 if args.quick else 3)

    home = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    os.environ["HARNESS_HOME"] = str(home)  # a throwaway local SQLite store and Ray folder
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if args.no_wal:
        import harness.tracking.store

        harness.tracking.store.use_wal = lambda path: False  # the store is created by this process

    from harness.run.cluster import init_ray
    from harness.study import load_spec

    overrides = {"search.strategy": "random", "search.num_trials": trials, "train.max_epochs": args.epochs}
    spec = load_spec(QUICKSTART, overrides)
    print(
        f"# harness overhead: {trials} trivial trials x {args.epochs} epochs, strategy random (FIFO), "
        f"{repeats} repeats after one warm-up round" + (", SQLite rollback journal (--no-wal)" if args.no_wal else ""),
        flush=True,
    )
    start = time.perf_counter()
    init_ray(None)  # once, shared by every run, not timed
    print(f"  ray started in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    parts: list[dict[str, float]] = []
    in_loop: list[dict[str, float]] = []
    variants = {
        "harness (`run_study`)": lambda: harness_run(spec, parts),
        "harness, MLflow writes inside Tune's loop (before)": lambda: harness_run(spec, in_loop, in_loop=True),
        "bare `tune.Tuner`, harness's Tune settings": lambda: bare_run(spec, home / "bare", harness_settings=True),
        "bare `tune.Tuner`, Ray defaults": lambda: bare_run(spec, home / "bare", harness_settings=False),
    }
    # The warm-up round creates the SQLite store (schema migrations) and imports what each side needs.
    # Trials run in Ray's worker processes, so the driver's CPU time says little: wall time.
    times = {name: [lap.wall for lap in laps] for name, laps in interleaved(variants, repeats, warmup=1).items()}
    parts, in_loop = parts[1:], in_loop[1:]
    evaluation = test_evaluation_seconds(spec, 3)

    import ray

    ray.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    print(f"\n{machine()}\n")
    base = median(times["bare `tune.Tuner`, harness's Tune settings"])
    rows = [
        [name, f"{median(t) / trials:.3f}", f"{median(t):.2f}", spread(t), f"{median(t) / base:.2f}x"]
        for name, t in times.items()
    ]
    headers = ["variant", "s / trial", "s / run (median)", "s / run (min-max)", "vs bare, same settings"]
    print(markdown_table(headers, rows))
    harness = median(times["harness (`run_study`)"])
    keys = ("parent run", "mlflow", "progress", "finalize", "flush")
    part = {key: median([p.get(key, 0.0) for p in parts]) for key in keys}
    before = median([p.get("mlflow", 0.0) for p in in_loop])
    rest = harness - base - sum(part.values())
    rows = [
        ["parent run set-up (`start_study_run`)", f"{part['parent run']:.2f}", "once per study"],
        [
            "MLflow child runs, queued in Tune's loop (`MlflowTrialCallback`)",
            f"{part['mlflow']:.2f}",
            f"{part['mlflow'] / trials * 1000:.1f} ms per trial (made in the loop: "
            f"{before / trials * 1000:.0f} ms per trial, the variant above)",
        ],
        [
            "waiting for the writer process after the search (`flush`)",
            f"{part['flush']:.2f}",
            "the writes it had not made yet when the last trial ended",
        ],
        [
            "progress view (`ProgressCallback`)",
            f"{part['progress']:.2f}",
            f"{part['progress'] / trials * 1000:.1f} ms per trial",
        ],
        ["`finalize` (reconcile, top trials, report)", f"{part['finalize']:.2f}", "once per study"],
        [
            "the rest (state file, tags, experiment-state saves every 2 s)",
            f"{rest:.2f}",
            "difference of the totals",
        ],
        ["total over the bare Tuner", f"{harness - base:.2f}", f"{(harness - base) / trials * 1000:.0f} ms per trial"],
    ]
    print(f"\nWhere the harness's extra time goes (medians of the timed runs, seconds per run of {trials} trials):\n")
    print(markdown_table(["part", "s / run", "note"], rows))
    print(
        f"\nNot in the runs above: the test-split evaluation of the best trial in `finalize`, once per study, "
        f"{evaluation * 1000:.0f} ms on a quickstart checkpoint (the trivial trials leave no checkpoint)."
    )


if __name__ == "__main__":
    main()
