"""The trial-kind registry: what one trial of a study is, decided once per study.

Each kind says which studies it runs (`applies`), gives Ray Tune its trainable, fits one
resolved spec outside Ray (`harness reproduce`), and evaluates the chosen trial after the
search (`evaluate`: the sealed test split, or an objective's exact regret). Adding a kind
(compression, say) is one entry here; nothing else branches on the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.study import StudySpec
from harness.trial.ray_adapter import checkpoint_file, training_trainable
from lightning_modules.registry import Registry

# fit(spec, sink, *, resume_from=None, stop_after=None, accelerator="cpu")
Fit = Callable[..., Any]


@dataclass(frozen=True)
class TrialKind:
    """`applies(spec)`: this kind runs the study (kinds are tried by ascending `priority`);
    `trainable(spec, **prepared)`: the Ray Tune function trainable, its parameters bound (with
    what the study prepared once for all trials, such as a compression study's teacher); `fit`: one
    resolved spec, outside Ray, reporting each epoch to a sink; `evaluate(trial_spec, result)`:
    the parent run's metrics for the chosen trial's Ray result; `model(trial_spec, result)`:
    its trained network, logged on the parent run as an MLflow model; `reproduce_all_epochs`: a
    reproduction replays every epoch, not only those recorded (a learning curve depends on
    the full budget); `reads_data`: its trials train on the study's data, so the data is checked
    before a run and the chosen trial is scored on the sealed test split (an objective has
    neither)."""

    applies: Callable[[StudySpec], bool]
    trainable: Callable[..., Any]
    fit: Fit
    evaluate: Callable[[StudySpec, Any], dict[str, float]]
    model: Callable[[StudySpec, Any], Any] | None = None
    priority: int = 100
    reproduce_all_epochs: bool = False
    reads_data: bool = True
    summary: str = ""


TRIAL_KINDS: Registry[TrialKind] = Registry("trial kind")


def kind_for(spec: StudySpec) -> str:
    """The name of the kind that runs `spec`'s trials."""
    for name in sorted(TRIAL_KINDS.names(), key=lambda n: TRIAL_KINDS.get(n).priority):
        if TRIAL_KINDS.get(name).applies(spec):
            return name
    raise LookupError(f"no trial kind runs study {spec.name!r}")  # `training` applies to every study


# --- training and k-fold -------------------------------------------------------------------


def _fit_training(spec: StudySpec, sink: Any, **options: Any) -> Any:
    from harness.trial.training import fit_trial

    return fit_trial(spec, sink, **options)


def _fit_kfold(spec: StudySpec, sink: Any, **options: Any) -> Any:
    from harness.trial.kfold import fit_folds

    return fit_folds(spec, sink, **options)[0]


def _on_test(evaluate: Callable[[StudySpec, Path], dict[str, float]]) -> Callable[[StudySpec, Any], dict[str, float]]:
    """Score the chosen trial's last checkpoint on the sealed test split."""

    def on_test(spec: StudySpec, result: Any) -> dict[str, float]:
        if result.checkpoint is None:
            return {}
        with result.checkpoint.as_directory() as folder:
            return evaluate(spec, checkpoint_file(Path(folder)))

    return on_test


def _evaluate_training(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    from harness.trial.training import evaluate_checkpoint

    return evaluate_checkpoint(spec, checkpoint)


def _trained_network(spec: StudySpec, result: Any) -> Any:
    from harness.trial.training import restored

    if result.checkpoint is None:
        return None
    with result.checkpoint.as_directory() as folder:
        return restored(spec, checkpoint_file(Path(folder)))[1].net


def _evaluate_kfold(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    from harness.trial.kfold import evaluate_folds

    return evaluate_folds(spec, checkpoint)


TRIAL_KINDS.register("training")(
    TrialKind(
        applies=lambda spec: True,
        trainable=training_trainable(_fit_training),
        fit=_fit_training,
        evaluate=_on_test(_evaluate_training),
        model=_trained_network,
        priority=1000,
        summary="one Lightning fit of the trial's model; the chosen trial is scored on the sealed test split",
    )
)
TRIAL_KINDS.register("kfold")(
    TrialKind(
        applies=lambda spec: spec.objective is None and spec.data.split.kind == "kfold",
        trainable=training_trainable(_fit_kfold),
        fit=_fit_kfold,
        evaluate=_on_test(_evaluate_kfold),
        priority=20,
        summary="one model per fold in lockstep; reports fold means, std and per-fold values",
    )
)


def _fit_bias_variance(spec: StudySpec, sink: Any, **options: Any) -> Any:
    from harness.trial.bias_variance import fit_bias_variance

    return fit_bias_variance(spec, sink, **options)[0]


def _evaluate_bias_variance(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    from harness.trial.bias_variance import evaluate_bias_variance

    return evaluate_bias_variance(spec, checkpoint)


TRIAL_KINDS.register("bias_variance")(
    TrialKind(
        applies=lambda spec: spec.bias_variance is not None,
        trainable=training_trainable(_fit_bias_variance),
        fit=_fit_bias_variance,
        evaluate=_on_test(_evaluate_bias_variance),
        priority=15,
        summary="one model per drawn training set in lockstep; reports bias^2, variance and noise at known points",
    )
)


def _fit_specialists(spec: StudySpec, sink: Any, **options: Any) -> Any:
    from harness.trial.specialists import fit_specialists

    return fit_specialists(spec, sink, **options)


def _evaluate_specialists(spec: StudySpec, checkpoint: Path) -> dict[str, float]:
    from harness.trial.specialists import evaluate_specialists

    return evaluate_specialists(spec, checkpoint)


TRIAL_KINDS.register("specialists")(
    TrialKind(
        applies=lambda spec: spec.specialists is not None,
        trainable=training_trainable(_fit_specialists),
        fit=_fit_specialists,
        evaluate=_on_test(_evaluate_specialists),
        priority=16,
        summary="a global model and one specialist per regime bin; reports each regime's score by both",
    )
)


# --- compression ---------------------------------------------------------------------------


def _compression_trainable(spec: StudySpec, teacher: Any = None) -> Any:
    from ray import tune

    from harness.trial.compression import compression_trainable

    if teacher is None:
        raise ValueError("a compression study's trainable needs its teacher")
    return tune.with_parameters(compression_trainable, base_spec=spec.to_dict(), teacher=teacher)


def _fit_compression(spec: StudySpec, sink: Any, **options: Any) -> Any:
    from harness.trial.compression import fit_compression

    options.pop("stop_after", None)  # a compression trial always runs every stage
    options.pop("resume_from", None)
    return fit_compression(spec, sink, **options)


def _evaluate_compression(spec: StudySpec, result: Any) -> dict[str, float]:
    from harness.trial.compression import evaluate_artifact

    if result.checkpoint is None:
        return {}
    with result.checkpoint.as_directory() as folder:
        return evaluate_artifact(spec, Path(folder))


TRIAL_KINDS.register("compression")(
    TrialKind(
        applies=lambda spec: spec.compress is not None,
        trainable=_compression_trainable,
        fit=_fit_compression,
        evaluate=_evaluate_compression,
        priority=5,
        reproduce_all_epochs=True,
        summary="compresses the teacher by the study's steps; scores, sizes and times the shipped artifact",
    )
)


# --- objective -----------------------------------------------------------------------------


def _objective_trainable(spec: StudySpec, **_: Any) -> Any:
    from harness.trial.objective import objective_trainable

    return objective_trainable(spec)


def _fit_objective(spec: StudySpec, sink: Any, **options: Any) -> None:
    from harness.trial.objective import ObjectivePlan, run_objective

    run_objective(ObjectivePlan.from_spec(spec), sink)


def _evaluate_objective(spec: StudySpec, result: Any) -> dict[str, float]:
    from harness.trial.objective import chosen_trial_metrics

    return chosen_trial_metrics(spec, result)


TRIAL_KINDS.register("objective")(
    TrialKind(
        applies=lambda spec: spec.objective is not None,
        trainable=_objective_trainable,
        fit=_fit_objective,
        evaluate=_evaluate_objective,
        priority=10,
        reproduce_all_epochs=True,
        reads_data=False,
        summary="evaluates a benchmark function per epoch-equivalent; the parent records the exact regret",
    )
)
