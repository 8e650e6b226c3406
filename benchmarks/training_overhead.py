"""Training overhead: a quickstart trial's optimizer steps per second against a hand-written
PyTorch loop on the same model, data tensors, batch size, optimizer and LR schedule.

    python benchmarks/training_overhead.py [--quick] [--epochs N] [--repeats N] [--no-ablation] [--ray]

Everything runs in one process on one thread, the variants interleaved and their order rotated
every repeat. Every variant trains for the same epochs, validates after each one and computes
the per-epoch metrics a trial reports (train and val loss and accuracy). steps/s is optimizer
steps divided by the CPU time of the whole fit (one thread, so CPU time is the work done; on
a shared machine wall time also counts the waits for a core, which vary run to run).

- Main comparison: each variant starts from the loaded dataset, as a trial does: split and
  preprocessing (the same `ArrayDataModule.setup`, giving the same tensors), model, optimizer,
  fit. Fits of 2 epochs split each variant's time into a fixed part and a per-epoch part.
- Ablation: from plain Lightning to the harness's trial module one change at a time, every
  variant given the prepared tensors and the same Trainer settings.
- Checkpoints: the trial with the Ray trial's own sink (`checkpointing_sink`), writing a
  checkpoint every epoch (as before the cadence) or at the default cadence, each one copied
  into a storage folder as Ray Tune persists it.
- `--ray`: the same trial run by Ray Tune as `harness run` runs it, per-epoch wall time against
  the raw loop's (Ray's report round trip and its copy of each checkpoint included).
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from common import ROOT, Lap, Stopwatch, interleaved, machine, markdown_table, median, spread
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from harness.study import StudySpec, load_spec
from harness.trial.checkpoints import CheckpointCadence, cadence_for
from harness.trial.ray_adapter import checkpointing_sink
from harness.trial.training import fit_trial
from lightning_modules.data import ArrayDataModule
from lightning_modules.data.datamodule import TensorBatches
from lightning_modules.models import SupervisedModule, build_network
from lightning_modules.optim import build_optimizer, build_scheduler
from lightning_modules.training import EpochReporter, epoch_seed, make_trainer, quiet_lightning

QUICKSTART = ROOT / "studies" / "quickstart.yaml"
Metrics = dict[str, float]


def datamodule(spec: StudySpec, steps_per_batch: int | None = 1) -> ArrayDataModule:
    """The trial's split and preprocessing (the dataset itself is loaded once per process)."""
    dm = ArrayDataModule(
        dataset=spec.data.dataset,
        split=spec.data.split,
        preprocessing=spec.data.preprocessing,
        batch_size=spec.train.batch_size,
        seed=spec.seed,
        steps_per_batch=steps_per_batch,
    )
    dm.setup()
    return dm


