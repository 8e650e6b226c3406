"""GPU: what fractional `gpus_per_trial` buys, and one trial on the GPU against the CPU.

    python benchmarks/gpu_packing.py [--trials 8] [--epochs 60]

Runs the quickstart model as a small random-search study twice on the local Ray, at
`gpus_per_trial: 1` (one trial per GPU at a time) and at `0.25` (four trials packed on one
GPU), and times each study; then trains one trial in this process on CUDA and on the CPU.
Needs a CUDA GPU; prints why and exits 0 without one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import ROOT, machine, markdown_table


def study_seconds(spec: object) -> float:
    from harness.run.execute import run_study

    start = time.perf_counter()
    outcome = run_study(spec, progress=False)  # type: ignore[arg-type]
    assert outcome.counts["failed"] == 0, outcome.counts
    return time.perf_counter() - start


def epochs_per_second(spec: object, accelerator: str) -> float:
    from harness.trial.training import fit_trial

    start = time.perf_counter()
    fit_trial(spec, lambda metrics, trainer: None, accelerator=accelerator)  # type: ignore[arg-type]
    return spec.train.max_epochs / (time.perf_counter() - start)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure")
        return
    os.environ["HARNESS_HOME"] = tempfile.mkdtemp(prefix="gpu-bench-")
    from harness.study import load_spec

    def spec(gpus: float) -> object:
        return load_spec(
            ROOT / "studies" / "quickstart.yaml",
            {
                "search.strategy": "random",
                "search.num_trials": args.trials,
                "train.max_epochs": args.epochs,
                "resources.gpus_per_trial": gpus,
                "resources.cpus_per_trial": 1,
            },
        )

    whole, packed = study_seconds(spec(1)), study_seconds(spec(0.25))
    single = spec(0)
    gpu, cpu = epochs_per_second(single, "gpu"), epochs_per_second(single, "cpu")
    print(machine(), "|", torch.cuda.get_device_name(0))
    print(
        markdown_table(
            ["measure", "value"],
            [
                [f"study of {args.trials} trials x {args.epochs} epochs, gpus_per_trial 1", f"{whole:.1f} s"],
                ["the same, gpus_per_trial 0.25", f"{packed:.1f} s ({whole / packed:.2f}x faster)"],
                ["one trial in process, CUDA", f"{gpu:.1f} epochs/s"],
                ["one trial in process, CPU (1 thread)", f"{cpu:.1f} epochs/s"],
            ],
        )
    )


if __name__ == "__main__":
    main()
