"""Throughput at the top end: results per second the harness sustains, and the cost per trial
as a study grows from 100 to 2,000 trials (it must stay flat: no work per result that grows
with the study).

    python benchmarks/throughput.py [--quick] [--sizes 100,500,2000] [--epochs N]

Each size runs the same trivial trials (`harness_overhead.trivial_trainable`: a few epochs of
cheap numbers, no torch) through `run_study` and through a bare `tune.Tuner` with the harness's
Tune settings, side by side on one local Ray, and then counts what reached MLflow: one child
run per trial and one metric point per epoch, nothing missing. Ray Tune's own published figure
for one node with logging is about 1,000 results per second on a much larger machine; this
one has 2 cores.
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
from pathlib import Path

from common import machine, markdown_table
from harness_overhead import QUICKSTART, bare_run, harness_run


def mlflow_counts(tracking_uri: str, experiment: str, metric: str) -> tuple[int, int]:
    """(child runs, metric points of `metric`) of the latest execution of `experiment`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`harness.kind` = 'study'", order_by=["start_time DESC"],
                                   max_results=1)  # fmt: skip
    children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                  max_results=50000)  # fmt: skip
    points = sum(len(client.get_metric_history(run.info.run_id, metric)) for run in children)
    return len(children), points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 20 and 50: a smoke run")
    parser.add_argument("--sizes", default=None, help="trials per study, comma-separated (default 100,500,2000)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (results) each trial reports (default 5)")
    args = parser.parse_args()
    sizes = [int(n) for n in (args.sizes or ("20,50" if args.quick else "100,500,2000")).split(",")]

    home = Path(tempfile.mkdtemp(prefix="harness-throughput-"))
    os.environ["HARNESS_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from harness.paths import default_tracking_uri
    from harness.run.cluster import init_ray
    from harness.study import load_spec

    init_ray(None)
    print(f"# {', '.join(map(str, sizes))} trivial trials x {args.epochs} epochs, strategy random (FIFO)", flush=True)
    # Untimed: creates the store and starts the MLflow writer process, which every size then shares.
    warmup = load_spec(QUICKSTART, {"search.strategy": "random", "search.num_trials": 10,
                                    "train.max_epochs": args.epochs, "name": "throughput-warmup"})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        harness_run(warmup, [])
    bare_run(warmup, home / "bare", harness_settings=True)
    rows = []
    for size in sizes:
        spec = load_spec(QUICKSTART, {"search.strategy": "random", "search.num_trials": size,
                                      "train.max_epochs": args.epochs, "name": f"throughput-{size}"})  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            harness = harness_run(spec, []).wall
        bare = bare_run(spec, home / "bare", harness_settings=True).wall
        runs, points = mlflow_counts(default_tracking_uri(), spec.name, "val/loss")
        results = size * args.epochs
        print(f"  {size} trials: harness {harness:.1f} s, bare {bare:.1f} s; MLflow {runs} runs, {points} points",
              file=sys.stderr, flush=True)  # fmt: skip
        rows.append([
            str(size), f"{results / harness:.0f}", f"{harness / size * 1000:.0f}", f"{results / bare:.0f}",
            f"{bare / size * 1000:.0f}", f"{harness / bare:.2f}x", f"{runs}/{size}", f"{points}/{results}",
        ])  # fmt: skip
    import ray

    ray.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    print(f"\n{machine()}\n")
    headers = ["trials", "harness results/s", "harness ms / trial", "bare results/s", "bare ms / trial",
               "harness vs bare", "MLflow runs", "MLflow points"]  # fmt: skip
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - start:.0f} s in all)")
