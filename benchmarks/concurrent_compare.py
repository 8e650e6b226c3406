"""Concurrent comparisons: the same comparison run one execution at a time and several at once.

    python benchmarks/concurrent_compare.py [--quick] [--seeds N] [--trials N] [--address HOST:PORT]

Six strategies x five seeds on Hartmann-6 (`studies/hartmann6.yaml`: one trial at a time per
execution, so each execution keeps one CPU busy), each variant a `harness compare` subprocess
on a fresh local store, one after the other: `parallel: 1` (the executions in the comparison's
own process, one after another) and `parallel: auto` (as many execution processes as the
cluster's CPUs keep busy). The ideal for a run is the larger of the sequential time divided by
the executions that can run at once and the CPU time it used divided by the machine's CPUs (no
run is faster than its work spread over every core); the table says how close each gets, and
checks that both report the same final best per strategy.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, markdown_table

STRATEGIES = ["random", "tpe", "gp", "cmaes", "asha", "tpe+asha"]


def comparison(folder: Path, name: str, seeds: int, trials: int, parallel: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nstudy: {ROOT / 'studies' / 'hartmann6.yaml'}\nstrategies: [{', '.join(STRATEGIES)}]\n"
        f"seeds: {seeds}\nbudget: {{trials: {trials}}}\nparallel: {parallel}\n"
    )
    return path


def run(path: Path, home: Path, address: str | None) -> tuple[float, float, dict[str, str], int]:
    """Wall and CPU seconds (the command and every process it waited for: Ray's, the execution
    drivers, the MLflow writers) of one `harness compare`, its final best by strategy, and how
    many executions ran at once."""
    env = {**os.environ, "HARNESS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "harness.cli", "compare", str(path), "--quiet"]
    if address:
        command += ["--address", address]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise RuntimeError(f"harness compare failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    at_once = 1
    for line in out.stdout.splitlines():
        if line.endswith(" at once"):
            at_once = int(line.rsplit(",", 1)[1].split()[0])
    (summary,) = (home / "compare").glob("*/report/summary.csv")
    with summary.open() as handle:
        best = {row["strategy"]: f"{float(row['final_best']):.6f}" for row in csv.DictReader(handle)}
    return wall, cpu, best, at_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 5 trials: a smoke run")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per strategy (default 5)")
    parser.add_argument("--trials", type=int, default=None, help="trials per execution (default 20)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: a local one per run)")
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    trials = args.trials or (5 if args.quick else 20)
    executions = len(STRATEGIES) * seeds
    print(f"# {len(STRATEGIES)} strategies x {seeds} seeds on Hartmann-6, {trials} trials each "
          f"({executions} executions)", flush=True)  # fmt: skip
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="harness-concurrent-") as tmp:
        for variant, parallel in (("one at a time (`parallel: 1`)", "1"), ("concurrent (`parallel: auto`)", "auto")):
            home = Path(tmp) / parallel
            wall, cpu, best, at_once = run(
                comparison(Path(tmp), f"cc-{parallel}", seeds, trials, parallel), home, args.address
            )
            results[variant] = (wall, cpu, best, at_once)
            print(f"  {variant}: {wall:.1f} s, {at_once} at once", file=sys.stderr, flush=True)
    sequential = results["one at a time (`parallel: 1`)"][0]
    cpus = os.cpu_count() or 1
    for variant, (wall, cpu, _best, at_once) in results.items():
        ideal = max(sequential / at_once, cpu / cpus)  # no faster than the work over the CPUs
        rows.append([variant, str(at_once), f"{wall:.1f}", f"{cpu:.0f}", f"{cpu / wall:.2f}",
                     f"{sequential / wall:.2f}x", f"{ideal:.1f}", f"{ideal / wall:.0%}"])  # fmt: skip
    same = len({tuple(sorted(best.items())) for _, _, best, _ in results.values()}) == 1
    print(f"\n{machine()}\n")
    headers = ["variant", "at once", "wall s", "CPU s", "CPUs busy", "speed-up", "ideal s", "of ideal"]
    print(markdown_table(headers, rows))
    print(f"\nfinal best per strategy equal in both runs: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