@dataclass(frozen=True)
class Prepared:
    """The train and val tensors of a trial's split, and what the network builder needs."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    shape: Any

    def network(self, spec: StudySpec) -> torch.nn.Module:
        return build_network(spec.model, self.shape)


def prepared(spec: StudySpec) -> Prepared:
    dm = datamodule(spec)
    return Prepared(dm.split_tensors("train"), dm.split_tensors("val"), dm.shape)


def optimizer_and_schedule(spec: StudySpec, params: Any, steps_per_epoch: int) -> tuple[Any, Any]:
    optimizer = build_optimizer(params, spec.train.optimizer.for_batch_size(spec.train.batch_size))
    total = spec.train.max_epochs * steps_per_epoch
    return optimizer, build_scheduler(optimizer, spec.train.schedule, total, steps_per_epoch)


# --- the baseline: a hand-written loop ----------------------------------------------------


def raw_loop(spec: StudySpec, out: Metrics, data: Prepared | None = None) -> Lap:
    """Plain PyTorch: slice a permuted tensor per epoch, step, validate after every epoch.

    Seeded like the harness trial (the same initial weights and shuffles), so its final
    metrics must equal the trial's: the two do the same arithmetic. Without `data` it prepares
    the tensors itself, inside the timing, as the trial does.
    """
    torch.manual_seed(spec.seed)
    watch = Stopwatch()
    data = data or prepared(spec)
    (x, y), (xv, yv) = data.train, data.val
    n, batch = len(x), spec.train.batch_size
    net = data.network(spec)
    optimizer, scheduler = optimizer_and_schedule(spec, net.parameters(), math.ceil(n / batch))
    for epoch in range(spec.train.max_epochs):
        torch.manual_seed(epoch_seed(spec.seed, epoch))
        net.train()
        order = torch.randperm(n)
        xs, ys = x[order], y[order]
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for i in range(0, n, batch):
            xb, yb = xs[i : i + batch], ys[i : i + batch]
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(-1) == yb).sum()
        net.eval()
        with torch.inference_mode():
            logits = [net(xv[i : i + batch]) for i in range(0, len(xv), batch)]
            val = torch.cat(logits)
            out["val/loss"] = float(F.cross_entropy(val, yv))
            out["val/acc"] = float((val.argmax(-1) == yv).float().mean())
        out["train/loss"], out["train/acc"] = float(loss_sum / n), float(correct / n)
    return watch.lap()


# --- the harness trial ------------------------------------------------------------------


def harness_trial(spec: StudySpec, out: Metrics, cadence: CheckpointCadence | None = None) -> Lap:
    """`fit_trial` as a Ray trial runs it. Without `cadence` the sink only keeps the last
    metrics; with it, the sink is the Ray trial's own (`checkpointing_sink`): when the cadence
    says so it writes the checkpoint into a fresh temporary folder, and the report copies that
    folder into a storage folder as Ray Tune does when it persists a reported checkpoint."""
    if cadence is None:

        def sink(metrics: dict[str, Any], trainer: L.Trainer) -> None:
            out.update(metrics)

        watch = Stopwatch()
        fit_trial(spec, sink)
        return watch.lap()

    with tempfile.TemporaryDirectory() as storage:
        written: list[Path] = []

        def persist(metrics: dict[str, Any], folder: Path | None) -> None:
            out.update(metrics)
            if folder is not None:
                written.append(Path(storage) / f"checkpoint_{len(written):06d}")
                shutil.copytree(folder, written[-1])

        watch = Stopwatch()
        fit_trial(spec, checkpointing_sink(cadence, persist, {}))
        lap = watch.lap()
        out["checkpoints"] = len(written)
    return lap


# --- plain Lightning and the ablation steps -------------------------------------------------


class PlainModule(L.LightningModule):
    """A straightforward LightningModule: automatic optimization, per-step LR schedule. With
    `log_each_step` it logs loss and accuracy through `self.log` on every step, as most
    examples do; without, it sums them in tensors read once per epoch, as the harness does."""

    def __init__(self, spec: StudySpec, net: torch.nn.Module, steps_per_epoch: int, log_each_step: bool) -> None:
        super().__init__()
        self.spec, self.net, self.steps_per_epoch, self.log_each_step = spec, net, steps_per_epoch, log_each_step
        self.sums: dict[str, list[torch.Tensor]] = {}

    def _step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        if self.log_each_step:
            self.log(f"{split}/loss", loss)
            self.log(f"{split}/acc", (logits.argmax(-1) == y).float().mean())
        else:
            add = [loss.detach() * len(y), (logits.detach().argmax(-1) == y).sum()]
            sums = self.sums.get(split)
            self.sums[split] = add if sums is None else [a + b for a, b in zip(sums, add)]
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("val", batch)

    def on_train_epoch_start(self) -> None:
        self.sums.clear()

    def configure_optimizers(self) -> dict:
        optimizer, scheduler = optimizer_and_schedule(self.spec, self.parameters(), self.steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class WrappedSteps(SupervisedModule):
    """The harness module stepping through Lightning's `manual_backward` and `optimizer.step()`."""

    def _can_step_directly(self) -> bool:
        return False


def lightning_trainer(spec: StudySpec) -> L.Trainer:
    # Lightning's defaults except what prints or writes files (logger, progress bar, model
    # summary, checkpoints); the sanity validation run stays, as a default.
    return L.Trainer(
        max_epochs=spec.train.max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )


