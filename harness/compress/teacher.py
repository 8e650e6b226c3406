"""The teacher of a compression study, prepared once per execution before any trial starts.

`teacher: train` trains the study's own model as a Ray task with a trial's resources (a GPU
where the study asks for one), records it as a child run tagged `teacher` (per-epoch metrics,
the model as an MLflow model) and keeps it in the execution's folder, so that `harness resume`
reuses it instead of training again. `teacher: {run: RUN_ID}` loads that run's MLflow model.
Trials receive the teacher through Ray's object store (`tune.with_parameters`), so workers on
other nodes need no shared disk."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from harness.errors import SpecError
from harness.study import StudySpec
from harness.tracking import contract as c
from harness.tracking.models import has_model, load_model, log_model
from harness.tracking.runs import StudyRun, client_for, end_run, open_run
from harness.tracking.store import sqlite_path
from harness.trial.compression import Teacher, fit_teacher
from harness.trial.ray_adapter import CHECKPOINT_FILE

TEACHER_FILE = "teacher.pt"


def prepare_trials(spec: StudySpec, study: StudyRun, folder: Path) -> dict[str, Any]:
    """What every trial of the study gets besides its config: a compression study's teacher."""
    if spec.compress is None:
        return {}
    import torch

    saved = folder / TEACHER_FILE
    if saved.is_file():
        return {"teacher": torch.load(saved, map_location="cpu", weights_only=False)}
    if spec.compress.teacher == "train":
        teacher = train_teacher(spec, study)
    else:
        teacher = Teacher(load_teacher_net(study.tracking_uri, spec.compress.teacher.run))
        client_for(study.tracking_uri).set_tag(study.parent_run_id, c.TEACHER_RUN_ID, spec.compress.teacher.run)
    torch.save(teacher, saved)
    return {"teacher": teacher}


def train_teacher(spec: StudySpec, study: StudyRun) -> Teacher:
    """Train the study's model once, as a Ray task, into a child run tagged `teacher`."""
    import ray

    client = client_for(study.tracking_uri)
    run = open_run(
        study.tracking_uri, spec.name, c.KIND_TEACHER, "teacher", parent_run_id=study.parent_run_id,
    )
    try:
        gpus = min(1.0, spec.resources.gpus_per_trial)
        task = ray.remote(num_cpus=spec.resources.cpus_per_trial, num_gpus=gpus)(_fit_remote)
        teacher, history = ray.get(task.remote(spec.to_dict(), "gpu" if gpus else "cpu"))
        for epoch, metrics in enumerate(history, start=1):
            for key, value in metrics.items():
                if c.is_epoch_metric(key):
                    client.log_metric(run.parent_run_id, key, value, step=epoch)
        client.log_text(run.parent_run_id, spec.to_yaml(), c.TRIAL_SPEC_ARTIFACT)
        log_model(client, run.parent_run_id, teacher.net)
        client.set_tag(study.parent_run_id, c.TEACHER_RUN_ID, run.parent_run_id)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        end_run(client, run.parent_run_id, c.KILLED if interrupted else c.FAILED, f"{type(exc).__name__}: {exc}"[:500])
        raise
    end_run(client, run.parent_run_id, c.FINISHED)
    return teacher


def _fit_remote(raw_spec: dict[str, Any], accelerator: str) -> tuple[Teacher, list[dict[str, float]]]:
    return fit_teacher(StudySpec.model_validate(raw_spec), accelerator)


def check_teacher_run(spec: StudySpec, tracking_uri: str) -> None:
    """Before anything runs: a `teacher: {run: ...}` names a run of this store with a model."""
    if spec.compress is None or spec.compress.teacher == "train":
        return
    run_id = spec.compress.teacher.run
    database = sqlite_path(tracking_uri)
    if database is not None and not database.exists():  # reading would create an empty store
        raise SpecError(f"compress.teacher.run: no run {run_id!r} in {tracking_uri} (the store does not exist yet)")
    client = client_for(tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise SpecError(f"compress.teacher.run: no run {run_id!r} in {tracking_uri}") from None
    if not has_model(client, run_id) and trial_checkpoint(client, client.get_run(run_id)) is None:
        raise SpecError(
            f"compress.teacher.run: run {run_id!r} logged no model (no {c.MODEL_ARTIFACT!r} artifact) and is not a "
            "training trial whose checkpoint is on this machine; give a finished study's parent run, a teacher run "
            "or such a trial run"
        )


def trial_checkpoint(client: Any, run: Any) -> Path | None:
    """The last checkpoint of a training trial's run, where its study folder is on this
    machine (a trial run logs no model of its own; its checkpoints are in Ray's storage)."""
    if run.data.tags.get(c.KIND) != c.KIND_TRIAL or c.PARENT_RUN_ID not in run.data.tags:
        return None
    parent = client.get_run(run.data.tags[c.PARENT_RUN_ID])
    if parent.data.tags.get(c.TRIAL_KIND) != "training":
        return None  # k-fold, objective and compression checkpoints hold no single network
    folder = Path(parent.data.tags.get(c.RAY_EXPERIMENT_PATH, "")) / f"trial-{run.data.tags.get(c.TRIAL_ID)}"
    checkpoints = sorted(folder.glob(f"checkpoint_*/{CHECKPOINT_FILE}")) if folder.is_dir() else []
    return checkpoints[-1] if checkpoints else None


def load_teacher_net(tracking_uri: str, run_id: str) -> Any:
    """Run `run_id`'s MLflow model, or (a training trial's run) the network of its last checkpoint."""
    client = client_for(tracking_uri)
    if has_model(client, run_id):
        return load_model(tracking_uri, run_id)
    run = client.get_run(run_id)
    checkpoint = trial_checkpoint(client, run)
    if checkpoint is None:
        raise SpecError(f"compress.teacher.run: run {run_id!r} has no model to load")
    import yaml

    from harness.study import spec_from_dict
    from harness.trial.training import restored

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, c.TRIAL_SPEC_ARTIFACT, tmp)
        spec = spec_from_dict(yaml.safe_load(Path(local).read_text()), source=c.TRIAL_SPEC_ARTIFACT)
    return restored(spec, checkpoint)[1].net.eval()


def teacher_of(client: Any, trial_run: Any, tracking_uri: str) -> Teacher:
    """The teacher a recorded compression trial compressed (for `harness reproduce`): its
    parent's teacher run, with the initial weights rebuilt from its spec when it was trained."""
    parent = client.get_run(trial_run.data.tags[c.PARENT_RUN_ID])
    teacher_run = parent.data.tags.get(c.TEACHER_RUN_ID)
    if teacher_run is None:
        raise SpecError(f"RUN_ID {trial_run.info.run_id!r}: its study recorded no teacher run")
    net = load_teacher_net(tracking_uri, teacher_run)
    initial = None
    run = client.get_run(teacher_run)
    if run.data.tags.get(c.KIND) == c.KIND_TEACHER:
        import lightning as L

        from harness.study import spec_from_dict
        from harness.trial.build import build

        with tempfile.TemporaryDirectory() as tmp:
            import yaml

            local = client.download_artifacts(teacher_run, c.TRIAL_SPEC_ARTIFACT, tmp)
            spec = spec_from_dict(yaml.safe_load(Path(local).read_text()), source=c.TRIAL_SPEC_ARTIFACT)
        L.seed_everything(spec.seed, workers=True, verbose=False)
        initial = build(spec)[1].net  # the same seed and order as the teacher's own fit
    return Teacher(net, initial)
