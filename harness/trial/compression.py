"""A compression trial: a copy of the teacher goes through the study's steps (fine-tuning
stages report every epoch under the step's prefix, `prune/round2/val/acc`), then the student
ships as its deployable artifact, which is what is scored (accuracy of the artifact in its
runtime), sized and timed beside the teacher. Ray Tune runs it through `compression_trainable`;
`harness reproduce` calls `fit_compression` directly."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from harness.study import StudySpec
from harness.tracking import contract as c
from harness.trial.build import build, datamodule, threads
from harness.trial.retries import refuse_a_retry_of_an_error
from lightning_modules.compression.deploy import Deployed, deploy, measure
from lightning_modules.compression.distill import DistillationModule
from lightning_modules.compression.steps import Context, DistillConfig, compress
from lightning_modules.data import ArrayDataModule
from lightning_modules.models import SupervisedModule, build_network
from lightning_modules.models.tasks import TASKS
from lightning_modules.optim import ScheduleConfig
from lightning_modules.training import fit_module

RESULT_FILE = "compression.json"  # the final report, beside the artifact in the trial's checkpoint
# sink(metrics, folder): one report per fine-tuning epoch (folder None), then the final one
# with the folder that holds the artifact.
Sink = Callable[[dict[str, Any], "Path | None"], None]


@dataclass
class Teacher:
    """The network to compress and, when the study trained it, its initial weights (what the
    lottery ticket rewinds to)."""

    net: nn.Module
    initial: nn.Module | None = None


def fit_teacher(spec: StudySpec, accelerator: str = "cpu") -> tuple[Teacher, list[dict[str, float]]]:
    """Train the study's own model on its train spec (as a training trial would, same seed),
    keeping its initial weights; returns the teacher and its per-epoch metrics."""
    history: list[dict[str, float]] = []
    L.seed_everything(spec.seed, workers=True, verbose=False)
    torch.set_num_threads(threads(spec))
    dm, module = build(spec)
    initial = copy.deepcopy(module.net)
    fit_module(
        module, dm, seed=spec.seed, max_epochs=spec.train.max_epochs, early_stopping=spec.train.early_stopping,
        sink=lambda metrics, trainer: history.append(_numbers(metrics)), accelerator=accelerator,
    )
    return Teacher(module.net.cpu().eval(), initial.cpu()), history


def fit_compression(
    spec: StudySpec, sink: Sink, *, teacher: Teacher, accelerator: str = "cpu", folder: Path | None = None, **_: Any
) -> dict[str, float]:
    """Compress `teacher` by the spec's steps, reporting each fine-tuning epoch and then the
    artifact's metrics (with `folder`, where the artifact is written; else a temporary one)."""
    assert spec.compress is not None, "a compression trial needs a spec with a compress section"
    L.seed_everything(spec.seed, workers=True, verbose=False)
    torch.set_num_threads(threads(spec))
    dm = datamodule(spec)
    epoch = 0

    def finetune(net: nn.Module, epochs: int, stage: str, lr: float | None, distill: DistillConfig | None = None) -> None:
        nonlocal epoch
        optimizer = spec.train.optimizer.for_batch_size(dm.batch_size)
        if lr is not None:
            optimizer = optimizer.model_copy(update={"lr": lr})
        common: dict[str, Any] = dict(
            task=dm.task, optimizer=optimizer, schedule=ScheduleConfig(), max_epochs=epochs,
            steps_per_epoch=dm.steps_per_epoch, log_metrics=False, regularization=spec.train.regularization,
            gradient_clip=spec.train.gradient_clip,
        )
        if distill is None:
            module: SupervisedModule = SupervisedModule(net, **common)
        else:
            module = DistillationModule(
                net, copy.deepcopy(teacher.net), temperature=distill.temperature, alpha=distill.alpha,
                t_squared=distill.t_squared, hint_weight=distill.hint_weight, hint_layer=distill.hint_layer, **common,
            )

        def report(metrics: dict[str, Any], trainer: Any) -> None:
            nonlocal epoch
            epoch += 1
            values = _numbers(metrics)
            staged = {f"{stage}/{k}": v for k, v in values.items() if k.split("/")[0] in c.SPLITS}
            # The unprefixed values follow the student through every stage: the search metric's curve.
            sink({**staged, **{k: v for k, v in values.items() if k in ("val/loss", "val/acc")}, c.EPOCH: epoch}, None)

        fit_module(module, dm, seed=spec.seed + epoch, max_epochs=epochs, sink=report, accelerator=accelerator)
        net.cpu()

    x_train, _ = dm.split_tensors("train")
    context = Context(finetune, teacher.initial, lambda: _fresh(spec, dm), build=lambda model: build_network(model, dm.shape))
    student = compress(teacher.net, list(spec.compress.steps), context)
    student.net.cpu().eval()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(folder or tmp)
        deployed = deploy(student, x_train[:8], x_train, where / c.COMPRESSED_DIR)
        metrics = {**score(deployed, dm, "val", threads(spec)), **measure(
            teacher.net, student, deployed, x_train[:8], Path(tmp), threads=threads(spec)
        )}
        metrics["teacher/val/acc"] = score_net(teacher.net, dm, "val").get("val/acc", float("nan"))
        metrics = {k: v for k, v in metrics.items() if v == v}  # drop NaN (regression has no accuracy)
        (where / RESULT_FILE).write_text(json.dumps(metrics))
        sink({**metrics, c.EPOCH: epoch + 1}, where)
    return metrics