def plain_lightning(spec: StudySpec, log_each_step: bool, dataloader: bool, data: Prepared | None = None) -> Lap:
    """Plain Lightning; with `dataloader` batches come from DataLoaders over TensorDatasets."""
    torch.manual_seed(spec.seed)
    watch = Stopwatch()
    data = data or prepared(spec)
    (x, y), (xv, yv) = data.train, data.val
    batch = spec.train.batch_size
    if dataloader:
        train: Any = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
        val: Any = DataLoader(TensorDataset(xv, yv), batch_size=batch)
    else:
        train, val = TensorBatches(x, y, batch, shuffle=True), TensorBatches(xv, yv, batch, shuffle=False)
    net = data.network(spec)
    module = PlainModule(spec, net, math.ceil(len(x) / batch), log_each_step)
    lightning_trainer(spec).fit(module, train_dataloaders=train, val_dataloaders=val)
    return watch.lap()


class GlobalSeedReporter(EpochReporter):
    """The trial's epoch callback reseeding through `torch.manual_seed`, as it once did.

    `torch.manual_seed` also queues a lazy seeding of every accelerator backend that is not
    initialized, recording the caller's stack each time; inside Lightning's fit loop the stack
    is deep and that costs more than a tenth of a millisecond per call. The trial's own
    callback seeds only the generators it draws from.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(epoch_seed(self.seed, trainer.current_epoch))


def harness_module(
    spec: StudySpec, dm: ArrayDataModule, direct: bool, trainer: str = "plain", reporter: str | None = None
) -> Lap:
    """The harness's SupervisedModule outside `fit_trial` on a prepared datamodule, on the
    plain-Lightning Trainer or (`trainer="harness"`) on the trial's `make_trainer`; `reporter`
    adds the trial's epoch callback (`"trial"`) or a variant reseeding every backend (`"global-seed"`)."""
    torch.manual_seed(spec.seed)
    watch = Stopwatch()
    net = build_network(spec.model, dm.shape)
    cls = SupervisedModule if direct else WrappedSteps
    module = cls(
        net,
        dm.task,
        spec.train.optimizer.for_batch_size(spec.train.batch_size),
        spec.train.schedule,
        spec.train.max_epochs,
        dm.steps_per_epoch,
        log_metrics=False,
    )
    callbacks: list[L.Callback] = []
    if reporter is not None:
        cls_reporter = EpochReporter if reporter == "trial" else GlobalSeedReporter
        callbacks.append(cls_reporter(spec.seed, lambda metrics, trainer: None))
    fitter = lightning_trainer(spec) if trainer == "plain" else make_trainer(spec.train.max_epochs, callbacks)
    fitter.fit(module, datamodule=dm)
    return watch.lap()


# --- in a Ray trial ------------------------------------------------------------------------


def ray_trial(spec: StudySpec, every: int | None) -> Lap:
    """One trial of `spec` run by Ray Tune exactly as `harness run` runs it (the training kind's
    trainable: `checkpointing_sink` and `tune.report`, Ray persisting each checkpoint), alone on a
    FIFO Tuner; the lap is the trial's own wall time as Ray measures it (`time_total_s`)."""
    from ray import tune

    from harness.trial.kinds import TRIAL_KINDS

    trial_spec = spec.with_values({"search.strategy": "random", "train.checkpoint_every": every})
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            TRIAL_KINDS.get("training").trainable(trial_spec),
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(storage_path=storage, verbose=0),
        )
        seconds = tuner.fit()[0].metrics["time_total_s"]
    return Lap(seconds, seconds)


