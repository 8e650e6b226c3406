"""Throughput at the top end: results per second the harness sustains, and the cost per trial
as a study grows from 100 to 2,000 trials (it must stay flat: no work per result that grows
with the study).

    python benchmarks/throughput.py [--quick] [--sizes 100,500,2000] [--epochs N]

Each size runs the same trivial trials (`harness_overhead.trivial_trainable`: a few epochs of
cheap numbers, no torch) through `run_study` and through a bare `tune.Tuner` with the harness's
Tune settings, side by side on one local Ray, and then counts what reached MLflow: one child
run per trial and one metric point per epoch, nothing missing. For the harness it also reports
the CPU time per trial of the driver and of its MLflow writer process (Linux: from /proc), and
the seconds its progress view and `finalize` took. Ray Tune's own published figure
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


def cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU seconds of a process (this one by default); None where /proc is missing."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    from harness.tracking import writer

    writer_pid = writer._WRITER._process.pid if writer._WRITER and writer._WRITER._process else None
    rows = []
    for size in sizes:
        spec = load_spec(QUICKSTART, {"search.strategy": "random", "search.num_trials": size,
                                      "train.max_epochs": args.epochs, "name": f"throughput-{size}"})  # fmt: skip
        parts: list[dict[str, float]] = []
        driver_cpu, writer_cpu = cpu_seconds(), cpu_seconds(writer_pid) if writer_pid else None
        with contextlib.redirect_stdout(io.StringIO()):
            harness = harness_run(spec, parts).wall
        driver_cpu = cpu_seconds() - driver_cpu
        writer_end = cpu_seconds(writer_pid) if writer_pid else None
        writer_ms = "-" if writer_cpu is None or writer_end is None else f"{(writer_end - writer_cpu) / size * 1000:.1f}"
        bare = bare_run(spec, home / "bare", harness_settings=True).wall
        runs, points = mlflow_counts(default_tracking_uri(), spec.name, "val/loss")
        results = size * args.epochs
        print(f"  {size} trials: harness {harness:.1f} s, bare {bare:.1f} s; MLflow {runs} runs, {points} points",
              file=sys.stderr, flush=True)  # fmt: skip
        rows.append([
            str(size), f"{results / harness:.0f}", f"{harness / size * 1000:.0f}", f"{results / bare:.0f}",
            f"{bare / size * 1000:.0f}", f"{harness / bare:.2f}x", f"{runs}/{size}", f"{points}/{results}",
            f"{driver_cpu / size * 1000:.1f}", writer_ms, f"{parts[0].get('progress', 0.0):.2f}",
            f"{parts[0].get('finalize', 0.0):.2f}",
        ])  # fmt: skip
    import ray

    ray.shutdown()
    shutil.rmtree(home, ignore_errors=True)
    print(f"\n{machine()}\n")
    headers = ["trials", "harness results/s", "harness ms / trial", "bare results/s", "bare ms / trial",
               "harness vs bare", "MLflow runs", "MLflow points", "driver CPU ms / trial",
               "writer CPU ms / trial", "progress view s", "finalize s"]  # fmt: skip
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - start:.0f} s in all)")