def _fresh(spec: StudySpec, dm: ArrayDataModule) -> nn.Module:
    """A network of the teacher's architecture, initialized from a different seed than the
    teacher's (the lottery ticket's random-reinitialization control)."""
    with torch.random.fork_rng():
        torch.manual_seed(spec.seed + 1_000_003)
        return build_network(spec.model, dm.shape)


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _scored(out: torch.Tensor, y: torch.Tensor, task: str, split: str) -> dict[str, float]:
    scoring = TASKS.get(task)
    out = scoring.output(out)
    metrics = {f"{split}/loss": float(scoring.loss(out, y))}
    correct = scoring.correct(out, y)
    if correct is not None:
        metrics[f"{split}/acc"] = float(correct.float().mean())
    return metrics


def score(deployed: Deployed, dm: ArrayDataModule, split: str, threads: int = 1) -> dict[str, float]:
    """Loss and accuracy of the shipped artifact, run in its runtime, on a split."""
    x, y = dm.split_tensors(split)
    return _scored(deployed.outputs(x, threads), y, dm.task, split)


@torch.no_grad()
def score_net(net: nn.Module, dm: ArrayDataModule, split: str) -> dict[str, float]:
    x, y = dm.split_tensors(split)
    was = net.training
    net.eval()
    out = net(x)
    net.train(was)
    return _scored(out, y, dm.task, split)


def evaluate_artifact(spec: StudySpec, folder: Path) -> dict[str, float]:
    """The chosen trial's artifact on the sealed test split."""
    from lightning_modules.compression.artifact import ONNX_FILE

    dm = datamodule(spec)
    artifact = Path(folder) / c.COMPRESSED_DIR
    onnx = artifact / ONNX_FILE
    deployed = Deployed(onnx, "onnxruntime") if onnx.is_file() else Deployed(next(artifact.glob("*.pt")), "pytorch")
    return score(deployed, dm, "test", threads(spec))


def compression_trainable(config: dict[str, Any], base_spec: dict[str, Any], teacher: Teacher) -> None:
    """Ray Tune function trainable of a compression trial. A trial restored after its final
    report re-reports it from the checkpoint; one restored mid-way starts over (its stages
    are short, and a half-pruned network has no checkpoint of its own)."""
    import ray
    from ray import tune

    refuse_a_retry_of_an_error()
    spec = StudySpec.model_validate(base_spec).with_values(config)
    node = {c.NODE_ID: ray.get_runtime_context().get_node_id()}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            done = Path(folder) / RESULT_FILE
            if done.is_file():
                metrics = json.loads(done.read_text())
                tune.report({**metrics, **node, c.DEVICE: "cpu", c.EPOCH: spec.compress.epochs()}, checkpoint=checkpoint)
                return
    accelerator = "gpu" if ray.get_gpu_ids() else "cpu"

    def sink(metrics: dict[str, Any], folder: Path | None) -> None:
        where = {**node, c.DEVICE: "cuda" if accelerator == "gpu" else "cpu"}
        if folder is None:
            tune.report({**metrics, **where})
        else:
            tune.report({**metrics, **where}, checkpoint=tune.Checkpoint.from_directory(str(folder)))

    with tempfile.TemporaryDirectory() as tmp:
        fit_compression(spec, sink, teacher=teacher, accelerator=accelerator, folder=Path(tmp))