def in_ray(spec: StudySpec, short: StudySpec, repeats: int) -> str:
    """Per-epoch wall time in a Ray trial, every epoch checkpointed or at the default cadence,
    against the raw loop's per-epoch wall time (all from 20- and 2-epoch fits)."""
    import os

    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment banner per Tuner
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    variants: dict[str, Callable[[], Lap]] = {}
    for length in (spec, short):
        tag = f"{length.train.max_epochs} epochs"
        variants[f"{RAW}|{tag}"] = lambda length=length: raw_loop(length, {})
        variants[f"Ray trial, a checkpoint every epoch (before)|{tag}"] = lambda length=length: ray_trial(length, 1)
        variants[f"Ray trial, default cadence (`auto`)|{tag}"] = lambda length=length: ray_trial(length, None)
    laps = interleaved(variants, repeats)
    ray.shutdown()
    span = spec.train.max_epochs - short.train.max_epochs
    rows = []
    for name in dict.fromkeys(key.split("|")[0] for key in variants):
        full = wall(laps[f"{name}|{spec.train.max_epochs} epochs"])
        two = wall(laps[f"{name}|{short.train.max_epochs} epochs"])
        rows.append([name, f"{full * 1000:.0f}", f"{(full - two) / span * 1000:.2f}"])
    raw_epoch = float(rows[0][2])
    for row in rows:
        row.append(f"{float(row[2]) / raw_epoch:.2f}x")
    headers = ["variant", f"wall ms, {spec.train.max_epochs} epochs", "wall ms per epoch", "per epoch vs raw loop"]
    return markdown_table(headers, rows)


# --- running and reporting ----------------------------------------------------------------

RAW, TRIAL, TRIAL_CKPT, TRIAL_AUTO, PLAIN = (
    "raw PyTorch loop",
    "harness trial (`fit_trial`)",
    "harness trial + a checkpoint every epoch (before)",
    "harness trial + checkpoints at the default cadence (`auto`)",
    "plain Lightning defaults",
)
Laps = dict[str, list[Lap]]


def main_comparison(spec: StudySpec, short: StudySpec, repeats: int) -> tuple[Laps, dict[str, Metrics]]:
    last: dict[str, Metrics] = {RAW: {}, TRIAL: {}, TRIAL_CKPT: {}, TRIAL_AUTO: {}}
    variants: dict[str, Callable[[], Lap]] = {
        RAW: lambda: raw_loop(spec, last[RAW]),
        TRIAL: lambda: harness_trial(spec, last[TRIAL]),
        TRIAL_CKPT: lambda: harness_trial(spec, last[TRIAL_CKPT], replace(cadence_for(spec), every=1)),
        TRIAL_AUTO: lambda: harness_trial(spec, last[TRIAL_AUTO], cadence_for(spec)),
        PLAIN: lambda: plain_lightning(spec, log_each_step=True, dataloader=True),
        f"{RAW}, 2 epochs": lambda: raw_loop(short, {}),
        f"{TRIAL}, 2 epochs": lambda: harness_trial(short, {}),
        f"{PLAIN}, 2 epochs": lambda: plain_lightning(short, log_each_step=True, dataloader=True),
    }
    return interleaved(variants, repeats), last


def ablation(spec: StudySpec, repeats: int) -> Laps:
    data = prepared(spec)
    per_step, per_epoch = datamodule(spec, 1), datamodule(spec, None)
    variants: dict[str, Callable[[], Lap]] = {
        "A. plain Lightning: DataLoader, `self.log` every step": lambda: plain_lightning(spec, True, True, data),
        "B. A, metrics summed in tensors instead of `self.log`": lambda: plain_lightning(spec, False, True, data),
        "C. B, tensor-slicing batches instead of a DataLoader": lambda: plain_lightning(spec, False, False, data),
        "D. harness module, manual optimization, one step per Lightning batch": lambda: harness_module(
            spec, per_step, direct=False
        ),
        "E. D, one Lightning batch per epoch": lambda: harness_module(spec, per_epoch, direct=False),
        "F. E, direct backward/step path": lambda: harness_module(spec, per_epoch, direct=True),
        "G. F on the trial's Trainer (no sanity validation)": lambda: harness_module(
            spec, per_epoch, direct=True, trainer="harness"
        ),
        "H. G with an epoch callback reseeding via `torch.manual_seed`": lambda: harness_module(
            spec, per_epoch, direct=True, trainer="harness", reporter="global-seed"
        ),
        "I. G with the trial's epoch callback (reseeds the CPU generator only)": lambda: harness_module(
            spec, per_epoch, direct=True, trainer="harness", reporter="trial"
        ),
        RAW: lambda: raw_loop(spec, {}, data),
    }
    return interleaved(variants, repeats)


def cpu(laps: list[Lap]) -> float:
    return median([lap.cpu for lap in laps])


