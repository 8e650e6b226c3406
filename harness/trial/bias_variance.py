"""A bias-variance trial: one configuration trained on many independently drawn training sets
of a dataset whose true function is known (`poly`), one fit per training set
(`harness.trial.members`).

Training set k is the dataset drawn from its own seed (so are the model's initialisation and
batch order: the variance is over both, as in practice). For every epoch the trial reports
the mean train and val metrics over the models and the decomposition of their predictions at
fixed, evenly spaced points (`bv/bias2`, `bv/variance`, `bv/noise`, `bv/expected_error`;
`lightning_modules.training.bias_variance`). The chosen trial's models are scored on their
sealed test splits like k-fold's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from harness.study import StudySpec
from harness.trial.build import build, threads
from harness.trial.kfold import FOLD_FILE, aggregate
from harness.trial.members import Member, at_epoch, checkpoint_folder, fit_members, report_epochs
from lightning_modules.data.synthetic import true_function
from lightning_modules.models import SupervisedModule
from lightning_modules.training import EpochSink, quiet_lightning, regime_metrics
from lightning_modules.training.bias_variance import decompose

PREFIX = "bv/"


def member_spec(spec: StudySpec, k: int) -> StudySpec:
    """The spec of training set k: the study's with its own seed (data draw, init, order)."""
    return spec.model_copy(update={"seed": (spec.seed + 104_729 * k) % (2**32)})


def points(spec: StudySpec) -> np.ndarray:
    """The fixed evaluation points: evenly spaced over the input range [-1, 1]."""
    return np.linspace(-1.0, 1.0, spec.bias_variance.points)  # type: ignore[union-attr]


@torch.no_grad()
def predictions(members: list[Member], x: np.ndarray) -> np.ndarray:
    """(models, points): each model's prediction at `x`, through its own fitted preprocessing."""
    rows = []
    for dm, module, _ in members:
        was_training = module.training
        module.eval()
        rows.append(module(dm.transform_inputs(x[:, None]).to(module.device)).cpu().numpy().reshape(-1))
        module.train(was_training)
    return np.stack(rows)


def _members(spec: StudySpec) -> list[Member]:
    members = []
    for k in range(spec.bias_variance.training_sets):  # type: ignore[union-attr]
        one = member_spec(spec, k)
        L.seed_everything(one.seed, verbose=False)
        members.append((*build(one), one.seed))
    return members


def fit_bias_variance(
    spec: StudySpec, sink: EpochSink, *, resume_from: Path | None = None, stop_after: int | None = None,
    accelerator: str = "cpu",
) -> list[SupervisedModule]:
    """Fit the model on every training set (`harness.trial.members`: an interrupted trial
    starts over, so `resume_from` is not used), keeping each epoch's predictions at the fixed
    points; then report per epoch the means over training sets and the decomposition."""
    quiet_lightning()
    torch.set_num_threads(threads(spec))
    x = points(spec)
    data = spec.data.dataset
    truth, noise = true_function(data, x), data.noise**2  # type: ignore[arg-type, attr-defined]
    members = _members(spec)
    with checkpoint_folder() as folder:
        histories, predicted, files = fit_members(
            spec, members, folder, probe=lambda k: predictions([members[k]], x)[0], stop_after=stop_after,
            accelerator=accelerator,
        )

        def combine(epoch: int) -> dict[str, Any]:
            at = np.stack([at_epoch(p, epoch) for p in predicted])
            metrics = aggregate([at_epoch(h, epoch) for h in histories])
            metrics.update({f"{PREFIX}{name}": value for name, value in decompose(at, truth, noise).items()})
            return metrics

        report_epochs(histories, files, [m for _, m, _ in members], sink, combine, " (mean over training sets)")
    return [module for _, module, _ in members]


def evaluate_bias_variance(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    """Every model on its own sealed test split: the mean and std over training sets."""
    torch.set_num_threads(threads(spec))
    rows = []
    for i, (dm, module, _) in enumerate(_members(spec)):
        state = torch.load(checkpoint.with_name(FOLD_FILE.format(i)), map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        rows.append({**module.evaluate(dm.test_dataloader()), **regime_metrics(module, dm, "test")})
    return aggregate(rows)
