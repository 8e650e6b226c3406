"""Compression acceptance measurements on an MLP 784-300-100-10 on MNIST-5k, through the code a
compression trial runs (`harness.trial.compression.fit_compression`), without Ray.

    python benchmarks/compression.py [--quick] [--seeds N] [--only int8,prune,structured,lowbit,lottery]

Every row is one student compressed from a teacher trained by `fit_teacher` (the study's own
train spec), scored as its shipped artifact (ONNX Runtime for float and INT8, packed weights
for 4 and 2 bits) on the validation split; sizes are the artifact's bytes; latencies are
medians over repeats, teacher and student timed in the same rounds of the same process, so
the speedups are ratios on one machine at one moment. One thread per session.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.study import spec_from_dict  # noqa: E402
from harness.trial.compression import Teacher, fit_compression, fit_teacher  # noqa: E402

BASE = {
    "name": "compression-benchmark",
    "data": {"dataset": "mnist", "split": {"kind": "stratified", "val": 0.15, "test": 0.15}, "preprocessing": ["standardize"]},
    "model": {"kind": "mlp", "hidden": [300, 100]},
    "train": {"max_epochs": 15, "batch_size": 64, "optimizer": {"name": "adamw", "lr": 1.0e-3}},
    "compress": {"steps": [{"kind": "quantize"}]},
}


def spec_for(steps: list[dict[str, Any]], seed: int, epochs: int) -> Any:
    raw = {**BASE, "seed": seed, "compress": {"steps": steps}}
    raw["train"] = {**BASE["train"], "max_epochs": epochs}
    return spec_from_dict(raw)


def compressed(teacher: Teacher, steps: list[dict[str, Any]], seed: int, epochs: int) -> dict[str, float]:
    return fit_compression(spec_for(steps, seed, epochs), lambda metrics, folder: None, teacher=teacher)


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    if not rows:
        return
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |")


def chain_table(teacher: Teacher, epochs: int, ft: int) -> None:
    """Distill -> prune -> quantize, stage by stage: what each stage adds to the size ratio and
    costs in test accuracy (each row is the chain up to that stage, run from the start)."""
    import tempfile

    from harness.trial.build import datamodule
    from harness.trial.compression import evaluate_artifact, score_net

    distill = {"kind": "distill", "student": {"kind": "mlp", "hidden": [100]}, "temperature": 4.0, "alpha": 0.7, "epochs": epochs}
    prune = {"kind": "prune", "scope": "global", "amount": 0.9, "rounds": 3, "finetune_epochs": ft}
    stages = [
        ("distill into 784-100-10", [distill]),
        ("+ prune 90% (3 rounds)", [distill, prune]),
        ("+ quantize INT8 (PTQ, ONNX Runtime)", [distill, prune, {"kind": "quantize", "bits": 8}]),
        ("+ quantize 4 bits (QAT, packed)", [distill, prune, {"kind": "quantize", "method": "qat", "bits": 4, "epochs": ft, "lr": 1e-4}]),
    ]
    spec = spec_for([distill], 0, epochs)
    teacher_test = score_net(teacher.net, datamodule(spec), "test")["test/acc"]
    rows = []
    for label, steps in stages:
        with tempfile.TemporaryDirectory() as tmp:
            stage_spec = spec_for(steps, 0, epochs)
            m = fit_compression(stage_spec, lambda metrics, folder: None, teacher=teacher, folder=Path(tmp))
            test = evaluate_artifact(stage_spec, Path(tmp))["test/acc"]
        rows.append([label, m["size/bytes"], m["size/ratio"], m["size/gzip_ratio"], teacher_test, test,
                     100 * (teacher_test - test), m.get("latency/speedup_batch", "-")])
    table("Distill -> prune -> quantize (teacher 784-300-100-10 fp32 ONNX; test split)",
          ["chain", "bytes", "smaller (x)", "smaller gzip (x)", "teacher test acc", "test acc", "drop (points)",
           "faster b=256 (x)"], rows)


def distill_table(teachers: dict[int, Teacher], epochs: int, width: int = 30, alpha: float = 0.7) -> None:
    """A 784-`width`-10 student distilled at each temperature against the same student on labels
    alone (alpha 0), paired by seed (the teacher and the student's initialization share it);
    then the T^2 factor switched off at the best temperature."""
    from scipy.stats import ttest_rel, wilcoxon

    student = {"kind": "mlp", "hidden": [width]}

    def accuracy(seed: int, **step: Any) -> float:
        steps = [{"kind": "distill", "student": student, "epochs": epochs, **step}]
        return compressed(teachers[seed], steps, seed, epochs)["val/acc"]

    seeds = sorted(teachers)
    labels = [accuracy(seed, alpha=0.0) for seed in seeds]
    rows, by_t = [], {}
    for temperature in (1.0, 2.0, 4.0, 8.0):
        accs = by_t[temperature] = [accuracy(seed, temperature=temperature, alpha=alpha) for seed in seeds]
        diffs = [a - b for a, b in zip(accs, labels)]
        p_t = ttest_rel(accs, labels).pvalue if len(seeds) > 1 else float("nan")
        p_w = wilcoxon(accs, labels).pvalue if len(seeds) > 5 else float("nan")
        rows.append([f"T={temperature:g}, alpha {alpha:g}", len(seeds), statistics.mean(labels), statistics.mean(accs),
                     100 * statistics.mean(diffs), f"{sum(d > 0 for d in diffs)}/{len(seeds)}", p_t, p_w])
    best = max(by_t, key=lambda t: statistics.mean(by_t[t]))
    plain = [accuracy(seed, temperature=best, alpha=alpha, t_squared=False) for seed in seeds]
    diffs = [a - b for a, b in zip(plain, labels)]
    rows.append([f"T={best:g}, alpha {alpha:g}, no T^2", len(seeds), statistics.mean(labels), statistics.mean(plain),
                 100 * statistics.mean(diffs), f"{sum(d > 0 for d in diffs)}/{len(seeds)}",
                 ttest_rel(plain, labels).pvalue if len(seeds) > 1 else float("nan"), float("nan")])
    table(f"Distillation into 784-{width}-10 ({epochs} epochs, alpha {alpha:g}) vs the same student on labels alone, paired by seed",
          ["student", "seeds", "labels-only acc", "distilled acc", "gain (points)", "seeds gaining",
           "paired t p", "Wilcoxon p (6+ seeds)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 teacher epochs, 1 seed, fewer rows: a smoke run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="int8,prune,structured,lowbit,lottery,chain,distill",
                        help="comma-separated tables to measure")
    parser.add_argument("--distill-seeds", type=int, default=5)
    parser.add_argument("--student", type=int, default=30, help="hidden width of the distilled student")
    parser.add_argument("--alpha", type=float, default=0.7, help="weight of the soft targets")
    parser.add_argument("--distill-epochs", type=int, help="student epochs (default: the teacher's)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    epochs = 2 if args.quick else 15
    seeds = list(range(1 if args.quick else args.seeds))
    ft = 1 if args.quick else 3
    started = time.perf_counter()
    teachers = {seed: fit_teacher(spec_for([{"kind": "quantize"}], seed, epochs))[0] for seed in seeds}
    overheads: list[float] = []

    def run(steps: list[dict[str, Any]], seed: int = 0) -> dict[str, float]:
        metrics = compressed(teachers[seed], steps, seed, epochs)
        overheads.append(metrics["overhead/measure_s"])
        return metrics

    rows = []
    for label, step in [] if "int8" not in only else [
        ("dynamic (weights), per-channel", {"activations": False, "granularity": "per_channel"}),
        ("dynamic (weights), per-tensor", {"activations": False, "granularity": "per_tensor"}),
        ("static (weights + activations), per-channel", {"activations": True, "granularity": "per_channel"}),
        ("static (weights + activations), per-tensor", {"activations": True, "granularity": "per_tensor"}),
    ]:
        m = run([{"kind": "quantize", "method": "ptq", "bits": 8, **step}])
        rows.append([label, m["teacher/val/acc"], m["val/acc"], 100 * (m["teacher/val/acc"] - m["val/acc"]),
                     m["size/ratio"], m["latency/speedup"], m["latency/speedup_batch"]])
    table("INT8 post-training quantization (ONNX Runtime), symmetric, 512 calibration samples",
          ["variant", "teacher acc", "INT8 acc", "drop (points)", "smaller (x)", "faster b=1 (x)", "faster b=256 (x)"], rows)

    rows = []
    for amount, rounds in [(0.9, 1), (0.9, 3), (0.95, 3), (0.98, 3)][: 0 if "prune" not in only else 2 if args.quick else 4]:
        m = run([{"kind": "prune", "scope": "global", "amount": amount, "rounds": rounds, "finetune_epochs": ft}])
        rows.append([amount, rounds, ft, m["sparsity"], m["teacher/val/acc"], m["val/acc"],
                     100 * (m["teacher/val/acc"] - m["val/acc"]), m["size/ratio"], m["size/gzip_ratio"]])
    table("Global magnitude pruning with fine-tuning after each round",
          ["amount", "rounds", "fine-tune epochs/round", "sparsity", "teacher acc", "pruned acc", "drop (points)",
           "smaller (x)", "smaller gzip (x)"], rows)

    rows = []
    for amount in [0.25, 0.5, 0.75, 0.9][: 0 if "structured" not in only else 2 if args.quick else 4]:
        m = run([{"kind": "prune", "structure": "structured", "scope": "layer", "amount": amount, "finetune_epochs": ft}])
        rows.append([amount, m["params/total"], m["val/acc"], m["latency/ms_batch"], m["latency/teacher_ms_batch"],
                     m["latency/speedup_batch"], m["latency/speedup"]])
    table("Structured pruning (whole hidden neurons), one round + fine-tuning: latency falls with width",
          ["amount", "parameters", "acc", "ms b=256", "teacher ms b=256", "faster b=256 (x)", "faster b=1 (x)"], rows)

    rows = []
    low_bits = [(4, "per_tensor"), (4, "per_channel"), (2, "per_tensor"), (2, "per_channel")]
    for bits, granularity in low_bits if "lowbit" in only else []:
        ptq, qat = [], []
        for seed in seeds:
            step = {"kind": "quantize", "bits": bits, "granularity": granularity}
            ptq.append(run([{**step, "method": "ptq"}], seed)["val/acc"])
            qat.append(run([{**step, "method": "qat", "epochs": ft, "lr": 1e-4}], seed)["val/acc"])
        rows.append([bits, granularity, len(seeds), statistics.mean(ptq), statistics.mean(qat),
                     100 * statistics.mean(q - p for p, q in zip(ptq, qat)), f"{sum(q > p for p, q in zip(ptq, qat))}/{len(seeds)}"])
    table("Low-bit weights: QAT recovers what PTQ loses (symmetric; packed artifact; teacher as above)",
          ["bits", "scales", "seeds", "PTQ acc (mean)", "QAT acc (mean)", "QAT - PTQ (points)", "seeds QAT > PTQ"], rows)

    rows = []
    retrain = 2 if args.quick else epochs
    for amount in (0.8, 0.9) if "lottery" in only else ():
        dense, ticket, control = [], [], []
        for seed in seeds:
            steps = {"kind": "prune", "scope": "global", "amount": amount, "rounds": 2, "finetune_epochs": retrain}
            dense.append(run([{"kind": "prune", "amount": 0.0}], seed)["teacher/val/acc"])
            ticket.append(run([{**steps, "ticket": "rewind"}], seed)["val/acc"])
            control.append(run([{**steps, "ticket": "random"}], seed)["val/acc"])
        rows.append([amount, len(seeds), statistics.mean(dense), statistics.mean(ticket), statistics.mean(control),
                     100 * statistics.mean(d - t for d, t in zip(dense, ticket)),
                     100 * statistics.mean(t - r for t, r in zip(ticket, control))])
    table(f"Lottery ticket: 2 rounds of global magnitude pruning, {retrain} epochs of retraining per round",
          ["sparsity", "seeds", "dense acc", "rewound ticket acc", "random reinit acc", "dense - ticket (points)",
           "ticket - random (points)"], rows)

    if "chain" in only:
        chain_table(teachers[0], epochs, ft)
    if "distill" in only:
        distill_seeds = list(range(1 if args.quick else args.distill_seeds))
        for seed in distill_seeds:
            if seed not in teachers:
                teachers[seed] = fit_teacher(spec_for([{"kind": "quantize"}], seed, epochs))[0]
        distill_table({seed: teachers[seed] for seed in distill_seeds}, args.distill_epochs or epochs, args.student, args.alpha)

    if overheads:
        print(f"\nmeasurement overhead per trial (export, quantize, size, latency): median "
              f"{statistics.median(overheads):.2f} s over {len(overheads)} trials; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
