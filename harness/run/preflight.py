"""Pre-flight: what only the data can tell about a valid spec, checked before Ray starts or
any MLflow run exists. It sits above both the spec and the trial, so that the spec schema
imports no trial code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import SpecError
from harness.study import StudySpec, load_spec
from harness.trial.build import datamodule
from harness.trial.kinds import TRIAL_KINDS, kind_for


def data_problems(spec: StudySpec) -> list[str]:
    """A batch size larger than the train split (also among the searched values), label
    smoothing on a regression task, a step that does not fit the data, an LR range test where
    the trial kind trains no single model. Loads the dataset once."""
    kind = kind_for(spec)
    if spec.train.lr_find and kind != "training":
        return [f"train.lr_find: true runs the range test before a plain training trial; this study's trials are {kind}"]
    if not TRIAL_KINDS.get(kind).reads_data:
        return []
    sizes = [("train.batch_size", spec.train.batch_size)]
    dist = spec.search.space.get("train.batch_size")
    if dist is not None:
        sizes += [("search.space.train.batch_size", value) for value in dist.probe_values()]
    dataset = spec.data.dataset.name  # type: ignore[attr-defined]
    try:
        dm = datamodule(spec)
    except ValueError as exc:  # a step that does not fit the data's shape, a split too small for it
        return [f"data: {exc} (dataset {dataset})"]
    problems = [
        f"{where}: {size} is larger than the train split of {dataset} ({dm.num_train} samples); "
        f"use at most {dm.num_train}, or `full` for the whole split"
        for where, size in sizes
        if isinstance(size, int) and size > dm.num_train
    ]
    if spec.train.regularization.label_smoothing > 0 and dm.task != "classification":
        problems.append(f"train.regularization.label_smoothing: applies to classification; {dataset} is {dm.task}")
    return problems


def check_data(spec: StudySpec) -> StudySpec:
    """Raise SpecError listing the data problems of `spec`, if any; return it otherwise."""
    problems = data_problems(spec)
    if problems:
        raise SpecError("\n".join(problems))
    return spec


def load_study(
    path: str | Path, overrides: dict[str, Any] | None = None, notes: list[str] | None = None
) -> StudySpec:
    """Read, override and validate a study file, then check it against its data; `notes`
    collects the searched fields the overrides pinned."""
    return check_data(load_spec(path, overrides, notes))