def wall(laps: list[Lap]) -> float:
    return median([lap.wall for lap in laps])


def speed_table(laps: Laps, steps: int, skip: str = "2 epochs") -> str:
    raw = cpu(laps[RAW])
    headers = ["variant", "steps/s", "CPU ms (median)", "CPU ms (min-max)", "wall ms (median)", "vs raw loop"]
    rows = [
        [
            name,
            f"{steps / cpu(t):,.0f}",
            f"{cpu(t) * 1000:.1f}",
            spread([lap.cpu * 1000 for lap in t]),
            f"{wall(t) * 1000:.1f}",
            f"{cpu(t) / raw:.2f}x",
        ]
        for name, t in laps.items()
        if skip not in name
    ]
    return markdown_table(headers, rows)


def report(spec: StudySpec, short: StudySpec, steps_per_epoch: int, laps: Laps, last: dict[str, Metrics]) -> None:
    epochs = spec.train.max_epochs
    print(speed_table(laps, epochs * steps_per_epoch))
    same = all(math.isclose(last[RAW][k], last[TRIAL][k], rel_tol=1e-6, abs_tol=1e-7) for k in last[RAW])
    print(
        f"\nCheckpoints written per fit: {last[TRIAL_CKPT]['checkpoints']} every epoch, "
        f"{last[TRIAL_AUTO]['checkpoints']} at the default cadence (the last epoch's, and any the time rule asks for)."
    )
    print(
        "\nFinal metrics, raw loop / harness trial: "
        + ", ".join(f"{k} {last[RAW][k]:.6f} / {last[TRIAL][k]:.6f}" for k in sorted(last[RAW]))
        + (" (equal: the same arithmetic)." if same else " (DIFFERENT: the loops do not do the same work).")
    )

    span = epochs - short.train.max_epochs
    rows = []
    for name in (RAW, TRIAL, PLAIN):
        full, two = cpu(laps[name]), cpu(laps[f"{name}, 2 epochs"])
        per_epoch = (full - two) / span
        rows.append([name, f"{(two - short.train.max_epochs * per_epoch) * 1000:.1f}", f"{per_epoch * 1000:.2f}"])
    raw_epoch = float(rows[0][2])
    for row in rows:
        row.append(f"{float(row[2]) / raw_epoch:.2f}x")
    print(f"\nFixed and per-epoch CPU time (from the medians of {epochs}- and {short.train.max_epochs}-epoch fits):\n")
    print(markdown_table(["variant", "fixed ms", "ms per epoch", "per epoch vs raw loop"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 epochs, 2 repeats: a smoke run")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit (default: the quickstart's 20)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 11)")
    parser.add_argument("--no-ablation", action="store_true", help="only the main comparison")
    parser.add_argument("--ray", action="store_true", help="also per-epoch wall time in a Ray trial (about 3 minutes)")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 11)
    epochs = args.epochs or (4 if args.quick else None)

    torch.set_num_threads(1)
    quiet_lightning()
    spec = load_spec(QUICKSTART, {"train.max_epochs": epochs} if epochs else {})
    short = spec.with_values({"train.max_epochs": 2})
    steps_per_epoch = datamodule(spec).steps_per_epoch
    print(
        f"# training overhead: quickstart MLP {spec.model.hidden}, batch {spec.train.batch_size}, "
        f"{spec.train.max_epochs} epochs x {steps_per_epoch} optimizer steps, {repeats} repeats, 1 thread",
        flush=True,
    )
    laps, last = main_comparison(spec, short, repeats)
    ablated = {} if args.no_ablation else ablation(spec, repeats)
    ray_table = in_ray(spec, short, max(3, repeats // 2)) if args.ray else ""

    print(f"\n{machine()}\n")
    report(spec, short, steps_per_epoch, laps, last)
    if ablated:
        print("\nAblation, from plain Lightning to the harness trial's module (tensors prepared beforehand):\n")
        print(speed_table(ablated, spec.train.max_epochs * steps_per_epoch))
    if ray_table:
        print("\nIn a Ray trial (wall time; Ray's report round trip and checkpoint persistence included):\n")
        print(ray_table)


if __name__ == "__main__":
    main()
