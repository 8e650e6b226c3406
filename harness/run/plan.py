"""The plan of one study execution, resolved once from the validated spec: searcher and
scheduler, the most epochs a trial can run, how many trials to expect, the trial kind, and
each trial's resolved spec. Everything downstream (Tuner assembly, callbacks, finalize,
progress, `validate`) reads the plan instead of resolving again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.search import SCHEDULERS, SEARCHERS, SchedulerEntry, SearcherEntry, max_epochs_bound, resolve_strategy
from harness.study import StudySpec
from harness.trial.kinds import TRIAL_KINDS, TrialKind, kind_for


@dataclass(frozen=True)
class StudyPlan:
    spec: StudySpec
    searcher_name: str
    scheduler_name: str
    kind_name: str
    max_epochs: int  # the most epochs any trial can run, also when `train.max_epochs` is searched
    expected_trials: int

    @classmethod
    def of(cls, spec: StudySpec) -> StudyPlan:
        searcher, scheduler = resolve_strategy(spec)
        if SEARCHERS.get(searcher).grid:
            total = 1
            for dist in spec.search.space.values():
                total *= len(dist.probe_values())
        else:
            total = spec.search.num_trials
        return cls(spec, searcher, scheduler, kind_for(spec), max_epochs_bound(spec), total)

    @property
    def searcher(self) -> SearcherEntry:
        return SEARCHERS.get(self.searcher_name)

    @property
    def scheduler(self) -> SchedulerEntry:
        return SCHEDULERS.get(self.scheduler_name)

    @property
    def kind(self) -> TrialKind:
        return TRIAL_KINDS.get(self.kind_name)

    @property
    def metric(self) -> str:
        return self.spec.search.metric

    @property
    def mode(self) -> str:
        return self.spec.search.mode

    def trial_spec(self, config: dict[str, Any]) -> StudySpec:
        """A trial's resolved spec: the study's with its sampled values set by dotted path."""
        return self.spec.with_values(config)

    # --- what the child runs need (harness.tracking.trials.TrialSpecs) ---------------------

    def trial_yaml(self, config: dict[str, Any]) -> str:
        return self.trial_spec(config).to_yaml()

    def trial_max_epochs(self, config: dict[str, Any]) -> int:
        if self.spec.compress is not None:
            return self.trial_spec(config).compress.epochs()  # type: ignore[union-attr]
        return int(config.get("train.max_epochs", self.spec.train.max_epochs))
