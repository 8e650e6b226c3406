"""A claim: the statement as the seed makes it, the shipped study that tests it (reused, not
copied), the settings it compares (arms: dotted-path values pinned on that study, its search
removed, one trial per arm and seed), what it measures, and which way counts as "as claimed".

Claims live in YAML files under `studies/claims/` (one file per topic, a list of claims).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from harness.errors import SpecError
from harness.study import StudySpec, spec_from_dict
from harness.study.library import STUDIES_DIR
from harness.study.messages import format_errors
from harness.study.reading import read_yaml_mapping
from lightning_modules.config import Config

CLAIMS_DIR = STUDIES_DIR / "claims"
TREATMENT, BASELINE = "treatment", "baseline"
CONTRAST = "/contrast"  # the suffix of an arm measured in a contrast claim's reference condition (MLflow keys take no @)


MEASURE_FORMS = "METRIC, METRIC - METRIC, |METRIC - METRIC| or METRIC / METRIC"


def measure_terms(measure: str) -> tuple[str, str | None, str | None]:
    """The metric names of a measurement and how they combine: (left, right, op), op one of
    `-`, `|-|` (absolute difference), `/` or None (a single metric)."""
    text = measure.strip()
    absolute = text.startswith("|") and text.endswith("|")
    if absolute:
        text = text[1:-1].strip()
    for op in (" - ", " / "):
        left, sep, right = (part.strip() for part in text.partition(op))
        if sep:
            return left, right, ("|-|" if absolute else op.strip())
    return text, None, None


def evaluate(measure: str, trial: dict[str, float], test: dict[str, float]) -> float | None:
    """The measurement of one arm's run: the chosen trial's metrics (final epoch) by name, its
    sealed-test scores (`test/...`); None when a metric is missing (a failed trial)."""
    left, right, op = measure_terms(measure)
    values = []
    for name in (n for n in (left, right) if n is not None):
        source = test if name.startswith("test/") else trial
        value = source.get(name)
        if value is None or not math.isfinite(value):
            return None
        values.append(value)
    if op is None:
        return values[0]
    if op == "/":
        return values[0] / values[1] if values[1] else None
    difference = values[0] - values[1]
    return abs(difference) if op == "|-|" else difference


class ClaimSpec(Config):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=80)
    topic: str
    statement: str = Field(min_length=3, description="the claim in the seed's words")
    study: str | None = Field(None, description="the shipped study that tests it")
    comparison: str | None = Field(
        None, description="or the shipped comparison whose search strategies it compares (arms: {strategy: NAME})"
    )
    arms: dict[str, dict[str, Any]] = Field(description="treatment (and baseline): dotted-path values pinned on the study")
    measure: str = Field(description=f"{MEASURE_FORMS}; test/... reads the sealed test split")
    better: Literal["higher", "lower", "within", "within_factor"] = Field(
        description="which way of the treatment's measure is as claimed: higher or lower than the baseline's "
        "(or the threshold), or within `margin` of the baseline's (within_factor: within a factor of `margin`)"
    )
    margin: float = Field(
        0.0,
        description="with a baseline: how much better the treatment must be (negative: how much worse it may be, "
        "a 'matches' claim); for within, the largest difference as claimed; for within_factor, the largest ratio",
    )
    threshold: float | None = Field(None, description="without a baseline: the value the treatment must beat")
    settings: dict[str, Any] = Field(default_factory=dict, description="dotted-path values for every arm")
    contrast: dict[str, Any] | None = Field(
        None,
        description="values for a reference condition (applied over the settings): the effect is the arms' "
        "difference under the settings minus their difference under these (a claim that an advantage grows)",
    )
    quick: dict[str, Any] = Field(default_factory=dict, description="more values for --quick (a smaller run)")
    seeds: int = Field(5, ge=1, le=100)
    failed: Literal["against", "for"] = Field(
        "against",
        description="how a failed treatment run counts: against the claim (its worst outcome) or for it "
        "(a claim that training fails, such as a diverging learning rate)",
    )
    note: str = ""

    @field_validator("measure")
    @classmethod
    def _measure(cls, measure: str) -> str:
        left, right, op = measure_terms(measure)
        names = [n for n in (left, right) if n is not None]
        if op is None and measure.strip().startswith("|") or not all(re.fullmatch(r"[\w/.\-]+", n) for n in names):
            raise ValueError(f"a measure is {MEASURE_FORMS} (given {measure!r})")
        return measure

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if TREATMENT not in arms or not set(arms) <= {TREATMENT, BASELINE}:
            raise ValueError(f"arms are {TREATMENT} and, optionally, {BASELINE} (given {', '.join(arms)})")
        return arms

    @model_validator(mode="after")
    def _study_or_comparison(self) -> ClaimSpec:
        if (self.study is None) == (self.comparison is None):
            raise ValueError("give a study or a comparison, not both and not neither")
        if self.comparison is not None and any("strategy" not in arm for arm in self.arms.values()):
            raise ValueError(
                "each arm of a comparison claim names its search strategy: {strategy: NAME} "
                "(and any dotted-path values for that arm alone)"
            )
        return self

    @property
    def source(self) -> str:
        """The shipped study or comparison the claim reuses."""
        return self.study or self.comparison  # type: ignore[return-value]

    @model_validator(mode="after")
    def _baseline_or_threshold(self) -> ClaimSpec:
        if (BASELINE in self.arms) == (self.threshold is not None):
            raise ValueError("give a baseline arm or a threshold, not both and not neither")
        if self.margin and BASELINE not in self.arms:
            raise ValueError("margin compares with a baseline arm; without one, use threshold")
        if self.better in ("within", "within_factor") and BASELINE not in self.arms:
            raise ValueError(f"better: {self.better} compares with a baseline arm")
        if self.contrast is not None and (BASELINE not in self.arms or self.better not in ("higher", "lower")):
            raise ValueError("a contrast compares the treatment-baseline difference of two conditions: "
                             "it needs a baseline arm and better: higher or lower")
        if self.better == "within" and self.margin <= 0 or self.better == "within_factor" and self.margin <= 1:
            raise ValueError(f"better: {self.better} needs a margin above {0 if self.better == 'within' else 1} (given {self.margin})")
        return self

    def effect(self, treatment: float | None, baseline: float | None = None) -> float | None:
        """The seed's effect in the claimed direction, net of margin or threshold (larger:
        as claimed); a failed arm is its worst outcome, both failed is None."""
        sign = 1.0 if self.better == "higher" else -1.0
        failed = math.inf if self.failed == "for" else -math.inf
        if BASELINE not in self.arms:
            return failed if treatment is None else sign * (treatment - self.threshold)  # type: ignore[operator]
        if treatment is None and baseline is None:
            return None
        if treatment is None:
            return failed
        if baseline is None:  # the baseline's worst outcome: beaten, but nothing to be within
            return -math.inf if self.better.startswith("within") else math.inf
        if self.better == "within":
            return self.margin - abs(treatment - baseline)
        if self.better == "within_factor":
            # In decades: positive while the two are less than a factor of `margin` apart.
            if treatment <= 0 or baseline <= 0:
                return -math.inf
            return math.log10(self.margin) - abs(math.log10(treatment / baseline))
        return sign * (treatment - baseline) - self.margin

    @property
    def measured_arms(self) -> list[str]:
        """The arms each seed measures: treatment and baseline, and for a contrast claim both
        again in the reference condition (`treatment/contrast`, `baseline/contrast`)."""
        arms = list(self.arms)
        return arms + [f"{arm}{CONTRAST}" for arm in arms] if self.contrast is not None else arms

    def effect_of(self, measured: dict[str, float | None]) -> float | None:
        """One seed's effect from its measured arms (see `effect`); for a contrast claim, the
        effect under the settings minus the effect in the reference condition."""
        main = self.effect(measured.get(TREATMENT), measured.get(BASELINE))
        if self.contrast is None or main is None:
            return main
        reference = self.effect(measured.get(TREATMENT + CONTRAST), measured.get(BASELINE + CONTRAST))
        if reference is None or math.isinf(main) and math.isinf(reference):
            return None  # both conditions failed the same arm, or one failed in each: nothing to compare
        return main - reference

    def arm_spec(self, arm: str, seed: int, quick: bool = False) -> StudySpec:
        """The study with this arm's values pinned, its search reduced to the one trial, at
        `seed`; for a comparison claim, the comparison's execution of the arm's strategy at
        `seed` (its budget and search as the comparison runs them), with the settings and the
        arm's other values applied. `ARM/contrast` is the arm in a contrast claim's reference
        condition."""
        from harness.study.library import resolve_study_file

        arm, reference = arm.removesuffix(CONTRAST), arm.endswith(CONTRAST)
        condition = {**self.settings, **(self.quick if quick else {}), **((self.contrast or {}) if reference else {})}
        if self.comparison is not None:
            from harness.compare import load_comparison

            own = dict(self.arms[arm])
            derived = load_comparison(resolve_study_file(self.comparison)).study_for(own.pop("strategy"), seed)
            values = {**condition, **own}
            return spec_from_dict(derived.to_dict(), values, source=f"claim {self.name!r}, arm {arm}")
        raw = read_yaml_mapping(resolve_study_file(self.study), "study file")
        values = {**condition, **self.arms[arm]}
        overrides = {**values, "seed": seed, "search.strategy": "random", "search.num_trials": 1}
        spec = spec_from_dict(raw, overrides, source=f"claim {self.name!r}, arm {arm}")
        if spec.search.space:
            left = ", ".join(spec.search.space)
            raise SpecError(f"claim {self.name!r}, arm {arm}: the study still searches {left}; pin it in the arm or settings")
        return spec


def load_claim_files(folder: Path = CLAIMS_DIR) -> list[ClaimSpec]:
    claims: list[ClaimSpec] = []
    for path in sorted(folder.glob("*.yaml")):
        raw = read_yaml_mapping(path, "claims file")
        for i, item in enumerate(raw.get("claims") or []):
            try:
                claim = ClaimSpec.model_validate({"topic": path.stem, **item})
            except ValidationError as exc:
                raise SpecError(f"{path}: claims.{i}: invalid claim\n{format_errors(exc)}") from None
            claims.append(claim)
    names = [c.name for c in claims]
    if len(set(names)) < len(names):
        raise SpecError(f"{folder}: claim names must be unique (repeated: {sorted({n for n in names if names.count(n) > 1})})")
    return claims


def load_claims(names: list[str] | None = None, folder: Path = CLAIMS_DIR) -> list[ClaimSpec]:
    """The claims named (all when none), each checked: its study exists and every arm pins a
    valid single-trial study, quick and full."""
    claims = load_claim_files(folder)
    by_name = {c.name: c for c in claims}
    unknown = [n for n in names or [] if n not in by_name and n not in {c.topic for c in claims}]
    if unknown:
        raise SpecError(f"{', '.join(unknown)}: no such claim or topic; claims: {', '.join(by_name)}")
    chosen = [c for c in claims if not names or c.name in names or c.topic in names]
    for claim in chosen:
        for arm in claim.arms:
            for quick in (False, True):
                claim.arm_spec(arm, 0, quick)
    return chosen
